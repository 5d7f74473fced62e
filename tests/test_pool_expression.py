"""`ef.pp.pool_expression`: counts pooled over spatial neighbours or within clusters, with hand-computed answers."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from anndata import AnnData
from scipy import sparse

import epiformer as ef

#: Four spots x three genes of integer counts.
COUNTS = np.array([[1, 0, 2], [0, 3, 0], [4, 0, 0], [0, 0, 5]], dtype=np.float32)
#: A path 0 - 1 - 2 and an isolated spot 3 (weights as a graph builder would leave them: not all 1).
GRAPH = sparse.csr_matrix(np.array([[0, 0.5, 0, 0], [0.5, 0, 2.0, 0], [0, 2.0, 0, 0], [0, 0, 0, 0]]))
#: Each spot plus its neighbours, by hand.
NEIGHBOUR_SUMS = np.array([[1, 3, 2], [5, 3, 2], [4, 3, 0], [0, 0, 5]], dtype=np.float32)
NEIGHBOUR_SIZES = np.array([2, 3, 2, 1])


def _spots(fmt: str = "csr") -> AnnData:
    X = sparse.csr_matrix(COUNTS) if fmt == "csr" else COUNTS.copy()
    adata = AnnData(X.copy(), obs=pd.DataFrame(index=[f"s{i}" for i in range(4)]))
    adata.var_names = ["a", "b", "c"]
    adata.layers["counts"] = X.copy()
    adata.obsp["spatial_connectivities"] = GRAPH.copy()
    adata.obs["cluster"] = pd.Categorical(["x", "y", "x", "y"])
    return adata


def _dense(X) -> np.ndarray:
    return X.toarray() if sparse.issparse(X) else np.asarray(X)


@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_neighbour_sums(fmt):
    adata = _spots(fmt)
    ef.pp.pool_expression(adata)
    pooled = adata.layers["pooled"]
    assert sparse.issparse(pooled) == (fmt == "csr")
    if fmt == "csr":
        assert pooled.format == "csr"
    assert pooled.dtype == np.float32
    np.testing.assert_array_equal(_dense(pooled), NEIGHBOUR_SUMS)
    info = adata.uns["pooled"]
    assert info["params"]["method"] == "neighbors" and info["params"]["connectivity_key"] == "spatial_connectivities"
    assert info["params"]["func"] == "sum" and info["params"]["layer"] == "counts"
    assert info["n_isolated"] == 1 and info["n_pooled"] == {"mean": 2.0, "min": 1, "max": 3}
    np.testing.assert_array_equal(_dense(adata.layers["counts"]), COUNTS)  # the input is not touched
    np.testing.assert_array_equal(_dense(adata.obsp["spatial_connectivities"]), GRAPH.toarray())


def test_neighbour_mean_and_integer_dtype():
    adata = _spots("csr")
    adata.layers["int"] = sparse.csr_matrix(COUNTS.astype(np.int64))
    out = ef.pp.pool_expression(adata, layer="int", func="mean", key_added="mean", copy=True)
    np.testing.assert_allclose(_dense(out.layers["mean"]), NEIGHBOUR_SUMS / NEIGHBOUR_SIZES[:, None], rtol=1e-6)
    assert out.layers["mean"].dtype == np.float32
    ef.pp.pool_expression(adata, layer="int")
    assert adata.layers["pooled"].dtype == np.int64  # sums of integer counts stay integer counts
    np.testing.assert_array_equal(_dense(adata.layers["pooled"]), NEIGHBOUR_SUMS)


def test_any_named_graph_and_mudata():
    adata = _spots("dense")
    adata.obsp["connectivities"] = adata.obsp.pop("spatial_connectivities")
    mdata = md.MuData({"rna": adata})
    ef.pp.pool_expression(mdata, connectivity_key="connectivities", layer=None)
    np.testing.assert_array_equal(mdata["rna"].layers["pooled"], NEIGHBOUR_SUMS)


def test_graph_of_scanpy_neighbors():
    """A graph built by `sc.pp.neighbors` (no squidpy needed): each spot pools itself and its graph neighbours."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (30, 8)).astype(np.float32)
    adata = AnnData(sparse.csr_matrix(counts))
    adata.obsm["spatial"] = rng.uniform(0, 10, (30, 2))
    sc.pp.neighbors(adata, use_rep="spatial", n_neighbors=5)
    ef.pp.pool_expression(adata, connectivity_key="connectivities", layer=None)
    graph = adata.obsp["connectivities"].toarray() != 0
    np.fill_diagonal(graph, True)
    np.testing.assert_array_equal(adata.layers["pooled"].toarray(), graph.astype(np.float32) @ counts)


