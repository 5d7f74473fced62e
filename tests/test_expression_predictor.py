from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import epiformer as ef
from epiformer.models.expression_predictor import FactorizedNet, LevyJurgensonNet, columnwise_spearman
from epiformer.models.expression_predictor._networks import n_parameters

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _prepared(n_samples, n_genes, n_cpgs, *, flank, by="random", seed=1):
    mdata = ef.datasets.synthetic_multiome(n_samples, n_genes, n_cpgs, random_state=seed)
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=flank)
    ef.pp.cpg_gene_distances(mdata)
    ef.pp.split_pairs(mdata, by=by, block_size=20_000, random_state=0)
    return mdata


@pytest.fixture(scope="module")
def trained():
    """The default architecture trained on held-in CpGs x held-in samples (about 20 s on one CPU thread)."""
    mdata = _prepared(100, 60, 1200, flank=100)
    model = ef.tl.fit_expression_predictor(mdata, max_epochs=60, early_stopping_patience=8, progress=False)
    ef.tl.predict_methylation(mdata, model)
    return mdata, model


def _driven(scores: pd.DataFrame, predictor: str) -> pd.Series:
    return scores.loc[(True, predictor)]


def test_factorized_learns_the_planted_rule(trained):
    mdata, model = trained
    history = mdata.uns["expression_predictor"]["history"]
    assert len(history["val_loss"]) >= 5 and min(history["val_loss"]) < history["val_loss"][0] / 2
    scores = ef.tl.evaluate_methylation(mdata)
    assert list(scores.index) == ["predicted_methylation", "sequence_only", "cpg_mean"]
    ours = scores.loc["predicted_methylation"]
    # held-out CpGs x held-out samples
    n_test = (mdata.obs["split"] == "test").sum() * (mdata["methyl"].var["split"] == "test").sum()
    assert 0.95 * n_test < ours["n_pairs"] <= n_test
    assert ours["spearman"] >= 0.8
    assert ours["mae"] < scores.loc["sequence_only", "mae"] and ours["mae"] < scores.loc["cpg_mean", "mae"]
    by_group = ef.tl.evaluate_methylation(mdata, groupby="expression_driven")
    assert _driven(by_group, "predicted_methylation")["per_cpg_spearman"] >= 0.5
    assert _driven(by_group, "sequence_only")["per_cpg_spearman"] == 0.0  # constant across samples
    assert abs(by_group.loc[(False, "predicted_methylation"), "per_cpg_spearman"]) < 0.1  # nothing to follow


def test_shuffled_expression_loses_the_per_cpg_signal(trained):
    mdata, model = trained
    test_samples = np.flatnonzero(mdata.obs["split"] == "test")
    test_cpgs = np.flatnonzero(mdata["methyl"].var["split"] == "test")
    expr = mdata["rna"].X[test_samples]
    truth = mdata["methyl"].X[np.ix_(test_samples, test_cpgs)]
    driven = mdata["methyl"].var["expression_driven"].to_numpy()[test_cpgs]
    real = columnwise_spearman(truth, model.predict(expr, cpgs=test_cpgs))
    shuffled = columnwise_spearman(
        truth, model.predict(expr[np.random.default_rng(0).permutation(len(expr))], cpgs=test_cpgs)
    )
    assert np.nanmedian(real[driven]) >= 0.5
    assert abs(np.nanmedian(shuffled[driven])) < 0.25


