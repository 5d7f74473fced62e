"""`ef.tl.attention` / `ef.pl.attention`: softmax attention received per CpG, in query chunks, per group."""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab
from epiformer.models.methylgpt import received_attention

N_CPGS = 12


def _model(probes, *, seed: int = 0) -> MethylGPT:
    torch.manual_seed(seed)
    return MethylGPT(MethylGPTVocab.from_probes(probes), d_model=16, n_layers=3, n_heads=2).eval()


@pytest.fixture
def cohort() -> AnnData:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (6, N_CPGS)).astype(np.float32)
    X[0, [2, 5]] = np.nan
    X[3, 7] = np.nan
    adata = AnnData(X=X, obs=pd.DataFrame({"group": ["a", "a", "a", "b", "b", "b"]}, index=[f"S{i}" for i in range(6)]))
    adata.var_names = [f"cg{i:08d}" for i in range(N_CPGS)]
    return adata


def _dense_reference(model: MethylGPT, betas: np.ndarray, layer: int) -> np.ndarray:
    """Attention received by each CpG of one sample: the full seq x seq softmax, written out."""
    with torch.no_grad():
        ids, values, kpm = model.tokenize(torch.from_numpy(betas[None]), missing="mask")
        tokens, _ = model.embed_tokens(ids, values)
        hidden = tokens
        for block in model.transformer_encoder.layers[:layer]:
            hidden = block(hidden, key_padding_mask=kpm)
        q, k, _ = model.transformer_encoder.layers[layer].self_attn.project(hidden)
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # (1, heads, seq, seq)
        keys = torch.ones(ids.shape[1], dtype=torch.bool) if kpm is None else ~kpm[0]
        scores[..., ~keys] = float("-inf")
        probs = torch.softmax(scores, dim=-1)[0][:, keys]  # real queries only
        received = probs.mean(dim=(0, 1))  # over heads and queries
    return received[1:].numpy()  # CpG tokens (masked keys receive 0)


@pytest.mark.parametrize("layer", [0, 2, -1])
def test_matches_the_dense_softmax_per_sample(cohort, layer):
    model = _model(list(cohort.var_names))
    cohort.obs["sample"] = cohort.obs_names
    ef.tl.attention(cohort, model, groupby="sample", encoder_layer=layer, device="cpu", progress=False)  # float32
    means = cohort.varm["methylgpt_attention"]
    assert list(means.columns) == list(cohort.obs_names)
    for i, name in enumerate(cohort.obs_names):
        observed = ~np.isnan(cohort.X[i])
        ref = _dense_reference(model, cohort.X[i], layer % 3)
        np.testing.assert_allclose(means[name].to_numpy(), ref, rtol=0, atol=1e-6)
        assert (means[name].to_numpy()[~observed] == 0).all()  # missing CpGs are not keys
        assert 0 < means[name].sum() < 1  # the rest goes to <cls>


def test_query_chunks_do_not_change_the_result():
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 40, 8, generator=generator), torch.randn(2, 3, 40, 8, generator=generator)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[1, 30:] = True
    whole = received_attention(q, k, mask, chunk_scores=10**9)
    one_query = received_attention(q, k, mask, chunk_scores=1)
    torch.testing.assert_close(one_query, whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(whole.sum(dim=1), torch.ones(2))  # probabilities over the keys
    assert (whole[1, 30:] == 0).all()


def test_groups_top_table_and_test(cohort):
    model = _model(list(cohort.var_names[:10]) + ["cg99999999"])  # 10 of 11 vocabulary CpGs in the data
    before = cohort.copy()
    out = ef.tl.attention(cohort, model, groupby="group", n_top=4, progress=False, copy=True)
    np.testing.assert_array_equal(cohort.X, before.X)
    assert "methylgpt_attention" not in cohort.uns  # copy=True leaves the input alone
    means = out.varm["methylgpt_attention"]
    assert list(means.columns) == ["a", "b"] and means.shape == (N_CPGS, 2)
    assert means.iloc[10:].isna().all().all() and means.iloc[:10].notna().all().all()  # CpGs outside the vocab
    info = out.uns["methylgpt_attention"]
    assert info["groups"] == ["a", "b"] and info["params"]["encoder_layer"] == 2
    assert info["params"]["n_found"] == 10 and info["params"]["groupby"] == "group"
    top = info["top"]
    assert list(top.columns) == ["group", "rank", "cpg", "score", "score_rest", "pval", "pval_adj"]
    assert len(top) == 8 and top.groupby("group")["rank"].apply(list).to_dict() == {
        "a": [1, 2, 3, 4],
        "b": [1, 2, 3, 4],
    }
    a = top[top["group"] == "a"]
    assert a["score"].is_monotonic_decreasing
    np.testing.assert_allclose(a["score"], means.loc[a["cpg"], "a"], rtol=1e-6)
    np.testing.assert_allclose(a["score_rest"], means.loc[a["cpg"], "b"], rtol=1e-6)
    assert ((top["pval"] > 0) & (top["pval"] <= 1) & (top["pval_adj"] >= top["pval"])).all()

    single = ef.tl.attention(cohort, model, progress=False, copy=True).uns["methylgpt_attention"]
    assert single["groups"] == ["all"] and single["top"]["pval"].isna().all()


def test_legacy_mode_attends_missing_cpgs(cohort):
    model = _model(list(cohort.var_names))
    cohort.obs["sample"] = cohort.obs_names
    ef.tl.attention(cohort, model, groupby="sample", missing="legacy", progress=False)
    assert cohort.varm["methylgpt_attention"].loc["cg00000002", "S0"] > 0  # missing, value -2, but attended


def test_bad_input_is_refused_and_nothing_written(cohort):
    model = _model(list(cohort.var_names))
    with pytest.raises(ValueError, match="encoder_layer"):
        ef.tl.attention(cohort, model, encoder_layer=3, progress=False)
    with pytest.raises(KeyError, match="not in `adata.obs`"):
        ef.tl.attention(cohort, model, groupby="tissue", progress=False)
    cohort.obs.loc["S2", "group"] = np.nan
    with pytest.raises(ValueError, match="1 missing labels"):
        ef.tl.attention(cohort, model, groupby="group", progress=False)
    with pytest.raises(ValueError, match="None of the model's"):
        ef.tl.attention(cohort, _model(["cg99999999"]), progress=False)
    with pytest.raises(KeyError, match="run `ef.tl.attention"):
        ef.pl.attention(cohort)
    assert "methylgpt_attention" not in cohort.uns and "methylgpt_attention" not in cohort.varm


def test_plot(cohort):
    model = _model(list(cohort.var_names))
    ef.tl.attention(cohort, model, groupby="group", progress=False)
    fig, ax = plt.subplots()
    assert ef.pl.attention(cohort, n_top=3, ax=ax) is ax
    assert len(ax.get_xticklabels()) == 2 and 3 <= len(ax.get_yticklabels()) <= 6
    n_rows = len(ax.get_yticklabels())  # the title states what the rows are and how many
    assert ax.get_title() == f"attention received: top 3 CpGs per group\n{n_rows} CpGs, 2 groups"
    assert ax.images[0].colorbar.ax.get_ylabel() == "attention received"
    with pytest.raises(ValueError, match="Unknown groups"):
        ef.pl.attention(cohort, groups=["c"])
    plt.close(fig)
