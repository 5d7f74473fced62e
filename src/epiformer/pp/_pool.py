"""Pool expression over spatial neighbours or within clusters, to counter the sparsity of spots and cells."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import sparse

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_params
from epiformer._utils import get_matrix, record_params, select_modality
from epiformer._validation import check_choice, check_raw_counts

PoolMethod = Literal["neighbors", "cluster"]
PoolFunc = Literal["sum", "mean"]
METHODS = ("neighbors", "cluster")
FUNCS = ("sum", "mean")
#: Layer written by default (the key registry has no entry for it yet).
POOLED = "pooled"


def _neighbour_matrix(graph, n_obs: int, *, key: str) -> sparse.csr_matrix:
    """The 0/1 pooling matrix of a connectivity graph: a spot's neighbours (any non-zero edge) and itself."""
    if not (sparse.issparse(graph) or isinstance(graph, np.ndarray)) or graph.shape != (n_obs, n_obs):
        msg = f"`obsp[{key!r}]` must be an {n_obs} x {n_obs} connectivity matrix, got shape {getattr(graph, 'shape', None)}."
        raise ValueError(msg)
    pool = sparse.csr_matrix(graph, copy=True)
    pool.data = (pool.data != 0).astype(np.float64)
    pool.setdiag(1.0)
    pool.eliminate_zeros()
    pool.sort_indices()
    return pool


def _pool_clusters(target, layer: str | None, groupby: str, X) -> tuple[np.ndarray | sparse.csr_matrix, np.ndarray]:
    """Each spot's cluster sum from :func:`scanpy.get.aggregate` (spots without a label keep their own counts).

    Returns the per-spot sums and the number of spots pooled into each.
    """
    import scanpy as sc

    labels = target.obs[groupby]
    labelled = labels.notna().to_numpy()
    view = target if labelled.all() else target[labelled]
    aggregated = sc.get.aggregate(view, by=groupby, func="sum", layer=layer)
    profiles = aggregated.layers["sum"]
    where = aggregated.obs_names.get_indexer(labels[labelled].astype(str))
    rows = np.flatnonzero(labelled)
    member = sparse.csr_matrix((np.ones(len(rows)), (rows, where)), shape=(target.n_obs, aggregated.n_obs))
    sizes = np.bincount(where, minlength=aggregated.n_obs)
    n_pooled = np.ones(target.n_obs, dtype=np.int64)
    n_pooled[rows] = sizes[where]
    alone = sparse.diags((~labelled).astype(np.float64))
    if sparse.issparse(X):
        pooled = member @ sparse.csr_matrix(profiles, dtype=np.float64)
        if not labelled.all():
            pooled = pooled + alone @ X
        return sparse.csr_matrix(pooled), n_pooled
    pooled = member @ np.asarray(profiles, dtype=np.float64)
    if not labelled.all():
        pooled += alone @ np.asarray(X, dtype=np.float64)
    return pooled, n_pooled


