"""Pooling against sparsity: how much of the predictor's accuracy `ef.pp.pool_expression` wins back on sparse spots.

Job: `ef.datasets.synthetic_multiome` (N_SAMPLES samples, 100 genes, 1,500 CpGs, 4 groups, about 100,000 molecules
per sample). The expression predictor is fit once on the undiluted training samples (training CpGs). The held-out
samples play the spots of a slide: their counts are thinned with `ef.pp.dilute` (hypergeometric, the capture law) to
each retention level of `LEVELS`, then

- ``none``: predicted from the diluted counts as they are;
- ``neighbors``: each spot summed with its 6 spatial neighbours (`ef.pp.pool_expression(method="neighbors")` on the
  squidpy graph `sq.gr.spatial_neighbors_knn(n_neighs=6)`, or the same 6-nearest-neighbour graph
  from scikit-learn where squidpy is absent);
- ``cluster``: each spot given the summed counts of its cluster (`method="cluster", groupby="group"`: the planted
  groups stand for annotated domains or Leiden clusters);

each normalised as in training (``log1p`` of counts per 10,000), predicted with `ef.tl.predict_methylation` and
scored on the held-out CpGs with `ef.tl.evaluate_methylation` (median per-CpG Spearman correlation across samples
over the expression-driven CpGs, whose methylation follows expression; pooled Spearman and MAE over all test pairs).

The spatial layout (synthetic samples have none): each group is a domain, one quadrant of a 2 x 2 slide, and inside
its quadrant a sample sits at its first two principal components of the undiluted log expression (computed within
the group, scaled to the quadrant), so that neighbours share the domain and are similar within it, as neighbouring
spots of a tissue are. `N_ITER` dilutions (seeds) per level; the table gives their mean.

Run: ``python benchmarks/pooling_recovery.py`` (about 2 minutes on 2 CPU cores).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

N_SAMPLES, N_CPGS, LEVELS, N_ITER, N_NEIGHS = 400, 1500, (5_000, 1_000, 200), 3, 6


def layout(rna, groups: pd.Series) -> np.ndarray:
    """Coordinates: one quadrant per group, within-group PCA of the undiluted log expression inside it."""
    X = np.asarray(rna.X, dtype=np.float64)
    coords = np.zeros((rna.n_obs, 2))
    for g, name in enumerate(sorted(groups.unique())):
        rows = np.flatnonzero((groups == name).to_numpy())
        centred = X[rows] - X[rows].mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        pcs = u[:, :2] * s[:2]
        pcs = (pcs - pcs.min(axis=0)) / np.ptp(pcs, axis=0).clip(1e-12)
        coords[rows] = pcs * 0.9 + np.array([g % 2, g // 2])
    return coords


def spatial_graph(adata) -> str:
    """Write `obsp['spatial_connectivities']`: 6 nearest neighbours, by squidpy where installed."""
    try:
        import squidpy as sq
    except ImportError:
        from sklearn.neighbors import kneighbors_graph

        graph = kneighbors_graph(adata.obsm["spatial"], N_NEIGHS, include_self=False)
        adata.obsp["spatial_connectivities"] = graph.tocsr()
        return "scikit-learn kneighbors_graph"
    sq.gr.spatial_neighbors_knn(adata, n_neighs=N_NEIGHS)
    return f"squidpy {sq.__version__} spatial_neighbors_knn"


def lognorm(counts) -> np.ndarray:
    import scanpy as sc
    from anndata import AnnData

    tmp = AnnData(counts.astype(np.float32))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    return tmp.X


def main() -> None:
    import torch

    import epiformer as ef

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FutureWarning)
    start = time.perf_counter()
    mdata = ef.datasets.synthetic_multiome(N_SAMPLES, n_cpgs=N_CPGS, random_state=0)
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=400)
    ef.pp.cpg_gene_distances(mdata)
    ef.pp.split_pairs(mdata, by="block", block_size=20_000)
    torch.manual_seed(0)
    model = ef.tl.fit_expression_predictor(mdata, max_epochs=40, early_stopping_patience=6, progress=False)
    fitted = time.perf_counter() - start

    spots = mdata[(mdata.obs["split"] == "test").to_numpy()].copy()
    rna = spots["rna"]
    rna.obsm["spatial"] = layout(rna, spots.obs["group"])
    rna.obs["group"] = spots.obs["group"].astype("category")
    graph = spatial_graph(rna)
    molecules = float(np.median(np.asarray(rna.layers["counts"].sum(axis=1)).ravel()))

    def score(counts, name: str) -> dict:
        rna.layers[name] = lognorm(counts)
        ef.tl.predict_methylation(spots, model, layer=name, key_added=name, progress=False, device="cpu")
        by_kind = ef.tl.evaluate_methylation(spots, layer=name, baselines=False, groupby="expression_driven")
        overall = ef.tl.evaluate_methylation(spots, layer=name, baselines=False).loc[name]
        return {
            "per_cpg_spearman_driven": float(by_kind.loc[(True, name), "per_cpg_spearman"]),
            "spearman": float(overall["spearman"]),
            "mae": float(overall["mae"]),
        }

    rows = [{"retention": "undiluted", "pooling": "none", "iteration": 0, **score(rna.layers["counts"], "full")}]
    for level in LEVELS:
        for it in range(N_ITER):
            ef.pp.dilute(spots, level, random_state=it, key_added="diluted")
            diluted = rna.layers["diluted"]
            rows.append({"retention": level, "pooling": "none", "iteration": it, **score(diluted, "none")})
            ef.pp.pool_expression(spots, layer="diluted", key_added="pooled_neighbors")
            rows.append(
                {
                    "retention": level,
                    "pooling": "neighbors",
                    "iteration": it,
                    **score(rna.layers["pooled_neighbors"], "neighbors"),
                }
            )
            ef.pp.pool_expression(spots, method="cluster", groupby="group", layer="diluted", key_added="pooled_cluster")
            rows.append(
                {
                    "retention": level,
                    "pooling": "cluster",
                    "iteration": it,
                    **score(rna.layers["pooled_cluster"], "cluster"),
                }
            )
    table = pd.DataFrame(rows)
    summary = (
        table.groupby(["retention", "pooling"], sort=False)[["per_cpg_spearman_driven", "spearman", "mae"]]
        .mean()
        .round(3)
    )
    print(
        f"{mdata.n_obs} samples ({spots.n_obs} held out as spots, median {molecules:,.0f} molecules), "
        f"{int((spots['methyl'].var['split'] == 'test').sum())} test CpGs "
        f"({int(((spots['methyl'].var['split'] == 'test') & spots['methyl'].var['expression_driven']).sum())} "
        f"expression-driven); graph: {graph}, {N_NEIGHS} neighbours; {N_ITER} dilutions per level"
    )
    print(f"model fit in {fitted:.0f} s, {model}")
    print(summary.to_string())
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
