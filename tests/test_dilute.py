from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

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
    ef.pp.dilute(adata, retention, random_state=3)
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
    ef.pp.dilute(dense, 100, random_state=1)
    ef.pp.dilute(sp, 100, random_state=1)
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
    ef.pp.dilute(visium, 5)
    diluted = visium.layers["diluted"]
    assert sparse.issparse(diluted)
    totals = np.asarray(diluted.sum(axis=1)).ravel()
    has = np.asarray(counts.sum(axis=1)).ravel() > 0
    assert (totals[has] == 5).all()
    assert (visium.layers["counts"] != counts).nnz == 0
    mdata = ef.datasets.synthetic_multiome(20, 12, 50, random_state=0)
    ef.pp.dilute(mdata, 1000, random_state=0)
    assert (mdata["rna"].layers["diluted"].sum(axis=1) == 1000).all()
    assert "diluted" not in mdata["methyl"].layers


@pytest.mark.parametrize("method", ["multinomial", "legacy"])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_empty_samples_first_and_last(method, as_sparse):
    X = np.array([[0, 0, 0], [1, 2, 3], [0.5, 0, 2.5], [0, 0, 0]], dtype=np.float32)
    adata = ad.AnnData(sparse.csr_matrix(X) if as_sparse else X.copy())
    with pytest.warns(UserWarning, match="2 samples have no positive value"):
        ef.pp.dilute(adata, 4, method=method, layer=None)
    out = adata.layers["diluted"]
    out = out.toarray() if as_sparse else out
    assert (out[[0, 3]] == 0).all() and (out[:, 1][X[:, 1] == 0] == 0).all()
    if method == "multinomial":
        assert out[1].sum() == 4 and out[2].sum() == 4  # non-integer weights are searched, not expanded
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
