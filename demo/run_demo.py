"""`make demo`: epiformer's main jobs end to end on bundled data; results are written under ``--output``.

Each step is one capability, self-contained, and prints what it wrote.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np

import epiformer as ef


def data_layer(out: Path) -> None:
    """Real blood cohort: read, harmonise probe IDs, QC; write an .h5ad and a QC figure."""
    adata = ef.datasets.blood_gse41169()
    adata = ef.pp.harmonize_probes(adata)
    ef.pp.qc_metrics(adata)
    geo = ef.io.read_geo_series_matrix(ef.datasets.geo_series_matrix_example())
    print(f"  blood cohort: {adata.n_obs} samples x {adata.n_vars} CpGs; GEO excerpt: {geo.n_obs} x {geo.n_vars}")
    print(f"  harmonised: {adata.uns['harmonize_probes']}")
    adata.write_h5ad(out / "blood_gse41169_qc.h5ad")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    ef.pl.beta_distribution(adata, ax=axes[0])
    ef.pl.missingness(adata, ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / "blood_gse41169_qc.png", dpi=120)
    plt.close(fig)
    print(f"  wrote {out / 'blood_gse41169_qc.h5ad'} and {out / 'blood_gse41169_qc.png'}")


def methylation_from_expression(out: Path) -> None:
    """Methylation from expression + sequence: train, score held-out CpGs x samples, dilute, map Visium spots."""
    import scanpy as sc
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this small model trains fastest on one CPU thread
    try:
        visium = ef.datasets.visium_small()
        mdata = ef.datasets.synthetic_multiome(120, n_cpgs=1000, gene_names=visium.var_names, random_state=0)
        ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=200)
        ef.pp.cpg_gene_distances(mdata)
        ef.pp.split_pairs(mdata, by="block", block_size=20_000)
        model = ef.tl.fit_expression_predictor(mdata, max_epochs=40, enable_progress_bar=False)
        ef.tl.predict_methylation(mdata, model)
        scores = ef.tl.evaluate_methylation(mdata, groupby="expression_driven")
        scores.to_csv(out / "methylation_from_expression_scores.csv")
        print(scores.round(3).to_string())
        driven = mdata["methyl"].var_names[mdata["methyl"].var["expression_driven"].to_numpy()]
        ef.tl.dilution_curve(mdata, model, retention=(10_000, 1_000, 100), n_iter=3, cpgs=driven)
        spots = visium.copy()
        sc.pp.normalize_total(spots, target_sum=1e4)
        sc.pp.log1p(spots)
        maps = ef.tl.predict_methylation(spots, model)
        maps.write_h5ad(out / "visium_methylation_map.h5ad")
        model.save(out / "expression_predictor", overwrite=True)
    finally:
        torch.set_num_threads(threads)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    ef.pl.dilution_curve(mdata, metric="per_cpg_spearman", ax=axes[0])
    shown = driven[np.argsort(maps[:, driven].X.std(axis=0))[::-1][0]]
    axes[1].scatter(*maps.obsm["spatial"].T, c=maps[:, shown].X.ravel(), s=12, cmap="viridis")
    axes[1].set(title=f"predicted methylation {shown}", aspect="equal", xticks=[], yticks=[])
    axes[1].invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "methylation_from_expression.png", dpi=120)
    plt.close(fig)
    print(f"  wrote {out / 'methylation_from_expression_scores.csv'}, {out / 'visium_methylation_map.h5ad'},")
    print(f"  {out / 'methylation_from_expression.png'} and the model in {out / 'expression_predictor'}")


STEPS = [data_layer, methylation_from_expression]


def main() -> None:
    """Run every step, writing under the output folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("demo_output"))
    out = parser.parse_args().output
    out.mkdir(parents=True, exist_ok=True)
    for step in STEPS:
        start = time.perf_counter()
        print(f"[{step.__name__}] {step.__doc__}")
        step(out)
        print(f"[{step.__name__}] done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
