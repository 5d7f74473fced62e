"""How far the JASPAR approximation of EpiGePT's motif features is from HOMER-scored features.

Job: the bundled real hg19 sequence (chr22:20-21 Mb, default 20,000,001-20,500,000, widened to 3,907 bins of 128 bp)
scored two ways for the TFs both sources cover: `ef.pp.motif_scores` with its default JASPAR 2024 CORE
vertebrates matrices at p < 1e-4 (the approximation), and with a HOMER-format library carrying HOMER
log-odds thresholds plus its motif-to-factor table, scored as HOMER's `findMotifsGenome.pl -find` does
(200-bp window). The library is not shipped: the default is IMAGE (Madsen et al. 2018, 1,611 HOMER-format
motifs with thresholds) from the gimmemotifs 0.18.4 source distribution
(`pip download gimmemotifs==0.18.4 --no-deps --no-binary :all:`, then
`data/motif_databases/IMAGE.pfm` and `IMAGE.motif2factors.txt`).

Figures: per-TF Pearson correlation of the two feature columns over bins (median, IQR), the fraction of
(bin, TF) cells with a hit in one source and not the other, and how much EpiGePT's predictions move when
the HOMER features are replaced by the JASPAR ones in the same random-weight tiny network (relative
Frobenius difference), next to how much they move when the motif features are zeroed.

Usage: python benchmarks/motif_approximation.py LIBRARY.pfm MOTIF2FACTORS.txt [--region 22:20000001-20500000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import epiformer as ef


def _pearson_per_column(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Pearson r of each column pair; columns constant in either input are left out (their count returned)."""
    a, b = a - a.mean(0), b - b.mean(0)
    sa, sb = np.sqrt((a * a).sum(0)), np.sqrt((b * b).sum(0))
    ok = (sa > 0) & (sb > 0)
    r = (a[:, ok] * b[:, ok]).sum(0) / (sa[ok] * sb[ok])
    return r, int((~ok).sum())


def _tiny_model(n_tfs: int, n_bins: int, seed: int = 0):
    """A random-weight tiny EpiGePT (evaluation mode) and one log1p(TPM)-like context vector."""
    import torch

    from epiformer.models import EpiGePT, EpiGePTConfig

    tf_dim = n_tfs + (-(32 + n_tfs)) % 4
    config = EpiGePTConfig(
        variant="custom",
        conv_channels=(16, 16, 16, 16, 32),
        n_bins=n_bins,
        max_positions=n_bins,
        n_tfs=n_tfs,
        tf_dim=tf_dim,
        n_layers=2,
        n_heads=4,
        ffn_dim=64,
    )
    torch.manual_seed(seed)
    model = EpiGePT(config).eval()
    rng = np.random.default_rng(seed)
    context = np.log1p(rng.gamma(0.5, 20.0, size=n_tfs)).astype(np.float32)  # log1p(TPM)-like, one context
    return model, context


def _read_library(path: str):
    """The HOMER motifs of `path`, leaving out motifs whose header lacks a threshold (10 in IMAGE.pfm)."""
    kept, dropped, keep = [], 0, True
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            keep = len(line.split("\t")) >= 3
            dropped += not keep
        if keep:
            kept.append(line)
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "library.motif"
        clean.write_text("\n".join(kept) + "\n")
        return ef.io.read_homer_motifs(clean), dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", help="HOMER-format motif file with thresholds (e.g. gimmemotifs' IMAGE.pfm)")
    parser.add_argument("motif2factors", help="motif-to-factor table (gimmemotifs' *.motif2factors.txt)")
    parser.add_argument("--region", default="22:20000001-20500000")
    parser.add_argument("--window-bins", type=int, default=250, help="bins per window of the tiny network")
    args = parser.parse_args()

    segment = ef.datasets.hg19_chr22_segment()
    library, n_dropped = _read_library(args.library)
    table = pd.read_csv(args.motif2factors, sep="\t", comment="#")
    table = pd.DataFrame({"motif": table.iloc[:, 0].astype(str), "tf": table.iloc[:, 1].astype(str).str.upper()})
    names = {m.name for m in library}
    table = table[table["motif"].isin(names)].drop_duplicates()
    jaspar = ef.pp.jaspar_motifs()
    tfs = sorted(set(table["tf"]) & set(jaspar))
    thresholds = np.array([m.threshold for m in library])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        approx = ef.pp.motif_scores(args.region, fasta=segment, tfs=tfs)
        t1 = time.perf_counter()
        homer = ef.pp.motif_scores(args.region, fasta=segment, tfs=tfs, motifs=library, motif_to_tf=table)
        t2 = time.perf_counter()
    J, H = np.asarray(approx.X, dtype=np.float64), np.asarray(homer.X, dtype=np.float64)

    r, n_constant = _pearson_per_column(J, H)
    hit_j, hit_h = J > 0, H > 0
    out = {
        "region": args.region,
        "n_bins": int(J.shape[0]),
        "n_tfs_compared": len(tfs),
        "library_motifs": len(library),
        "library_motifs_dropped_without_threshold": n_dropped,
        "library_threshold_median": float(np.median(thresholds)),
        "library_threshold_iqr": [float(np.percentile(thresholds, 25)), float(np.percentile(thresholds, 75))],
        "jaspar_motifs_used": int(approx.var["n_motifs"].sum()),
        "homer_motifs_used": int(homer.var["n_motifs"].sum()),
        "seconds_jaspar_scan": round(t1 - t0, 2),
        "seconds_homer_scan": round(t2 - t1, 2),
        "pearson_median": float(np.median(r)),
        "pearson_iqr": [float(np.percentile(r, 25)), float(np.percentile(r, 75))],
        "n_tfs_constant_in_a_source": n_constant,
        "hit_rate_jaspar": float(hit_j.mean()),
        "hit_rate_homer": float(hit_h.mean()),
        "fraction_cells_hit_in_one_only": float((hit_j ^ hit_h).mean()),
        "fraction_cells_hit_jaspar_only": float((hit_j & ~hit_h).mean()),
        "fraction_cells_hit_homer_only": float((~hit_j & hit_h).mean()),
        "jaccard_of_hits": float((hit_j & hit_h).sum() / max(1, (hit_j | hit_h).sum())),
    }

    import torch

    from epiformer._sequence import one_hot

    n = args.window_bins
    n_windows = J.shape[0] // n
    model, context = _tiny_model(J.shape[1], n)
    first = int(approx.obs["start"].iloc[0])
    genome = ef.io.Genome(segment.fasta, region=segment.record)
    codes = genome.fetch(segment.chrom, first, first + n_windows * n * 128 - 1)
    seq = torch.from_numpy(one_hot(codes).reshape(n_windows, n * 128, 4).transpose(0, 2, 1).copy())

    def predict(features: np.ndarray) -> np.ndarray:
        tf = torch.from_numpy((features[: n_windows * n] * context).astype(np.float32).reshape(n_windows, n, -1))
        with torch.inference_mode():
            return model(seq, tf).numpy().astype(np.float64)

    p_h, p_j, p_0 = predict(H), predict(J), predict(np.zeros_like(H))
    norm = np.linalg.norm(p_h)
    out["prediction_relative_difference_jaspar_vs_homer"] = float(np.linalg.norm(p_j - p_h) / norm)
    out["prediction_relative_difference_zero_motifs_vs_homer"] = float(np.linalg.norm(p_0 - p_h) / norm)
    out["prediction_pearson_jaspar_vs_homer"] = float(np.corrcoef(p_j.ravel(), p_h.ravel())[0, 1])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