@doc_params(copy=doc_copy)
def pool_expression(
    adata,
    *,
    method: PoolMethod = "neighbors",
    connectivity_key: str = "spatial_connectivities",
    groupby: str | None = None,
    func: PoolFunc = "sum",
    layer: str | None = Key.layers.counts,
    mod: str | None = None,
    key_added: str = POOLED,
    copy: bool = False,
):
    """Pool each spot's (or cell's) counts with those of its spatial neighbours or its cluster, against sparsity.

    A spot or a cell holds a few hundred to a few thousand molecules, and the methylation predictor, trained on
    bulk samples, degrades as the expression gets sparser (see :func:`epiformer.tl.dilution_curve`). Pooling
    trades resolution for depth:

    - ``method="neighbors"``: each spot pools itself and its neighbours in the graph `obsp[connectivity_key]`
      (any non-zero edge counts as a neighbour, with weight 1): by default the spatial graph of
      :func:`squidpy.gr.spatial_neighbors_grid` (``"spatial_connectivities"``: on Visium its 6 ring neighbours), or any
      graph already there, e.g. ``connectivity_key="connectivities"`` of :func:`scanpy.pp.neighbors`, or one the
      user placed in `obsp`. squidpy is not needed when the graph exists.
    - ``method="cluster"``: each spot gets the pooled profile of its `groupby` cluster (e.g. Leiden clusters or
      annotated spatial domains), computed by :func:`scanpy.get.aggregate`; spots without a label keep their own
      counts.

    ``func="sum"`` (the default) adds the counts: the result stays raw counts (integer counts give integer sums,
    in the input's dtype), a pool of `k` spots holding about `k` times the molecules of one. The predictor reads
    ``log1p`` of counts per 10,000 (:func:`scanpy.pp.normalize_total` then :func:`scanpy.pp.log1p`), and depth
    normalisation makes a sum and a mean of the same spots equal, so ``"sum"`` loses nothing and keeps counts that
    count molecules (which :func:`epiformer.pp.dilute` or count models read). ``func="mean"`` divides by the
    number of spots pooled (fractional counts, float32 or float64), for a depth on the scale of one spot.

    Sparse input gives sparse (CSR) output and dense input dense output; the input is never modified.

    Parameters
    ----------
    adata
        :class:`~anndata.AnnData` or :class:`~mudata.MuData` of spots or cells x genes.
    method
        ``"neighbors"`` or ``"cluster"``.
    connectivity_key
        With ``method="neighbors"``, the `obsp` key of the graph.
    groupby
        With ``method="cluster"``, the categorical `obs` column of the clusters.
    func
        ``"sum"`` or ``"mean"`` of the pooled counts.
    layer
        Layer of raw counts (default ``"counts"``); `None` uses `.X`.
    mod
        With a :class:`~mudata.MuData`, the modality to use (default ``"rna"``); ignored for an
        :class:`~anndata.AnnData`.
    key_added
        Layer written, and the `uns` key of the settings.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes `layers[key_added]` (spots x genes, pooled counts) and
    `uns[key_added]` with `params` and `n_pooled` (per spot, the number of spots pooled: mean, min and max);
    with ``method="neighbors"``, also `n_isolated` (spots without a neighbour, kept as they are), with
    ``method="cluster"`` `n_unlabelled` (spots without a cluster, kept as they are).

    Raises
    ------
    KeyError
        If the graph, the `groupby` column or the layer is absent; the message says what to run.
    """
    check_choice(method, METHODS, name="method")
    check_choice(func, FUNCS, name="func")
    target = select_modality(adata, mod, default=Key.mod.rna)
    X = get_matrix(target, layer)
    what = f"`layers[{layer!r}]`" if layer else "`.X`"
    check_raw_counts(X, what=what)
    params = {"method": method, "func": func, "layer": layer}
    if method == "neighbors":
        if connectivity_key not in target.obsp:
            msg = (
                f"No spatial graph `obsp[{connectivity_key!r}]` (available: {sorted(target.obsp.keys())}). Build it "
                "first with `squidpy.gr.spatial_neighbors_grid(adata)` (writes 'spatial_connectivities'), or "
                "`scanpy.pp.neighbors(adata)` (then pass `connectivity_key='connectivities'`), or place any "
                "spots x spots graph in `obsp` and name it with `connectivity_key=`."
            )
            raise KeyError(msg)
        pool = _neighbour_matrix(target.obsp[connectivity_key], target.n_obs, key=connectivity_key)
        params["connectivity_key"] = connectivity_key
        n_pooled = np.diff(pool.indptr)
        extra = {"n_isolated": int((n_pooled == 1).sum())}
        pooled = pool @ (X if sparse.issparse(X) else np.asarray(X, dtype=np.float64))
    else:
        if groupby is None:
            msg = "`method='cluster'` needs `groupby=`, the `obs` column of the clusters (e.g. 'leiden')."
            raise ValueError(msg)
        if groupby not in target.obs:
            msg = (
                f"`groupby={groupby!r}` is not an `obs` column (available: {list(target.obs.columns)}). Cluster "
                "first, e.g. `scanpy.tl.leiden(adata)` (writes 'leiden'), or name a column of spatial domains."
            )
            raise KeyError(msg)
        params["groupby"] = groupby
        pooled, n_pooled = _pool_clusters(target, layer, groupby, X)
        extra = {"n_unlabelled": int(target.obs[groupby].isna().sum())}
    if func == "mean":
        pooled = sparse.diags(1.0 / n_pooled) @ pooled if sparse.issparse(pooled) else pooled / n_pooled[:, None]
        dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32
    else:
        dtype = X.dtype
    pooled = sparse.csr_matrix(pooled, dtype=dtype) if sparse.issparse(X) else np.asarray(pooled, dtype=dtype)
    extra["n_pooled"] = {"mean": float(n_pooled.mean()), "min": int(n_pooled.min()), "max": int(n_pooled.max())}

    adata = adata.copy() if copy else adata
    target = select_modality(adata, mod, default=Key.mod.rna)
    target.layers[key_added] = pooled
    record_params(target, key_added, params, **extra)
    return adata if copy else None