def test_save_and_load_without_pickle(trained, tmp_path):
    mdata, model = trained
    folder = tmp_path / "model"
    assert model.save(folder) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "epiformer.ExpressionPredictor" and len(config["sha256"]) == 64
    assert config["config"]["architecture"] == "factorized" and config["genes"] == list(mdata["rna"].var_names)
    assert config["data"] == {"rna_mod": "rna", "methyl_mod": "methyl", "rna_layer": None, "methyl_layer": None}
    with pytest.raises(FileExistsError):
        model.save(folder)
    expr = mdata["rna"].X[:7]
    expected = model.predict(expr, cpgs=np.arange(50))
    alone = ef.models.ExpressionPredictor.load(folder)
    np.testing.assert_allclose(alone.predict(expr, cpgs=np.arange(50)), expected, atol=1e-6)
    assert alone.mdata is None and alone.is_trained and alone.checkpoint["path"] == str(folder.resolve())
    # the training history survives the round trip
    assert list(model.history.columns) == ["epoch", "train_loss", "val_loss", "lr"] and len(model.history) >= 5
    pd.testing.assert_frame_equal(alone.history, model.history, check_dtype=False)
    assert mdata.uns["expression_predictor"]["history"]["val_loss"] == model.history["val_loss"].tolist()
    with pytest.raises(RuntimeError, match="without its training data"):
        alone.train(max_epochs=1)
    model.save(folder, overwrite=True)
    # swapped weights are refused
    other = tmp_path / "other"
    with torch.no_grad():
        next(alone.network.parameters()).add_(1.0)
    alone.save(other)
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="sha256"):
        ef.models.ExpressionPredictor.load(folder)
    with pytest.raises(FileNotFoundError, match="does not hold"):
        ef.models.ExpressionPredictor.load(tmp_path)
    with pytest.raises(ValueError, match="gene order"):
        model.predict(expr[:, :5])


def test_methylation_map_of_spatial_spots(trained):
    mdata, model = trained
    genes = list(mdata["rna"].var_names)
    spots = ef.datasets.synthetic_spatial(12, 12, gene_names=genes[5:], n_domains=3, frac_markers=0.2, random_state=2)
    spots.X = spots.X.multiply(1e4 / spots.X.sum(axis=1)).tocsr().log1p()
    spatial = spots.obsm["spatial"].copy()
    spatial_uns = set(spots.uns.get("spatial", {}))
    with pytest.warns(UserWarning, match="5 of 60 model genes are absent.*set to 0 after scaling"):
        assert ef.tl.predict_methylation(spots, model) is None
    maps = spots.obsm["predicted_methylation"]
    assert isinstance(maps, pd.DataFrame) and maps.shape == (144, 1200)
    assert list(maps.columns) == list(mdata["methyl"].var_names) and list(maps.index) == list(spots.obs_names)
    assert (maps.dtypes == np.float32).all()
    assert ((maps >= 0) & (maps <= 1)).all().all()
    np.testing.assert_array_equal(spots.obsm["spatial"], spatial)
    assert set(spots.uns.get("spatial", {})) == spatial_uns and spots.shape == (144, 55)
    info = spots.uns["predicted_methylation"]
    assert info["n_genes_missing"] == 5 and info["params"]["architecture"] == "factorized"
    assert list(info["cpgs"].columns) == ["chrom", "pos"] and list(info["cpgs"].index) == list(maps.columns)
    # known answer: a driven CpG is less methylated where its driver gene is a domain marker
    var = mdata["methyl"].var
    marker_of = spots.var["marker_of"]
    checked = 0
    for cpg, gene in var.loc[var["expression_driven"], "driver_gene"].items():
        domain = marker_of.get(gene, "")
        if domain:
            inside = (spots.obs["domain"] == domain).to_numpy()
            column = maps[cpg].to_numpy()
            assert column[inside].mean() < column[~inside].mean()
            checked += 1
    assert checked >= 10
    names = list(mdata["methyl"].var_names[:3])
    with pytest.warns(UserWarning, match="absent"):
        subset = ef.tl.predict_methylation(spots, model, cpgs=names, key_added="few", copy=True)
    assert list(subset.obsm["few"].columns) == names and "few" not in spots.obsm and "few" not in spots.uns
    np.testing.assert_allclose(subset.obsm["few"].to_numpy(), maps[names].to_numpy(), atol=1e-6)
    before = set(spots.obsm), set(spots.uns)
    with pytest.raises(KeyError, match="no sequence"):
        ef.tl.predict_methylation(spots, model, cpgs=["chr9:1"], key_added="bad")
    assert (set(spots.obsm), set(spots.uns)) == before  # a failed call leaves the data untouched
    with pytest.raises(TypeError, match="ExpressionPredictor"):
        ef.tl.predict_methylation(spots, object())


