"""EpiGePT cell contexts: pseudo-bulk, CPM/TPM, quantile normalisation against a reference, missing TFs."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse

import epiformer as ef
from epiformer import Key

TFS = [f"TF{i}" for i in range(10)] + ["ABSENT1", "ABSENT2"]


def authors_quantile_norm(df: pd.DataFrame) -> pd.DataFrame:
    """The published ``preprocess.quantile_norm`` (genes x contexts), written directly in pandas."""
    rank_mean = df.stack().groupby(df.rank(method="first").stack().astype(int)).mean()
    return df.rank(method="min").stack().astype(int).map(rank_mean).unstack()


@pytest.fixture
def counts():
    """30 cells x (10 TFs + 2 other genes) in 3 groups; ties at zero; group 'c' expresses only 2 TFs."""
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.uniform(0.2, 6, 12), (30, 12)).astype(np.float32)
    X[:, 3] = 0  # never expressed
    groups = np.repeat(["a", "b", "c"], 10)
    X[groups == "c", 2:10] = 0
    adata = AnnData(X=sparse.csr_matrix(X))
    adata.var_names = [f"tf{i}" for i in range(10)] + ["GAPDH", "ACTB"]  # case differs from the TF list
    adata.obs["group"] = pd.Categorical(groups)
    adata.layers["counts"] = adata.X.copy()
    return adata


def _run(adata, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ef.pp.tf_context(adata, **kwargs)


def test_pseudobulk_cpm_and_qn_among_contexts(counts):
    before = counts.copy()
    ctx = _run(counts, groupby="group", tfs=TFS, min_cells=5)
    assert ctx.obs_names.tolist() == ["a", "b", "c"] and ctx.var_names.tolist() == TFS
    X = counts.layers["counts"].toarray().astype(np.float64)
    summed = np.stack([X[counts.obs["group"] == g].sum(0) for g in "abc"])
    cpm = summed / summed.sum(1, keepdims=True) * 1e6
    np.testing.assert_allclose(ctx.layers[Key.layers.tf_expression][:, :10], cpm[:, :10], rtol=1e-5)
    assert (ctx.layers[Key.layers.tf_expression][:, 10:] == 0).all()

    table = pd.DataFrame(ctx.layers[Key.layers.tf_expression].T.astype(np.float64), index=TFS, columns=list("abc"))
    expected = np.log1p(authors_quantile_norm(table)).T.to_numpy()
    np.testing.assert_allclose(ctx.X, expected, rtol=1e-6)

    assert ctx.obs[Key.obs.n_cells].tolist() == [10, 10, 10]
    observed = ctx.layers[Key.layers.observed].astype(bool)
    assert (observed == (ctx.layers[Key.layers.tf_expression] > 0)).all()
    assert ctx.obs[Key.obs.n_tfs_observed].tolist() == observed.sum(1).tolist()
    assert ctx.var[Key.var.tf_in_data].tolist() == [True] * 10 + [False] * 2
    assert ctx.uns[Key.uns.tf_context]["tfs_absent"] == ["ABSENT1", "ABSENT2"]
    # the input is untouched
    assert (counts.X != before.X).nnz == 0 and counts.obs.equals(before.obs)


def test_qn_against_a_reference_table(counts):
    rng = np.random.default_rng(1)
    reference = pd.DataFrame(rng.gamma(1.0, 30.0, (12, 6)), index=TFS, columns=[f"ref{i}" for i in range(6)])
    reference.iloc[0, 0] = reference.iloc[1, 0]  # a tie in the reference too
    ctx = _run(counts, groupby="group", reference=reference, min_cells=5)  # TF order from the table
    assert ctx.var_names.tolist() == TFS

    rank_mean = reference.stack().groupby(reference.rank(method="first").stack().astype(int)).mean()
    new = pd.DataFrame(ctx.layers[Key.layers.tf_expression].T.astype(np.float64), index=TFS, columns=list("abc"))
    expected = new.rank(method="min").astype(int).apply(lambda col: col.map(rank_mean))
    np.testing.assert_allclose(ctx.X, np.log1p(expected.T.to_numpy()), rtol=1e-6)
    np.testing.assert_allclose(ctx.uns[Key.uns.tf_context]["rank_mean"], rank_mean.to_numpy())

    # contexts x TFs orientation, a reversed TF order taken from a model, and a rank-mean vector all agree
    model = SimpleNamespace(tf_names=TFS[::-1])
    flipped = _run(counts, groupby="group", reference=reference.T, tfs=model, min_cells=5)
    np.testing.assert_allclose(flipped.X, ctx.X[:, ::-1], rtol=1e-6)
    vector = _run(counts, groupby="group", reference=rank_mean.to_numpy(), tfs=TFS, min_cells=5)
    np.testing.assert_allclose(vector.X, ctx.X, rtol=1e-6)


def _warnings(call):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in record]


def test_missing_tfs_warn_with_numbers(counts):
    messages = _warnings(lambda: ef.pp.tf_context(counts, groupby="group", tfs=TFS, min_cells=5))
    assert len(messages) == 2
    assert messages[0].startswith("2 of 12 TFs are absent from the data: 'ABSENT1', 'ABSENT2'.")
    # group c expresses 2 of the 12 TFs -> 10 missing; a and b miss only TF3 and the two absent ones
    assert messages[1].startswith("1 contexts have most TFs missing (absent or zero): 'c' (10 of 12 missing).")
    messages = _warnings(lambda: ef.pp.tf_context(counts, groupby="group", tfs=TFS))
    assert messages[-1].startswith("3 contexts pool fewer than 20 observations: 'a' (10), 'b' (10), 'c' (10).")


def test_tpm_none_and_per_observation(counts):
    counts.var["length"] = np.linspace(500, 5000, counts.n_vars)
    ctx = _run(counts, groupby="group", tfs=TFS, unit="tpm", min_cells=5)
    X = counts.layers["counts"].toarray().astype(np.float64)
    summed = np.stack([X[counts.obs["group"] == g].sum(0) for g in "abc"]) / (counts.var["length"].to_numpy() / 1e3)
    tpm = summed / summed.sum(1, keepdims=True) * 1e6
    np.testing.assert_allclose(ctx.layers[Key.layers.tf_expression][:, :10], tpm[:, :10], rtol=1e-5)

    from mudata import MuData

    peaks = AnnData(np.ones((counts.n_obs, 2), dtype=np.float32), obs=counts.obs[[]].copy())
    peaks.var_names = ["peak1", "peak2"]
    mdata = MuData({"rna": counts, "atac": peaks})
    np.testing.assert_array_equal(_run(mdata, groupby="group", tfs=TFS, unit="tpm", min_cells=5).X, ctx.X)

    each = _run(counts, layer=None, tfs=TFS, unit="none")
    assert each.n_obs == 30 and each.obs[Key.obs.n_cells].eq(1).all()
    np.testing.assert_allclose(each.layers[Key.layers.tf_expression][:, :10], X[:, :10])


def test_errors_leave_input_untouched(counts):
    before = counts.copy()
    with pytest.raises(ValueError, match="Pass `tfs=`"):
        ef.pp.tf_context(counts, groupby="group")
    with pytest.raises(KeyError, match="`groupby='cluster'` is not a column"):
        ef.pp.tf_context(counts, groupby="cluster", tfs=TFS)
    with pytest.raises(KeyError, match="gene lengths"):
        ef.pp.tf_context(counts, groupby="group", tfs=TFS, unit="tpm")
    with pytest.raises(ValueError, match="TF list is unknown"):
        ef.pp.tf_context(counts, groupby="group", tfs=SimpleNamespace(tf_names=None))
    with pytest.raises(ValueError, match="not in the reference table"):
        ef.pp.tf_context(
            counts, groupby="group", tfs=TFS, reference=pd.DataFrame(np.ones((2, 3)), index=["TF0", "TF1"])
        )
    negative = counts.copy()
    negative.layers["counts"] = -negative.layers["counts"]
    with pytest.raises(ValueError, match="negative values"):
        ef.pp.tf_context(negative, groupby="group", tfs=TFS)
    assert (counts.X != before.X).nnz == 0 and list(counts.obs.columns) == ["group"]


def test_real_pbmc_clusters():
    pbmc = ef.datasets.pbmc_small()
    tfs = ["SATB1", "TCF7", "XBP1", "ZNF76", "SPI1", "CEBPB", "GATA3"]
    ctx = None

    def call():
        nonlocal ctx
        ctx = ef.pp.tf_context(pbmc, groupby="RNA_snn_res.1", tfs=tfs, min_cells=10)

    messages = _warnings(call)
    assert messages[0].startswith("3 of 7 TFs are absent from the data: 'SPI1', 'CEBPB', 'GATA3'.")
    assert ctx.obs[Key.obs.n_cells].sum() == 80
    assert ctx.var[Key.var.tf_in_data].tolist() == [True] * 4 + [False] * 3
    # TCF7 (T cells) varies across the PBMC clusters; unexpressed TFs sit at the lowest reference value
    assert ctx.layers[Key.layers.tf_expression][:, 1].std() > 0
    np.testing.assert_allclose(ctx.X[:, 4:], ctx.X.min(axis=1, keepdims=True).repeat(3, axis=1))
