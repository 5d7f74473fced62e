from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
from scipy import sparse, stats

import epiformer as ef
from epiformer.pp import _dilute


def _published_rule(X: np.ndarray, retention: int, seed: int) -> np.ndarray:
    """The reproduction study's rule, written directly: one `Generator.choice` per sample."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(X)
    for i in range(X.shape[0]):
        row = X[i].astype(np.float64)
        if row.sum() == 0:
            rng.random(retention)  # keep the stream aligned: the vectorised rule draws for every sample
            continue
        chosen = rng.choice(X.shape[1], size=retention, p=row / row.sum(), replace=True)
        out[i, chosen] = X[i, chosen]
    return out


def _log_expression(n_obs=40, n_vars=300, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(0.4, 4.0, n_vars), (n_obs, n_vars))
    X = np.log1p(counts).astype(np.float32)
    X[:5, :3] = [0.2, 0, 2e-4]  # small first probabilities (about 1e-3): draws near 0 must still find them
    X[5] = 0
    X[5, [7, 250]] = [3.0, 1e-6]  # a row with two genes, one almost never drawn
    return X


@pytest.mark.parametrize("as_sparse", [False, True])
def test_legacy_matches_per_sample_choice_loop(as_sparse, monkeypatch):
    X = _log_expression()
    X[6] = 0  # a sample without expression stays empty (the loop below skips it: `choice` would fail)
    monkeypatch.setattr(_dilute, "_CHUNK_FLOATS", 3_000)  # several chunks: the random stream must carry over
    adata = ad.AnnData(sparse.csr_matrix(X) if as_sparse else X.copy())
    before = adata.X.copy()
    with pytest.warns(UserWarning, match="1 samples have no positive value"):
        ef.pp.dilute(adata, 5000, method="legacy", layer=None, random_state=7)
    diluted = adata.layers["diluted"]
    assert sparse.issparse(diluted) == as_sparse
    got = diluted.toarray() if as_sparse else diluted
    expected = _published_rule(X, 5000, 7)
    np.testing.assert_array_equal(got, expected)
    assert (got[6] == 0).all() and (got[5] != 0).sum() in (1, 2)
    assert got.dtype == np.float32 and (got != 0).sum() < (X != 0).sum()
    assert ((got == X) | (got == 0)).all()  # kept genes keep their values
    assert (adata.X != before).nnz == 0 if as_sparse else np.array_equal(adata.X, before)
    assert adata.uns["diluted"]["params"] == {
        "retention": 5000,
        "method": "legacy",
        "layer": None,
        "epiformer_version": adata.uns["diluted"]["params"]["epiformer_version"],
    }
    with pytest.warns(UserWarning):
        few = [ef.pp.dilute(adata, 150, method="legacy", layer=None, random_state=s, copy=True) for s in (7, 8)]
    few = [a.layers["diluted"].toarray() if as_sparse else a.layers["diluted"] for a in few]
    np.testing.assert_array_equal(few[0], _published_rule(X, 150, 7))
    assert not np.array_equal(few[0], few[1])


@pytest.mark.parametrize(
    ("retention", "n_reps", "scale"),
    [(20, 4000, 1.0), (600, 3000, 1.0), (600, 3000, 0.37)],  # counts (molecule tables) and non-integer weights
)
def test_multinomial_expected_counts_and_totals(retention, n_reps, scale):
    """Each sample gets exactly `retention` molecules; per-gene means and variances are multinomial."""
    counts = np.array([0, 1, 2, 5, 10, 40, 0, 3, 100, 7, 1, 31] * 4, dtype=np.float32) * scale  # 40 genes expressed
    adata = ad.AnnData(sparse.csr_matrix(np.tile(counts, (n_reps, 1))))
    adata.layers["counts"] = adata.X.copy()
    ef.pp.dilute(adata, retention, method="multinomial", random_state=3)
    out = adata.layers["diluted"].toarray()
    assert (out.sum(axis=1) == retention).all()
    assert (out[:, counts == 0] == 0).all()
    assert np.allclose(out, np.round(out))
    p = counts / counts.sum()
    expected = retention * p
    z = (out.mean(axis=0) - expected) / np.sqrt(retention * p * (1 - p) / n_reps + 1e-12)
    assert np.abs(z[p > 0]).max() < 5  # 40 genes, a 5-sigma departure would be a real bias
    big = p > 0.05
    np.testing.assert_allclose(out.var(axis=0)[big], (retention * p * (1 - p))[big], rtol=0.15)
    assert np.corrcoef(out[:, 5], out[:, 8])[0, 1] < 0  # multinomial counts compete


def test_multinomial_dense_and_sparse_agree_and_input_unchanged():
    rng = np.random.default_rng(0)
    X = rng.poisson(2.0, (30, 200)).astype(np.float32)
    dense = ad.AnnData(X.copy(), layers={"counts": X.copy()})
    sp = ad.AnnData(sparse.csr_matrix(X), layers={"counts": sparse.csr_matrix(X)})
    ef.pp.dilute(dense, 100, method="multinomial", random_state=1)
    ef.pp.dilute(sp, 100, method="multinomial", random_state=1)
    assert isinstance(dense.layers["diluted"], np.ndarray)
    assert sparse.isspmatrix_csr(sp.layers["diluted"])
    assert dense.layers["diluted"].dtype == sp.layers["diluted"].dtype == np.float32
    np.testing.assert_array_equal(dense.layers["diluted"], sp.layers["diluted"].toarray())
    np.testing.assert_array_equal(dense.layers["counts"], X)
    np.testing.assert_array_equal(sp.layers["counts"].toarray(), X)
    assert (dense.layers["diluted"] <= X.sum()).all() and (dense.layers["diluted"][X == 0] == 0).all()


def test_real_visium_and_mudata():
    visium = ef.datasets.visium_small()
    counts = visium.layers["counts"].copy()
    with pytest.warns(UserWarning, match="fewer than 5 molecules"):
        ef.pp.dilute(visium, 5)
    diluted = visium.layers["diluted"]
    assert sparse.issparse(diluted)
    totals = np.asarray(diluted.sum(axis=1)).ravel()
    before = np.asarray(counts.sum(axis=1)).ravel()
    np.testing.assert_array_equal(totals, np.minimum(before, 5))
    assert visium.uns["diluted"]["n_below_retention"] == int(((before > 0) & (before < 5)).sum()) > 0
    assert (diluted > counts).nnz == 0
    assert (visium.layers["counts"] != counts).nnz == 0
    ef.pp.dilute(visium, 5, method="multinomial")
    totals = np.asarray(visium.layers["diluted"].sum(axis=1)).ravel()
    assert (totals[before > 0] == 5).all()  # with replacement: every sample reaches the level
    mdata = ef.datasets.synthetic_multiome(20, 12, 50, random_state=0)
    rna_totals = np.asarray(mdata["rna"].layers["counts"].sum(axis=1)).ravel()
    ef.pp.dilute(mdata, 1000, random_state=0)
    np.testing.assert_array_equal(
        np.asarray(mdata["rna"].layers["diluted"].sum(axis=1)).ravel(), np.minimum(rna_totals, 1000)
    )
    assert "diluted" not in mdata["methyl"].layers


@pytest.mark.parametrize("method", ["hypergeometric", "multinomial", "legacy"])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_empty_samples_first_and_last(method, as_sparse):
    X = np.array([[0, 0, 0], [1, 2, 3], [0.5, 0, 2.5], [0, 0, 0]], dtype=np.float32)
    if method == "hypergeometric":
        X[2] = [1, 0, 5]  # whole molecules
    adata = ad.AnnData(sparse.csr_matrix(X) if as_sparse else X.copy())
    with pytest.warns(UserWarning, match="2 samples have no positive value"):
        ef.pp.dilute(adata, 4, method=method, layer=None)
    out = adata.layers["diluted"]
    out = out.toarray() if as_sparse else out
    assert (out[[0, 3]] == 0).all() and (out[:, 1][X[:, 1] == 0] == 0).all()
    if method != "legacy":
        assert out[1].sum() == 4 and out[2].sum() == 4  # (multinomial: non-integer weights are searched)
    else:
        assert ((out == X) | (out == 0)).all()


def test_errors_and_empty_samples():
    X = np.array([[0, 0, 0], [1, 2, 3]], dtype=np.float32)
    adata = ad.AnnData(X.copy(), layers={"counts": X.copy()})
    with pytest.warns(UserWarning, match="1 samples have no positive value"):
        ef.pp.dilute(adata, 4)
    np.testing.assert_array_equal(adata.layers["diluted"][0], 0)
    assert adata.layers["diluted"][1].sum() == 4
    with pytest.raises(ValueError, match="method"):
        ef.pp.dilute(adata, 4, method="binomial")
    with pytest.raises(ValueError, match="positive integer"):
        ef.pp.dilute(adata, 0)
    with pytest.raises(ValueError, match="positive integer"):
        ef.pp.dilute(adata, 2.5)
    negative = ad.AnnData(-X, layers={"counts": -X})
    with pytest.raises(ValueError, match="negative"):
        ef.pp.dilute(negative, 4)
    assert "diluted" not in negative.layers
    with pytest.raises(KeyError, match="Layer 'raw' not found"):
        ef.pp.dilute(adata, 4, layer="raw")


def _capture(X, retention, seed=0, **kwargs):
    """`ef.pp.dilute` with the default method on counts `X` (layer "counts"); returns the layer and `uns`."""
    adata = ad.AnnData(X.copy(), layers={"counts": X.copy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # empty samples, samples below the retention level
        ef.pp.dilute(adata, retention, random_state=seed, **kwargs)
    np.testing.assert_array_equal(_dense(adata.layers["counts"]), _dense(X))  # the counts are untouched
    return adata.layers["diluted"], adata.uns["diluted"]


def _dense(X):
    return X.toarray() if sparse.issparse(X) else np.asarray(X)


def test_hypergeometric_never_adds_a_molecule(monkeypatch):
    """Random sparse counts: no diluted count exceeds the original, totals are min(total, retention)."""
    rng = np.random.default_rng(0)
    for trial in range(150):
        if trial % 3 == 0:  # small chunks: rows spread over several draws and rounds
            monkeypatch.setattr(_dilute, "_DRAW_BUDGET", int(rng.integers(1, 400)))
        n_obs, n_vars = int(rng.integers(1, 25)), int(rng.integers(1, 60))
        X = sparse.random(n_obs, n_vars, density=rng.random(), format="csr", random_state=trial)
        scale = [3, 50, 5_000, 200_000][trial % 4]  # large counts: more dropped than kept, counts over 2**16
        X.data = np.ceil(X.data * scale)
        X = X.astype([np.float32, np.float64, np.int64, np.int32][trial % 4])
        retention = int(rng.integers(1, 3 * scale))
        out, uns = _capture(X if trial % 5 else X.toarray(), retention, seed=trial)
        assert sparse.issparse(out) == bool(trial % 5) and out.dtype == X.dtype
        got, counts = _dense(out), X.toarray()
        assert (got <= counts).all() and (got >= 0).all()
        totals = counts.sum(axis=1)
        np.testing.assert_array_equal(got.sum(axis=1), np.minimum(totals, retention))
        short = totals < retention
        np.testing.assert_array_equal(got[short], counts[short])  # kept as they are
        assert uns["n_below_retention"] == int((short & (totals > 0)).sum())
        assert uns["params"]["method"] == "hypergeometric"
        if sparse.issparse(out):
            assert out.has_canonical_format and (out.data != 0).all()


def test_hypergeometric_law_matches_expectations_and_scanpy():
    """One cell thinned many times: per-gene means, variances and covariances of a hypergeometric draw."""
    import scanpy as sc

    cell = np.array([0, 1, 2, 5, 10, 40, 3, 100, 7, 1, 31], dtype=np.float32)  # 200 molecules
    total, retention, n_reps = cell.sum(), 50, 4000
    ours = _dense(_capture(sparse.csr_matrix(np.tile(cell, (n_reps, 1))), retention, seed=5)[0])
    # scanpy seeds every cell with `random_state`: identical cells get identical draws, so one call per draw
    n_scanpy = 1500
    theirs = np.empty((n_scanpy, len(cell)))
    for seed in range(n_scanpy):
        one = ad.AnnData(sparse.csr_matrix(cell[None, :]))
        sc.pp.downsample_counts(one, counts_per_cell=retention, replace=False, random_state=seed)
        theirs[seed] = one.X.toarray()[0]
    assert (theirs.sum(axis=1) == retention).all() and (ours.sum(axis=1) == retention).all()
    p = cell / total
    mean = retention * p
    var = retention * p * (1 - p) * (total - retention) / (total - 1)
    for draws in (ours, theirs):
        n = len(draws)
        z = (draws.mean(axis=0) - mean)[p > 0] / np.sqrt(var[p > 0] / n)
        assert np.abs(z).max() < 4.5  # 10 genes
        big = p > 0.1
        np.testing.assert_allclose(draws.var(axis=0)[big], var[big], rtol=0.12)  # multinomial: 1.33 x as large
        cov = np.cov(draws[:, 5], draws[:, 7])[0, 1]
        expected = -retention * p[5] * p[7] * (total - retention) / (total - 1)
        assert abs(cov - expected) < 0.15 * abs(expected)
    for gene in (5, 7, 10):  # each gene's count follows its hypergeometric law, and so do scanpy's
        law = stats.hypergeom(total, cell[gene], retention)
        support = np.arange(int(law.ppf(0.002)), int(law.ppf(0.998)) + 1)
        edges = np.concatenate([[-np.inf], support[1:] - 0.5, [np.inf]])
        expected = np.diff(law.cdf(np.concatenate([[-1], support[1:] - 1, [np.inf]])))
        observed = np.histogram(ours[:, gene], edges)[0]
        assert stats.chisquare(observed, expected * n_reps / expected.sum()).pvalue > 1e-3
        table = np.stack([observed, np.histogram(theirs[:, gene], edges)[0]])
        assert stats.chi2_contingency(table[:, table.sum(axis=0) > 0]).pvalue > 1e-3
        assert stats.ks_2samp(ours[:, gene], theirs[:, gene]).pvalue > 1e-3


def test_hypergeometric_seeded_dense_sparse_and_modes(monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.negative_binomial(2, 0.2, (60, 300)).astype(np.float32)  # about 2,400 molecules per sample
    X[0] = 0
    X[1] = 0
    X[1, :3] = [1, 2, 3]  # fewer than the retention level
    first, uns = _capture(sparse.csr_matrix(X), 1000, seed=11)
    again, _ = _capture(sparse.csr_matrix(X), 1000, seed=11)
    dense, _ = _capture(X, 1000, seed=11)
    other, _ = _capture(sparse.csr_matrix(X), 1000, seed=12)
    assert (first != again).nnz == 0 and (first != other).nnz > 0
    np.testing.assert_array_equal(first.toarray(), dense)
    assert isinstance(dense, np.ndarray) and dense.dtype == np.float32 and sparse.isspmatrix_csr(first)
    assert uns["n_below_retention"] == 1 and uns["params"]["retention"] == 1000
    np.testing.assert_array_equal(dense[1], X[1])
    # a level above half of every total: the dropped molecules are drawn instead of the kept ones
    most, _ = _capture(X, 2000, seed=1)
    totals = X.sum(axis=1)
    assert (most <= X).all() and (most.sum(axis=1) == np.minimum(totals, 2000)).all()
    adata = ad.AnnData(X[1:].copy(), layers={"counts": X[1:].copy()})  # no empty sample: one warning
    with pytest.warns(UserWarning, match="1 samples have fewer than 1000 molecules and are kept as they are"):
        ef.pp.dilute(adata, 1000)
    monkeypatch.setattr(_dilute, "_DRAW_BUDGET", 50)  # a row per chunk: a different stream, the same law
    small, _ = _capture(X, 1000, seed=11)
    assert (small <= X).all() and (small.sum(axis=1) == np.minimum(totals, 1000)).all()


def test_hypergeometric_refuses_fractional_counts():
    X = np.array([[1, 2, 3.5, 4], [2, 2, 2, 2]], dtype=np.float32)
    adata = ad.AnnData(X.copy(), layers={"counts": X.copy()})
    with pytest.raises(ValueError, match=r"`layers\['counts'\]` holds non-integer values.*multinomial"):
        ef.pp.dilute(adata, 3)
    assert "diluted" not in adata.layers and "diluted" not in adata.uns
    np.testing.assert_array_equal(adata.layers["counts"], X)
    ef.pp.dilute(adata, 3, method="multinomial")  # estimated counts: with replacement
    assert (adata.layers["diluted"].sum(axis=1) == 3).all()
    with pytest.raises(ValueError, match="'hypergeometric', 'multinomial' or 'legacy'"):
        ef.pp.dilute(adata, 3, method="capture")


def test_dilution_curve_uses_capture_by_default():
    """The curve's default is the capture rule: recorded, re-normalised counts, per-level shortfalls counted."""
    import inspect

    assert inspect.signature(ef.tl.dilution_curve).parameters["method"].default == "hypergeometric"
    mdata = ef.datasets.synthetic_multiome(24, 12, 60, random_state=0)
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=50)
    ef.pp.cpg_gene_distances(mdata)
    ef.pp.split_pairs(mdata, by="random", block_size=20_000, random_state=0)
    model = ef.tl.fit_expression_predictor(mdata, max_epochs=1, progress=False)
    totals = np.asarray(mdata["rna"].layers["counts"].sum(axis=1)).ravel()
    high = int(np.quantile(totals, 0.5))
    calls = []
    original = ef.pp.dilute

    def spy(*args, **kwargs):
        calls.append(kwargs["method"])
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ef.pp, "dilute", spy)
        with pytest.warns(UserWarning, match="fewer molecules than a retention level"):
            ef.tl.dilution_curve(mdata, model, retention=(high, 20), n_iter=2, progress=False)
    assert calls == ["hypergeometric"] * 4
    result = mdata.uns["dilution"]
    assert result["params"]["method"] == "hypergeometric" and result["params"]["layer"] == "counts"
    assert result["n_below_retention"]["20"] == 0 < result["n_below_retention"][str(high)]
    with pytest.raises(ValueError, match="'hypergeometric', 'multinomial' or 'legacy'"):
        ef.tl.dilution_curve(mdata, model, method="poisson")
    kept = result["table"].groupby("retention")["n_genes_kept"].mean()
    assert kept[20] <= 20 and kept[20] < kept[high]