@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_cluster_sums(fmt):
    adata = _spots(fmt)
    ef.pp.pool_expression(adata, method="cluster", groupby="cluster")
    x, y = COUNTS[[0, 2]].sum(axis=0), COUNTS[[1, 3]].sum(axis=0)  # [5, 0, 2] and [0, 3, 5]
    expected = np.array([x, y, x, y])
    pooled = adata.layers["pooled"]
    assert sparse.issparse(pooled) == (fmt == "csr") and pooled.dtype == np.float32
    np.testing.assert_array_equal(_dense(pooled), expected)
    assert adata.uns["pooled"]["params"]["groupby"] == "cluster" and adata.uns["pooled"]["n_unlabelled"] == 0
    out = ef.pp.pool_expression(adata, method="cluster", groupby="cluster", func="mean", copy=True)
    np.testing.assert_allclose(_dense(out.layers["pooled"]), expected / 2)


def test_cluster_equals_scanpy_aggregate_and_unlabelled_spots_keep_their_counts():
    adata = _spots("csr")
    adata.obs["cluster"] = pd.Categorical(["x", "x", np.nan, "x"], categories=["x", "unused"])
    ef.pp.pool_expression(adata, method="cluster", groupby="cluster")
    pooled = adata.layers["pooled"].toarray()
    labelled = COUNTS[[0, 1, 3]].sum(axis=0)
    np.testing.assert_array_equal(pooled, [labelled, labelled, COUNTS[2], labelled])
    assert adata.uns["pooled"]["n_unlabelled"] == 1
    assert adata.uns["pooled"]["n_pooled"] == {"mean": 2.5, "min": 1, "max": 3}
    aggregate = sc.get.aggregate(adata[[0, 1, 3]], by="cluster", func="sum", layer="counts")
    np.testing.assert_array_equal(pooled[0], np.asarray(aggregate["x"].layers["sum"]).ravel())


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"connectivity_key": "no_graph"}, KeyError, r"squidpy\.gr\.spatial_neighbors.*scanpy\.pp\.neighbors"),
        ({"method": "cluster", "groupby": "no_column"}, KeyError, r"no_column.*scanpy\.tl\.leiden"),
        ({"method": "cluster"}, ValueError, "needs `groupby=`"),
        ({"layer": "no_such_layer"}, KeyError, "no_such_layer"),
        ({"layer": "lognorm"}, ValueError, "raw counts are required"),
        ({"method": "mean"}, ValueError, "`method` must be"),
        ({"func": "max"}, ValueError, "`func` must be"),
    ],
)
def test_failed_call_changes_nothing(options, error, match):
    adata = _spots("csr")
    adata.layers["lognorm"] = sparse.csr_matrix(np.log1p(COUNTS) / 7)
    before = adata.copy()
    with pytest.raises(error, match=match):
        ef.pp.pool_expression(adata, **options)
    assert sorted(adata.layers.keys(), key=str) == sorted(before.layers.keys(), key=str)
    assert sorted(adata.uns) == sorted(before.uns)
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), COUNTS)


def test_squidpy_grid_graph():
    """On squidpy's 4-neighbour grid graph of a 3 x 3 slide, the centre spot pools all 5 spots of the cross."""
    sq = pytest.importorskip("squidpy")
    adata = ef.datasets.synthetic_spatial(3, 3, 5, random_state=0)
    sq.gr.spatial_neighbors_grid(adata, n_neighs=4)
    ef.pp.pool_expression(adata)
    counts = adata.layers["counts"].toarray()
    xy = adata.obsm["spatial"]
    centre = int(np.flatnonzero((xy == [1, 1]).all(axis=1))[0])
    cross = np.flatnonzero(np.abs(xy - [1, 1]).sum(axis=1) <= 1)
    np.testing.assert_array_equal(adata.layers["pooled"][centre].toarray().ravel(), counts[cross].sum(axis=0))
    assert adata.uns["pooled"]["n_pooled"] == {"mean": (4 * 3 + 4 * 4 + 5) / 9, "min": 3, "max": 5}