def test_predict_into_mudata(trained):
    mdata, model = trained
    layer = mdata["methyl"].layers["predicted_methylation"]
    assert layer.shape == mdata["methyl"].shape and not np.isnan(layer).any()
    copy = ef.tl.predict_methylation(mdata, model, cpgs=mdata["methyl"].var_names[:10], key_added="few", copy=True)
    few = copy["methyl"].layers["few"]
    assert np.isnan(few[:, 10:]).all()
    np.testing.assert_allclose(few[:, :10], layer[:, :10], atol=1e-6)
    assert "few" not in mdata["methyl"].layers
    with pytest.raises(KeyError, match="modalities"):
        ef.tl.predict_methylation(mdata, model, mod="atac", key_added="atac")
    assert "atac" not in mdata["methyl"].layers and "atac" not in mdata["methyl"].uns


def test_dilution_curve_and_plot(trained):
    import matplotlib.pyplot as plt

    mdata, model = trained
    driven = mdata["methyl"].var_names[mdata["methyl"].var["expression_driven"].to_numpy()]
    ef.tl.dilution_curve(mdata, model, retention=(10_000, 300, 30), n_iter=2, cpgs=driven)
    result = mdata.uns["dilution"]
    table = result["table"]
    assert list(table.columns) == [
        "retention",
        "iteration",
        "n_genes_kept",
        "n_pairs",
        "mae",
        "spearman",
        "per_cpg_spearman",
        "per_sample_spearman",
    ]
    assert len(table) == 6 and set(table["retention"]) == {10_000, 300, 30}
    kept = table.groupby("retention")["n_genes_kept"].mean()
    assert kept[30] < kept[300] < kept[10_000] <= 60
    per_cpg = table.groupby("retention")["per_cpg_spearman"].mean()
    assert per_cpg[30] < per_cpg[10_000] <= result["undiluted"]["per_cpg_spearman"] + 0.05
    assert result["undiluted"]["per_cpg_spearman"] >= 0.5 and result["params"]["n_cpgs"] < 120
    legacy = ef.tl.dilution_curve(
        mdata, model, retention=(50,), n_iter=1, method="legacy", key_added="legacy", copy=True
    )
    assert legacy.uns["legacy"]["table"]["n_genes_kept"].iloc[0] <= 50
    assert "legacy" not in mdata.uns
    fig, axes = plt.subplots(1, 2)
    assert ef.pl.dilution_curve(mdata, ax=axes[0]) is axes[0]
    assert ef.pl.dilution_curve(mdata, metric="per_cpg_spearman", kind="line", ax=axes[1]) is axes[1]
    assert [t.get_text().split("\n")[0] for t in axes[0].get_xticklabels()] == ["10,000", "300", "30"]
    plt.close(fig)
    with pytest.raises(ValueError, match="metric"):
        ef.pl.dilution_curve(mdata, metric="auroc")
    with pytest.raises(KeyError, match="dilution_curve"):
        ef.pl.dilution_curve(mdata, key="nothing")
    with pytest.raises(ValueError, match="retention"):
        ef.tl.dilution_curve(mdata, model, retention=(0,))


