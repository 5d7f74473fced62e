"""`make demo`: epiformer's main jobs end to end on bundled data; results are written under ``--output``.

Each step is one capability, self-contained, and prints what it wrote. Every printout and figure title says which
data are real (the GSE41169 blood cohort, the IMR90 WGBS, the 10x Visium sample, PBMC3k) and which synthetic
(their probe IDs look real but are made up), and which model weights are random (the weights of the published
models are not bundled: see docs/pretrained.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np

import epiformer as ef

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def data_layer(out: Path) -> None:
    """Real blood cohort: read, harmonise probe IDs, QC; write an .h5ad and a QC figure."""
    adata = ef.datasets.blood_gse41169()
    adata = ef.pp.harmonize_probes(adata)
    ef.pp.qc_metrics(adata)
    geo = ef.io.read_geo_series_matrix(ef.datasets.geo_series_matrix_example())
    wgbs = ef.datasets.imr90_wgbs_chr22(beta=True)
    print(f"  real: GSE41169 blood cohort (450k array), {adata.n_obs} samples x {adata.n_vars} CpGs")
    print(f"  real: its GEO series matrix excerpt, {geo.n_obs} samples x {geo.n_vars} CpGs")
    print(
        f"  real: IMR90 WGBS (Lister et al. 2009), {wgbs.n_obs} replicates x {wgbs.n_vars} CpGs of chr22, "
        f"mean beta {np.nanmean(wgbs.X):.2f}"
    )
    print(f"  harmonised: {adata.uns['harmonize_probes']}")
    adata.write_h5ad(out / "blood_gse41169_qc.h5ad")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ef.pl.beta_distribution(adata, ax=axes[0])
    ef.pl.missingness(adata, ax=axes[1])
    axes[1].set_title(f"missing values per sample: {int(np.isnan(adata.X).sum())} in all", fontsize="medium")
    fig.suptitle(f"Real data: GSE41169 blood cohort, {adata.n_obs} samples x {adata.n_vars:,} CpGs")
    fig.tight_layout()
    fig.savefig(out / "blood_gse41169_qc.png", dpi=120)
    plt.close(fig)
    print(f"  wrote {out / 'blood_gse41169_qc.h5ad'} and {out / 'blood_gse41169_qc.png'}")


def epigept(out: Path) -> None:
    """EpiGePT: PBMC cluster contexts, a random-weight checkpoint in the authors' format, 200 kb of chr22, a variant."""
    import tempfile
    import warnings

    import pandas as pd
    import torch

    pbmc = ef.datasets.pbmc_small()
    tfs = sorted(["CTCF", "EBF1", "ELF1", "ETS1", "IRF4", "PAX5", "SATB1", "SPI1", "TCF7", "XBP1", "YY1", "ZNF76"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 230 genes: most TFs are absent, which tf_context reports
        contexts = ef.pp.tf_context(pbmc, groupby="RNA_snn_res.1", tfs=tfs)
    torch.manual_seed(0)
    config = ef.models.EpiGePTConfig(
        conv_channels=(16, 32, 32, 48, 48), n_tfs=len(tfs), tf_dim=16, n_layers=2, n_heads=4, ffn_dim=128, tf_names=tfs
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = ef.models.EpiGePT(config).save_pretrained(Path(tmp) / "epigept_random.ckpt", format="lightning")
        model = ef.models.EpiGePT.from_pretrained(path)
    segment = ef.datasets.hg19_chr22_segment()
    pred = ef.tl.predict_epigenome(contexts, model, regions="22:20600001-20800000", fasta=segment, progress=False)
    pred.write_h5ad(out / "epigept_chr22_tracks.h5ad")
    fig = ef.pl.tracks(pred, signals=["DNase", "CTCF", "H3K27ac"], region="22:20650001-20700000")
    fig.suptitle(
        "Real PBMC3k clusters and hg19 sequence; EpiGePT with RANDOM weights (a small demo checkpoint): "
        "the shapes are not predictions",
        fontsize="small",
    )
    fig.tight_layout()
    fig.savefig(out / "epigept_chr22_tracks.png", dpi=120)
    plt.close(fig)
    genome = ef.io.Genome(segment.fasta, region=segment.record)
    ref = "ACGT"[genome.fetch("22", 20_700_123, 20_700_123)[0]]
    variants = pd.DataFrame({"chrom": ["22"], "pos": [20_700_123], "ref": [ref], "alt": ["G" if ref != "G" else "A"]})
    effect = ef.tl.variant_effect(contexts, model, variants=variants, fasta=segment, progress=False)
    effect.to_df().T.to_csv(out / "epigept_variant_effect.csv")
    print(f"  real: PBMC3k (10x), {contexts.n_obs} cluster contexts; real: hg19 chr22:20-21 Mb sequence")
    print(
        f"  random weights: a small EpiGePT saved in the authors' checkpoint format and loaded back; "
        f"{pred.n_vars} bins x {len(model.config.signals)} signals per context, not meaningful predictions"
    )
    print(f"  wrote epigept_chr22_tracks.h5ad / .png and epigept_variant_effect.csv under {out}")


def methylgpt_embedding(out: Path) -> None:
    """MethylGPT: load a checkpoint in the authors' layout (random weights here), embed and impute the blood cohort."""
    import json

    import numpy as np
    import torch

    blood = ef.datasets.blood_gse41169()
    torch.manual_seed(0)
    vocab = ef.models.MethylGPTVocab.from_probes(sorted(blood.var_names[::10]))
    folder = out / "methylgpt_random_checkpoint"
    folder.mkdir(exist_ok=True)
    torch.save(ef.models.MethylGPT(vocab).state_dict(), folder / "model.pt")  # published keys (self_attn.Wqkv.*)
    vocab.to_json(folder / "vocab.json")
    (folder / "args.json").write_text(json.dumps({"layer_size": 64, "nlayers": 6, "nhead": 4, "dropout": 0.1}))
    model = ef.models.MethylGPT.from_pretrained(folder)
    print(f"  real: GSE41169 blood cohort, {blood.n_obs} samples x {blood.n_vars} CpGs")
    print(f"  random weights: {model}, saved by this demo in the authors' layout and loaded from {folder}")
    print("  (the published weights are not bundled, so the embedding and the imputed values below are not meaningful)")
    ef.tl.embed(blood, model, progress=False)
    print(
        f"  obsm['X_methylgpt']: {blood.obsm['X_methylgpt'].shape}; coverage {blood.uns['methylgpt']['params']['n_found']}"
    )
    blood.X[np.random.default_rng(0).random(blood.shape) < 0.05] = np.nan
    ef.tl.impute(blood, model, progress=False)
    print(f"  imputed {blood.uns['methylgpt_imputed']['n_imputed']} values hidden at random (5 %)")
    blood.write_h5ad(out / "blood_methylgpt.h5ad")
    print(f"  wrote {out / 'blood_methylgpt.h5ad'}")


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
        print(
            f"  synthetic: {mdata.n_obs} samples of expression + methylation ({mdata['methyl'].n_vars} CpGs on a "
            f"synthetic genome; their names look real but are made up), named after the Visium genes"
        )
        print(f"  real: 10x Visium sample (squidpy test data), {visium.n_obs} spots x {visium.n_vars} genes")
        model = ef.tl.fit_expression_predictor(mdata, max_epochs=40, progress=False)
        print("  trained here on the synthetic samples (not random weights)")
        ef.tl.predict_methylation(mdata, model, progress=False)
        scores = ef.tl.evaluate_methylation(mdata, groupby="expression_driven")
        scores.to_csv(out / "methylation_from_expression_scores.csv")
        print(scores.round(3).to_string())
        driven = mdata["methyl"].var_names[mdata["methyl"].var["expression_driven"].to_numpy()]
        ef.tl.dilution_curve(mdata, model, retention=(10_000, 1_000, 100), n_iter=3, cpgs=driven, progress=False)
        spots = visium.copy()
        sc.pp.normalize_total(spots, target_sum=1e4)
        sc.pp.log1p(spots)
        ef.tl.predict_methylation(spots, model, progress=False)  # -> spots.obsm["predicted_methylation"]
        spots.write_h5ad(out / "visium_methylation_map.h5ad", compression="gzip")
        model.save(out / "expression_predictor", overwrite=True)
    finally:
        torch.set_num_threads(threads)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ef.pl.dilution_curve(mdata, metric="per_cpg_spearman", ax=axes[0])
    axes[0].set_title("Synthetic samples: accuracy as expression is diluted", fontsize="medium")
    spatial_map(spots, driven, ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / "methylation_from_expression.png", dpi=120)
    plt.close(fig)
    print(f"  wrote {out / 'methylation_from_expression_scores.csv'}, {out / 'visium_methylation_map.h5ad'},")
    print(f"  {out / 'methylation_from_expression.png'} and the model in {out / 'expression_predictor'}")


def spatial_map(spots: AnnData, cpgs: Sequence[str], *, ax: Axes) -> None:
    """The predicted beta of the most variable of `cpgs` at every Visium spot, with its colour bar."""
    maps = spots.obsm["predicted_methylation"]
    shown = maps[cpgs].std().idxmax()
    points = ax.scatter(*spots.obsm["spatial"].T, c=maps[shown].to_numpy(), s=12, cmap="viridis")
    ax.figure.colorbar(points, ax=ax, label="predicted beta")
    ax.set(aspect="equal", xticks=[], yticks=[], xlabel="spot position on the slide")
    ax.set_title(
        f"Real Visium spots ({spots.n_obs}): predicted beta of {shown}\n(a synthetic CpG; model trained on synthetic data)",
        fontsize="medium",
    )
    ax.invert_yaxis()


def methylgpt_training(out: Path) -> None:
    """MethylGPT: pretrain a small model, fine-tune age beside the ElasticNet clock, attention by age group."""
    adata = ef.datasets.synthetic_methylome(300, 100, frac_age=0.3, random_state=0)
    ef.pp.split_samples(adata, random_state=0)
    train = adata[adata.obs["split"] != "test"].copy()
    print(
        f"  synthetic: {adata.n_obs} samples x {adata.n_vars} CpGs with a known age signal "
        f"(IDs such as {adata.var_names[0]} look like Illumina probes but are made up)"
    )
    print("  MethylGPT pretrained and fine-tuned here on the synthetic samples (trained, not random weights)")
    model = ef.tl.pretrain(train, d_model=32, n_layers=2, n_heads=4, dropout=0.0, max_epochs=8, lr=3e-3, progress=False)
    age = ef.tl.finetune(adata, model, target="age", progress=False)
    ef.tl.predict(adata, age, key_added="age_methylgpt", progress=False)
    ef.tl.predict(adata, ef.tl.fit_baseline(adata, target="age"), key_added="age_elasticnet")
    scores = ef.tl.evaluate(adata, truth="age", pred=["age_methylgpt", "age_elasticnet"])
    scores.to_csv(out / "methylgpt_age_scores.csv")
    print(scores.round(3).to_string())
    adata.obs["age_group"] = np.where(adata.obs["age"] < 50, "young", "old")
    ef.tl.attention(adata, age.net.backbone, groupby="age_group", progress=False)
    adata.uns["methylgpt_attention"]["top"].to_csv(out / "methylgpt_attention_top.csv", index=False)
    age.save(out / "methylgpt_age_predictor", overwrite=True)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ef.pl.training_history(model, ax=axes[0])
    ef.pl.prediction(adata, truth="age", pred="age_methylgpt", ax=axes[1])
    ef.pl.attention(adata, n_top=8, ax=axes[2])
    fig.suptitle(f"Synthetic methylome, {adata.n_obs} samples x {adata.n_vars} CpGs (synthetic probe IDs)")
    fig.tight_layout()
    fig.savefig(out / "methylgpt_training.png", dpi=120)
    plt.close(fig)
    print(
        f"  wrote methylgpt_age_scores.csv, methylgpt_attention_top.csv, methylgpt_training.png and the predictor under {out}"
    )


STEPS = [data_layer, methylgpt_embedding, methylgpt_training, methylation_from_expression, epigept]


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
