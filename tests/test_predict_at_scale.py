"""`ef.tl.predict_methylation` at scale (issue 21): row chunks, any number of CpGs, results on disk."""

from __future__ import annotations

import gc
import tracemalloc

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

import epiformer as ef
from epiformer.models.expression_predictor._data import ExpressionScaler
from epiformer.models.expression_predictor._engine import in_model_order

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    """A random-weight factorized model of 30 genes x 400 CpGs with a fitted scaler (no training needed here)."""
    mdata = ef.datasets.synthetic_multiome(60, 30, 400, random_state=0)
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=50)
    ef.pp.cpg_gene_distances(mdata)
    predictor = ef.models.ExpressionPredictor(mdata)
    predictor.scaler = ExpressionScaler.fit(np.asarray(mdata["rna"].X, dtype=np.float32), "standard")
    return predictor


def _spots(model, n, *, fmt="csr", seed=0, extra_genes=10):
    """`n` spots of sparse log expression over the model's genes (one dropped) plus genes the model ignores."""
    rng = np.random.default_rng(seed)
    genes = list(model.genes[1:]) + [f"other{i}" for i in range(extra_genes)]
    counts = sparse.random(n, len(genes), density=0.3, random_state=seed, format="csr", dtype=np.float32)
    counts.data = np.log1p(rng.negative_binomial(2, 0.3, counts.nnz).astype(np.float32) + 1)
    X = counts.asformat(fmt) if fmt != "dense" else counts.toarray()
    spots = ad.AnnData(X)
    spots.var_names = genes
    spots.obs_names = [f"spot{i}" for i in range(n)]
    return spots


def _one_pass(model, spots, **batches):
    """The pre-chunking path: the whole matrix made dense in the model's gene order, then one `predict`."""
    expr, present = in_model_order(spots.X, spots.var_names, model.genes)
    return model.predict(expr, present=present, **batches)


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_chunked_equals_one_pass(model, fmt):
    spots = _spots(model, 23, fmt=fmt)
    reference = None
    for sample_batch, cpg_batch in [(1, 400), (5, 64), (23, 1000), (256, 33)]:
        with pytest.warns(UserWarning, match="absent"):
            result = ef.tl.predict_methylation(
                spots, model, sample_batch=sample_batch, cpg_batch=cpg_batch, progress=False, copy=True
            )
        betas = result.obsm["predicted_methylation"]
        assert betas.shape == (23, 400) and betas.dtypes.eq(np.float32).all()
        assert list(betas.index) == list(spots.obs_names) and list(betas.columns) == model.cpgs
        # the same blocks as one pass over the whole matrix: exactly the same values
        np.testing.assert_array_equal(
            betas.to_numpy(), _one_pass(model, spots, sample_batch=sample_batch, cpg_batch=cpg_batch)
        )
        reference = betas.to_numpy() if reference is None else reference
        np.testing.assert_allclose(betas.to_numpy(), reference, atol=1e-6)  # other blocks: float rounding only
        assert result.uns["predicted_methylation"]["n_genes_missing"] == 1
    assert "predicted_methylation" not in spots.obsm  # copy=True left the input alone


def test_paired_chunks_equal_one_pass(model):
    mdata = model.mdata
    copy = ef.tl.predict_methylation(mdata, model, sample_batch=7, cpg_batch=50, progress=False, copy=True)
    expected = model.predict(np.asarray(mdata["rna"].X, dtype=np.float32), sample_batch=7, cpg_batch=50)
    np.testing.assert_array_equal(copy["methyl"].layers["predicted_methylation"], expected)