def test_levy_jurgenson_trains_per_pair_and_round_trips(synthetic_small, tmp_path):
    mdata = synthetic_small
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=50)
    ef.pp.cpg_gene_distances(mdata, encoding="legacy_halving_2kb", anchor="gene_start")
    ef.pp.split_pairs(mdata)
    with pytest.warns(FutureWarning, match="enable_progress_bar"):
        model = ef.tl.fit_expression_predictor(
            mdata, architecture="levy_jurgenson", max_epochs=3, early_stopping_patience=None, enable_progress_bar=False
        )
    assert model.config["scaling"] == "minmax" and model.train_params["lr"] == 1e-3
    assert list(model.history["epoch"]) == [0, 1, 2]
    losses = mdata.uns["expression_predictor"]["history"]["train_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # min-max scaling fit on training samples only: training samples span exactly (10, 100)
    train = (mdata.obs["split"] == "train").to_numpy()
    scaled = model.scaler.transform(mdata["rna"].X)
    np.testing.assert_allclose(scaled[train].min(0), 10, atol=1e-4)
    np.testing.assert_allclose(scaled[train].max(0), 100, atol=1e-3)
    # evaluation computes CpG and sample parts once; identical to the published per-pair computation
    net = model.network.eval().cpu()
    batch = model.table.inputs(np.arange(6))
    expr = torch.as_tensor(scaled[:4])
    with torch.no_grad():
        block = net.forward_block(seq=batch["seq"], dist=batch["dist"], expr=expr)
        pairs = torch.stack([net(batch["seq"], expr[[s] * 6], batch["dist"]) for s in range(4)])
    torch.testing.assert_close(block, pairs)
    model.save(tmp_path / "lj")
    loaded = ef.models.ExpressionPredictor.load(tmp_path / "lj")
    np.testing.assert_allclose(loaded.predict(mdata["rna"].X[:5]), model.predict(mdata["rna"].X[:5]), atol=1e-6)


def test_published_layer_shapes():
    with torch.device("meta"):
        net = LevyJurgensonNet(17_996, 800)
    assert n_parameters(net) == 219_496_129  # "about 219 M" at G = 17,996
    small = LevyJurgensonNet(600, 800)
    assert small.motif.conv.weight.shape == (64, 5, 11)
    assert small.seq_dense[0].in_features == 5_120 and [small.seq_dense[i].out_features for i in (0, 3, 6)] == [
        50,
        45,
        40,
    ]
    assert (small.expr_attention[0].in_features, small.expr_attention[0].out_features) == (600, 100)
    assert small.seq_attention[0].out_features == 20 and small.seq_attention[3].out_features == 600
    assert small.merge[0].in_features == 3 * 600 + 40 and small.out.out_features == 1
    factorized = FactorizedNet(17_996, 800)
    assert n_parameters(factorized) < 2_000_000  # no G x G weights


def test_setup_errors(synthetic_small):
    mdata = synthetic_small
    with pytest.raises(KeyError, match="cpg_sequences"):
        ef.tl.fit_expression_predictor(mdata)
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=20)
    with pytest.raises(KeyError, match="cpg_gene_distances"):
        ef.tl.fit_expression_predictor(mdata)
    ef.pp.cpg_gene_distances(mdata, encoding="legacy_halving_2kb")
    with pytest.raises(ValueError, match="signed distances"):
        ef.tl.fit_expression_predictor(mdata)
    ef.pp.cpg_gene_distances(mdata)
    with pytest.raises(KeyError, match="split_pairs"):
        ef.tl.fit_expression_predictor(mdata, max_epochs=1)
    with pytest.raises(ValueError, match="architecture"):
        ef.tl.fit_expression_predictor(mdata, architecture="transformer")
    with pytest.raises(ValueError, match="`scaling` must be 'minmax', 'standard' or None, got 'robust'"):
        ef.models.ExpressionPredictor(mdata, scaling="robust")  # before any training, not at its start
    with pytest.raises(TypeError, match="MuData"):
        ef.models.ExpressionPredictor(mdata["rna"])
    with pytest.raises(TypeError, match="Unknown options"):
        ef.models.ExpressionPredictor(mdata, n_layers=3)
    with pytest.raises(KeyError, match="Modality 'expression'"):
        ef.tl.fit_expression_predictor(mdata, rna_mod="expression")
    with pytest.raises(KeyError, match="Layer 'logcounts' not found"):
        ef.tl.fit_expression_predictor(mdata, rna_layer="logcounts")
    untrained = ef.models.ExpressionPredictor(mdata)
    assert "not trained" in repr(untrained) and untrained.history.empty
    with pytest.raises(RuntimeError, match="not trained"):
        untrained.predict(mdata["rna"].X)
    with pytest.raises(KeyError, match="split_pairs"):
        ef.tl.evaluate_methylation(ad.AnnData(np.zeros((2, 2))), layer=None)


