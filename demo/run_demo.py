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
    fig.savefig(out / "epigept_chr22_tracks.png", dpi=120)
    plt.close(fig)
    genome = ef.io.Genome(segment.fasta, region=segment.record)
    ref = "ACGT"[genome.fetch("22", 20_700_123, 20_700_123)[0]]
    variants = pd.DataFrame({"chrom": ["22"], "pos": [20_700_123], "ref": [ref], "alt": ["G" if ref != "G" else "A"]})
    effect = ef.tl.variant_effect(contexts, model, variants=variants, fasta=segment, progress=False)
    effect.to_df().T.to_csv(out / "epigept_variant_effect.csv")
    print(
        f"  {contexts.n_obs} contexts x {pred.n_vars} bins x {len(model.config.signals)} signals (random weights, small network)"
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
    print(f"  loaded {model} from {folder}")
    ef.tl.embed(blood, model, progress=False)
    print(
        f"  obsm['X_methylgpt']: {blood.obsm['X_methylgpt'].shape}; coverage {blood.uns['methylgpt']['params']['n_found']}"
    )
    blood.X[np.random.default_rng(0).random(blood.shape) < 0.05] = np.nan
    ef.tl.impute(blood, model, progress=False)
    print(f"  imputed {blood.uns['methylgpt_imputed']['n_imputed']} hidden values")
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
        model = ef.tl.fit_expression_predictor(mdata, max_epochs=40, progress=False)
        ef.tl.predict_methylation(mdata, model)
        scores = ef.tl.evaluate_methylation(mdata, groupby="expression_driven")
        scores.to_csv(out / "methylation_from_expression_scores.csv")
        print(scores.round(3).to_string())
        driven = mdata["methyl"].var_names[mdata["methyl"].var["expression_driven"].to_numpy()]
        ef.tl.dilution_curve(mdata, model, retention=(10_000, 1_000, 100), n_iter=3, cpgs=driven)
        spots = visium.copy()
        sc.pp.normalize_total(spots, target_sum=1e4)
        sc.pp.log1p(spots)
        ef.tl.predict_methylation(spots, model)  # -> spots.obsm["predicted_methylation"], spots x CpGs
        spots.write_h5ad(out / "visium_methylation_map.h5ad")
        model.save(out / "expression_predictor", overwrite=True)
    finally:
        torch.set_num_threads(threads)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    ef.pl.dilution_curve(mdata, metric="per_cpg_spearman", ax=axes[0])
    maps = spots.obsm["predicted_methylation"]
    shown = maps[driven].std().idxmax()
    axes[1].scatter(*spots.obsm["spatial"].T, c=maps[shown].to_numpy(), s=12, cmap="viridis")
    axes[1].set(title=f"predicted methylation {shown}", aspect="equal", xticks=[], yticks=[])
    axes[1].invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "methylation_from_expression.png", dpi=120)
    plt.close(fig)
    print(f"  wrote {out / 'methylation_from_expression_scores.csv'}, {out / 'visium_methylation_map.h5ad'},")
    print(f"  {out / 'methylation_from_expression.png'} and the model in {out / 'expression_predictor'}")


def methylgpt_training(out: Path) -> None:
    """MethylGPT: pretrain a small model, fine-tune age beside the ElasticNet clock, attention by age group."""
    adata = ef.datasets.synthetic_methylome(300, 100, frac_age=0.3, random_state=0)
    ef.pp.split_samples(adata, random_state=0)
    train = adata[adata.obs["split"] != "test"].copy()
    model = ef.tl.pretrain(train, d_model=32, n_layers=2, n_heads=4, dropout=0.0, max_epochs=8, lr=3e-3, progress=False)
    age = ef.tl.finetune(
        adata,
        model,
        target="age",
        max_epochs=40,
        lr_backbone=1e-3,
        lr_head=3e-3,
        early_stopping_patience=None,
        progress=False,
    )
    ef.tl.predict(adata, age, key_added="age_methylgpt")
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