def test_on_disk_equals_in_memory(model, tmp_path):
    spots = _spots(model, 41)
    cpgs = model.cpgs[:150]
    with pytest.warns(UserWarning, match="absent"):
        memory = ef.tl.predict_methylation(spots, model, cpgs=cpgs, sample_batch=8, progress=False, copy=True)
    store = tmp_path / "betas.zarr"
    spots.obsm["predicted_methylation"] = memory.obsm["predicted_methylation"].iloc[:, :3] * 0  # an earlier run's
    with pytest.warns(UserWarning, match="absent"):
        assert ef.tl.predict_methylation(spots, model, cpgs=cpgs, sample_batch=8, progress=False, out=store) is None
    expected = memory.obsm["predicted_methylation"]
    assert "predicted_methylation" not in spots.obsm  # no stale map beside the store
    info = spots.uns["predicted_methylation"]
    assert info["path"] == str(store.resolve()) and info["params"]["out"] == str(store.resolve())
    assert info["n_genes_missing"] == 1 and list(info["cpgs"].index) == cpgs
    back = ad.read_zarr(store)
    assert back.shape == (41, 150) and back.X.dtype == np.float32
    np.testing.assert_array_equal(back.X, expected.to_numpy())
    assert list(back.obs_names) == list(spots.obs_names) and list(back.var_names) == cpgs
    assert back.var["chrom"].tolist() == info["cpgs"]["chrom"].tolist()
    np.testing.assert_array_equal(back.var["pos"].to_numpy(), info["cpgs"]["pos"].to_numpy())
    import zarr

    lazy = zarr.open_group(str(store), mode="r")["X"]
    assert lazy.chunks == (8, 150)
    np.testing.assert_array_equal(lazy[10:20], expected.to_numpy()[10:20])


def test_backed_input(model, tmp_path):
    spots = _spots(model, 37)
    spots.write_h5ad(tmp_path / "spots.h5ad")
    backed = ad.read_h5ad(tmp_path / "spots.h5ad", backed="r")
    with pytest.warns(UserWarning, match="absent"):
        ef.tl.predict_methylation(backed, model, sample_batch=10, progress=False, out=tmp_path / "b.zarr")
    np.testing.assert_array_equal(ad.read_zarr(tmp_path / "b.zarr").X, _one_pass(model, spots, sample_batch=10))
    backed.file.close()


def _peak_bytes(model, spots, store) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        ef.tl.predict_methylation(spots, model, sample_batch=64, progress=False, out=store)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.filterwarnings("ignore:1 of 30 model genes")
def test_memory_is_bounded_on_disk(model, tmp_path):
    small, large = _spots(model, 500, extra_genes=1_000), _spots(model, 4_000, extra_genes=1_000)
    peaks = [_peak_bytes(model, s, tmp_path / f"{s.n_obs}.zarr") for s in (small, large)]
    output_growth = (large.n_obs - small.n_obs) * 400 * 4  # 5.6 MB more betas
    assert peaks[1] - peaks[0] < 0.1 * output_growth, (peaks, output_growth)
    # and in memory, the result is all that grows (no dense copy of the expression)
    gc.collect()
    tracemalloc.start()
    try:
        ef.tl.predict_methylation(large, model, sample_batch=64, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    betas_bytes, dense_bytes = large.n_obs * 400 * 4, large.n_obs * large.n_vars * 4
    assert peak < 1.2 * betas_bytes + 2e6 < dense_bytes, (peak, betas_bytes, dense_bytes)


def test_refusals_leave_everything_as_it_was(model, tmp_path):
    spots = _spots(model, 20)
    before = spots.copy()
    store = tmp_path / "taken.zarr"
    store.mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        ef.tl.predict_methylation(spots, model, out=store, progress=False)
    with pytest.raises(FileNotFoundError, match="folder"):
        ef.tl.predict_methylation(spots, model, out=tmp_path / "nowhere" / "b.zarr", progress=False)
    for bad in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="sample_batch"):
            ef.tl.predict_methylation(spots, model, sample_batch=bad, progress=False)
        with pytest.raises(ValueError, match="cpg_batch"):
            ef.tl.predict_methylation(spots, model, cpg_batch=bad, progress=False)
    with pytest.raises(ValueError, match="MuData gets a layer"):
        ef.tl.predict_methylation(model.mdata, model, out=tmp_path / "m.zarr", progress=False)
    # NaN in a late chunk: the half-written store is removed, and the data is untouched
    spots.X = spots.X.toarray()
    spots.X[17, 3] = np.nan
    before = spots.copy()
    for out in (None, tmp_path / "failed.zarr"):
        with pytest.raises(ValueError, match="NaN"), pytest.warns(UserWarning, match="absent"):
            ef.tl.predict_methylation(spots, model, sample_batch=4, out=out, progress=False)
    assert not (tmp_path / "failed.zarr").exists()
    assert set(spots.obsm) == set(before.obsm) == set() and set(spots.uns) == set(before.uns) == set()
    np.testing.assert_array_equal(spots.X, before.X)
