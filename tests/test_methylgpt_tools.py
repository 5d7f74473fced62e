"""`ef.tl.embed` and `ef.tl.impute` on real and synthetic cohorts."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from anndata import AnnData

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab


def _model(probes, *, seed: int = 0, d_model: int = 16) -> MethylGPT:
    torch.manual_seed(seed)
    return MethylGPT(MethylGPTVocab.from_probes(probes), d_model=d_model, n_layers=2, n_heads=2)


@pytest.fixture
def blood_model(blood) -> MethylGPT:
    """Vocabulary: 1,500 of the blood cohort's CpGs and 500 it does not have (75 % coverage)."""
    return _model([*blood.var_names[::10][:1500], *[f"cg9{i:07d}" for i in range(500)]])


def test_embed_blood(blood, blood_model):
    before = blood.copy()
    blood_model.train()
    assert ef.tl.embed(blood, blood_model, progress=False) is None
    emb = blood.obsm[ef.Key.obsm.methylgpt]
    assert emb.shape == (10, 16) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.linalg.matrix_rank(emb - emb.mean(0)) > 1  # samples differ
    params = blood.uns[ef.Key.uns.methylgpt]["params"]
    assert {k: params[k] for k in ("n_vocab", "n_found", "fraction_found", "n_unused")} == {
        "n_vocab": 2000,
        "n_found": 1500,
        "fraction_found": 0.75,
        "n_unused": 18500,
    }
    assert (
        params["missing"] == "mask"
        and params["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
        and params["checkpoint"].startswith("none")
    )
    assert params["d_model"] == 16 and params["n_layers"] == 2 and "epiformer_version" in params
    assert list(blood.uns[ef.Key.uns.methylgpt]["all_missing_samples"]) == []
    np.testing.assert_array_equal(blood.X, before.X)
    assert blood_model.training  # evaluation mode (no dropout) only during the call
    again = ef.tl.embed(blood, blood_model, progress=False, copy=True).obsm[ef.Key.obsm.methylgpt]
    np.testing.assert_array_equal(again, emb)


def test_embed_invariances(blood, blood_model):
    """Column order, unknown CpGs and the batch size do not change the embedding (float32 on the CPU)."""
    ref = ef.tl.embed(blood, blood_model, device="cpu", progress=False, copy=True).obsm["X_methylgpt"]
    shuffled = blood[:, np.random.default_rng(0).permutation(blood.n_vars)].copy()
    out = ef.tl.embed(shuffled, blood_model, batch_size=1, device="cpu", progress=False, copy=True).obsm["X_methylgpt"]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
    assert "X_methylgpt" not in blood.obsm  # copy=True leaves the input alone


def test_embed_missing_modes(blood, blood_model):
    """Equal when every vocabulary CpG is observed; different when some are missing; mask mode ignores them."""
    vocab_only = blood[:, blood.var_names.isin(blood_model.vocab.probes)].copy()
    model = _model(list(vocab_only.var_names))
    mask = ef.tl.embed(vocab_only, model, progress=False, copy=True).obsm["X_methylgpt"]
    legacy = ef.tl.embed(vocab_only, model, missing="legacy", progress=False, copy=True).obsm["X_methylgpt"]
    np.testing.assert_allclose(mask, legacy, rtol=0, atol=1e-5)
    holes = vocab_only.copy()
    holes.X[:, :300] = np.nan
    mask2 = ef.tl.embed(holes, model, progress=False, copy=True).obsm["X_methylgpt"]
    legacy2 = ef.tl.embed(holes, model, missing="legacy", progress=False, copy=True).obsm["X_methylgpt"]
    dropped = ef.tl.embed(vocab_only[:, 300:].copy(), model, progress=False, copy=True).obsm["X_methylgpt"]
    np.testing.assert_allclose(mask2, dropped, rtol=0, atol=1e-5)  # missing = absent in mask mode
    assert np.abs(legacy2 - mask2).max() > 1e-3
    with pytest.raises(ValueError, match="'mask'"):
        ef.tl.embed(vocab_only, model, missing="zero")


def test_embed_mean_readout(blood, blood_model):
    """``readout="mean"``: the mean output of each sample's observed CpG tokens, as computed by hand."""
    few = blood[:3].copy()
    few.X[0, : few.n_vars // 2] = np.nan  # sample 0 misses half of its CpGs
    ef.tl.embed(few, blood_model, readout="mean", key_added="X_mean", device="cpu", progress=False)
    assert few.obsm["X_mean"].shape == (3, 16) and few.uns["X_mean"]["params"]["readout"] == "mean"
    columns = few.var_names.get_indexer(blood_model.vocab.probes)
    betas = np.full((3, len(columns)), np.nan, dtype=np.float32)
    betas[:, columns >= 0] = few.X[:, columns[columns >= 0]]
    blood_model.eval()
    with torch.inference_mode():
        ids, values, kpm = blood_model.tokenize(torch.from_numpy(betas), missing="mask")
        hidden = blood_model.encode(ids, values, key_padding_mask=kpm)[:, 1:].numpy()
    observed = ~np.isnan(betas)
    expected = np.stack([hidden[i][observed[i]].mean(axis=0) for i in range(3)])
    np.testing.assert_allclose(few.obsm["X_mean"], expected, rtol=0, atol=1e-5)
    cls = ef.tl.embed(few, blood_model, device="cpu", progress=False, copy=True).obsm["X_methylgpt"]
    assert np.abs(cls - expected).max() > 1e-3  # a different readout
    with pytest.raises(ValueError, match="'cls' or 'mean'"):
        ef.tl.embed(few, blood_model, readout="max")


def test_embed_coverage_checks(blood):
    blood_before = blood.copy()
    with pytest.raises(ValueError, match="None of the model's 200 CpGs is in the data"):
        ef.tl.embed(blood, _model([f"cg9{i:07d}" for i in range(200)]), progress=False)
    assert not blood.obsm and blood.uns.keys() == blood_before.uns.keys()
    low = _model([*blood.var_names[:30], *[f"cg9{i:07d}" for i in range(70)]])
    with pytest.warns(UserWarning, match=r"Only 30 of the model's 100 CpGs \(30.0%\)"):
        ef.tl.embed(blood, low, progress=False)
    assert blood.uns["methylgpt"]["params"]["fraction_found"] == 0.3


def test_embed_reports_all_missing_samples(blood, blood_model):
    blood.X[3, :] = np.nan
    with pytest.warns(UserWarning, match=r"1 samples \(among the model's CpGs\) have no observed value.*GSM"):
        ef.tl.embed(blood, blood_model, progress=False)
    assert list(blood.uns["methylgpt"]["all_missing_samples"]) == [blood.obs_names[3]]
    assert np.isfinite(blood.obsm["X_methylgpt"][3]).all()


def test_embed_rejects_bad_input(blood, blood_model):
    mvalues = ef.pp.to_mvalue(blood, copy=True)
    with pytest.raises(ValueError, match="M-values"):
        ef.tl.embed(mvalues, blood_model, progress=False)
    assert "X_methylgpt" not in mvalues.obsm
    with pytest.raises(TypeError, match="MethylGPT"):
        ef.tl.embed(blood, object())
    with pytest.raises(ValueError, match="batch_size"):
        ef.tl.embed(blood, blood_model, batch_size=0)
    with pytest.raises(KeyError, match="raw"):
        ef.tl.embed(blood, blood_model, layer="raw")


def test_embed_backed_layer_var_key_and_mudata(blood, blood_model, tmp_path):
    ref = ef.tl.embed(blood, blood_model, progress=False, copy=True).obsm["X_methylgpt"]
    blood.write_h5ad(tmp_path / "blood.h5ad")
    backed = ad.read_h5ad(tmp_path / "blood.h5ad", backed="r")
    ef.tl.embed(backed, blood_model, progress=False, key_added="X_backed")
    np.testing.assert_allclose(backed.obsm["X_backed"], ref, rtol=0, atol=1e-6)
    assert backed.uns["X_backed"]["params"]["missing"] == "mask"
    backed.file.close()

    renamed = AnnData(
        X=np.zeros(blood.shape, dtype=np.float32),
        layers={"betas": blood.X.copy()},
        var=pd.DataFrame({"probe": blood.var_names}, index=[f"v{i}" for i in range(blood.n_vars)]),
    )
    ef.tl.embed(renamed, blood_model, layer="betas", var_key="probe", progress=False)
    np.testing.assert_allclose(renamed.obsm["X_methylgpt"], ref, rtol=0, atol=1e-6)

    mdata = md.MuData({"methyl": blood.copy()})
    out = ef.tl.embed(mdata, blood_model, progress=False, copy=True)
    np.testing.assert_allclose(out.mod["methyl"].obsm["X_methylgpt"], ref, rtol=0, atol=1e-6)
    assert "X_methylgpt" not in mdata.mod["methyl"].obsm


def test_embed_separates_synthetic_tissues_and_feeds_scanpy():
    """A synthetic cohort with strong tissue effects: even random weights keep some of the tissue structure."""
    adata = ef.datasets.synthetic_methylome(n_obs=60, n_vars=400, n_tissues=3, frac_tissue=0.5, random_state=0)
    ef.tl.embed(adata, _model(list(adata.var_names), d_model=32), progress=False)
    sc.pp.neighbors(adata, use_rep="X_methylgpt", n_neighbors=5)
    sc.tl.umap(adata, random_state=0)
    assert adata.obsm["X_umap"].shape == (60, 2) and "connectivities" in adata.obsp
    emb = adata.obsm["X_methylgpt"]
    dist = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    tissue = adata.obs["tissue"].to_numpy()
    assert (tissue[dist.argmin(1)] == tissue).mean() > 0.6  # chance: 1/3


def test_embed_h5ad_round_trip(blood, blood_model, tmp_path):
    blood.X[0] = np.nan
    with pytest.warns(UserWarning, match="no observed value"):
        ef.tl.embed(blood, blood_model, progress=False)
    blood.write_h5ad(tmp_path / "out.h5ad")
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    assert back.uns["methylgpt"]["params"]["n_found"] == 1500
    np.testing.assert_array_equal(back.obsm["X_methylgpt"], blood.obsm["X_methylgpt"])


# ------------------------------------------------------------------------------------------------ impute


def _constant_mlm(model: MethylGPT, value: float) -> MethylGPT:
    """Make the MLM head predict `value` everywhere: a known answer for the imputation plumbing."""
    with torch.no_grad():
        model.decoder.fc[4].weight.zero_()
        model.decoder.fc[4].bias.fill_(value)
    return model


def test_impute_keeps_observed_values_bit_for_bit(blood, blood_model):
    rng = np.random.default_rng(0)
    holes = rng.random(blood.shape) < 0.1
    blood.X[holes] = np.nan
    before = blood.X.copy()
    ef.tl.impute(blood, blood_model, progress=False)
    out = blood.layers[ef.Key.layers.imputed]
    assert out.dtype == np.float32 and out.shape == blood.shape
    observed = ~np.isnan(before)
    np.testing.assert_array_equal(out[observed].view(np.uint32), before[observed].view(np.uint32))
    in_vocab = blood.var_names.isin(blood_model.vocab.probes)
    filled = holes & in_vocab[None, :]
    assert np.isfinite(out[filled]).all() and (out[filled] >= 0).all() and (out[filled] <= 1).all()
    assert np.isnan(out[holes & ~in_vocab[None, :]]).all()  # CpGs the model does not know stay missing
    info = blood.uns[ef.Key.uns.imputed]
    assert info["n_imputed"] == filled.sum() and info["n_left_missing"] == (holes & ~in_vocab[None, :]).sum()
    assert info["n_samples_imputed"] == 10 and info["params"]["missing"] == "mask"
    np.testing.assert_array_equal(blood.X.view(np.uint32), before.view(np.uint32))  # input untouched


@pytest.mark.parametrize(("value", "expected"), [(0.7, 0.7), (3.0, 1.0), (-0.5, 0.0)])
def test_impute_writes_the_mlm_prediction_clipped(blood, value, expected):
    model = _constant_mlm(_model(list(blood.var_names[:800])), value)
    blood.X[2, :50] = np.nan
    blood.X[5, 700:900] = np.nan
    out = ef.tl.impute(blood, model, device="cpu", progress=False, copy=True)  # float32: exact constants
    layer = out.layers["methylgpt_imputed"]
    np.testing.assert_allclose(layer[2, :50], expected, rtol=1e-6)
    np.testing.assert_allclose(layer[5, 700:800], expected, rtol=1e-6)
    assert np.isnan(layer[5, 800:900]).all()
    assert out.uns["methylgpt_imputed"]["n_samples_imputed"] == 2 and "methylgpt_imputed" not in blood.layers


def test_impute_masked_positions_are_attended(blood):
    """Missing values enter as mask tokens (-1) that are attended: the predictions depend on how many there are."""
    model = _model(list(blood.var_names[:400]))
    one, many = blood[:1].copy(), blood[:1].copy()
    one.X[0, 0] = np.nan
    many.X[0, :200] = np.nan
    a = ef.tl.impute(one, model, progress=False, copy=True).layers["methylgpt_imputed"][0, 0]
    b = ef.tl.impute(many, model, progress=False, copy=True).layers["methylgpt_imputed"][0, 0]
    assert abs(a - b) > 1e-4


def test_impute_float64_legacy_and_batches(blood):
    model = _model([*blood.var_names[:300], "cg99999999"])
    X = blood.X.astype(np.float64)
    X[:, :20] = np.nan
    adata = AnnData(X=X, obs=blood.obs, var=blood.var)
    a = ef.tl.impute(adata, model, missing="legacy", batch_size=3, progress=False, copy=True)
    b = ef.tl.impute(adata, model, missing="legacy", batch_size=10, progress=False, copy=True)
    c = ef.tl.impute(adata, model, missing="mask", progress=False, copy=True)
    out = a.layers["methylgpt_imputed"]
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[:, 20:], X[:, 20:])
    np.testing.assert_allclose(out, b.layers["methylgpt_imputed"], rtol=0, atol=1e-5)
    assert np.abs(out[:, :20] - c.layers["methylgpt_imputed"][:, :20]).max() > 1e-4  # the absent CpG is attended


def test_impute_refuses_without_touching(blood):
    with pytest.raises(ValueError, match="None of the model's"):
        ef.tl.impute(blood, _model(["cg99999999"]), progress=False)
    assert "methylgpt_imputed" not in blood.layers