@pytest.mark.slow
def test_acceptance_factorized_block_split_800bp():
    """Published 800 bp windows, CpGs split by 20 kb blocks (no shared promoter between train and test)."""
    mdata = _prepared(100, 60, 2000, flank=400, by="block")
    model = ef.tl.fit_expression_predictor(mdata, max_epochs=60, early_stopping_patience=8, progress=False)
    ef.tl.predict_methylation(mdata, model)
    scores = ef.tl.evaluate_methylation(mdata, groupby="expression_driven")
    overall = ef.tl.evaluate_methylation(mdata)
    print("factorized, block split, 800 bp\n", overall.round(3).to_string(), "\n", scores.round(3).to_string())
    assert overall.loc["predicted_methylation", "spearman"] >= 0.8
    assert _driven(scores, "predicted_methylation")["per_cpg_spearman"] >= 0.5
    assert _driven(scores, "sequence_only")["per_cpg_spearman"] == 0.0


@pytest.mark.slow
def test_acceptance_levy_jurgenson_random_split():
    """The published network on the published protocol (random disjoint CpGs and samples)."""
    mdata = _prepared(100, 60, 1200, flank=100)
    model = ef.tl.fit_expression_predictor(
        mdata, architecture="levy_jurgenson", max_epochs=12, early_stopping_patience=3, progress=False
    )
    ef.tl.predict_methylation(mdata, model)
    scores = ef.tl.evaluate_methylation(mdata, groupby="expression_driven")
    overall = ef.tl.evaluate_methylation(mdata)
    print("levy_jurgenson, random split, 200 bp\n", overall.round(3).to_string(), "\n", scores.round(3).to_string())
    # it learns the expression effect of held-out CpGs, but ranks CpGs worse than the factorized model
    assert _driven(scores, "predicted_methylation")["per_cpg_spearman"] >= 0.5
    assert overall.loc["predicted_methylation", "spearman"] >= 0.6


def test_training_batches_are_shared_out_between_ranks(monkeypatch):
    import torch.distributed as dist

    from epiformer.models.expression_predictor._data import _shard

    items = list(range(11))
    assert _shard(items) == items  # not distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        shares.append(_shard(items))
    assert shares == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]  # equal lengths: no rank waits for another


def test_trains_in_32_bit_unless_asked(synthetic_small, monkeypatch):
    """The shared trainer would pick bf16 on CUDA; the expression predictor keeps the published 32-bit training."""
    from epiformer import _lightning

    seen = {}

    def fake_fit(module, **options):
        seen.update(options)
        return pd.DataFrame({"epoch": [0], "train_loss": [0.1], "val_loss": [0.1]})

    monkeypatch.setattr(_lightning, "fit", fake_fit)
    mdata = synthetic_small.copy()
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=50)
    ef.pp.cpg_gene_distances(mdata)
    ef.pp.split_pairs(mdata, random_state=0)
    model = ef.tl.fit_expression_predictor(mdata, max_epochs=1, progress=False)
    assert seen["precision"] == "32-true" and seen["restore_best"] is True
    model.train(max_epochs=1, progress=False, precision="bf16-mixed")
    assert seen["precision"] == "bf16-mixed"
