"""HOMER-format motif scan: `ef.pp.motif_scores` (torch conv) vs the vectorised NumPy scorer a user would write.

Job (issue 18): EpiGePT's sequence-side TF input, the best HOMER log-odds score of each TF's motifs around every
128-bp bin (0 without a hit), for 128 kb of real sequence (the bundled hg19 chr22 segment, 22:20,000,001-20,128,000,
1,000 bins) x 711 TFs from a HOMER-format library of 1,465 motifs, scored as ``findMotifsGenome.pl -find`` does:
natural-log odds ``ln(max(p, 0.001) / 0.25)``, both strands, sites wholly inside HOMER's 201-bp region around each
bin (``-size 200``), sites touching an N skipped, a hit where the score reaches the motif's threshold, max per TF
over its motifs.

The library is synthetic and seeded (the authors' HOMER library is not public): lengths 6..20 like HOMER's motifs,
each position's probabilities a Dirichlet(0.5) draw written to 3 decimals as HOMER files are (so some read 0.000
and hit the 0.001 floor, and rows need not sum to 1, as in real files); thresholds 0.6 x each motif's best
score; the first `--tfs` motifs go one to each TF, the rest to random TFs, so some TFs have several motifs.
Thresholds are then moved off any bin's best site score by at least 1e-3 (untimed, before either side runs), so
float32 (conv) vs float64 (NumPy) rounding cannot turn a hit into a miss and the two matrices can be compared.

- epiformer: ``ef.pp.motif_scores(region, fasta=segment, tfs=..., motifs=library, motif_to_tf=table)``, a
  ``conv1d`` over one-hot DNA per motif length and a max-pool per bin.
- NumPy: per motif length, ``sliding_window_view`` over the base codes and a gather of the log-odds
  (N scored -inf), for both strands, then the per-bin max over the window's start positions with a second
  ``sliding_window_view``, thresholded, max per TF.

Both matrices agree (``assert_allclose``, atol 1e-4) before the timings print. On a shared 2-core CPU compare
``--threads 1`` with torch's default: the scan's many small parallel ops lose badly to oversubscribed cores
(see benchmarks/README.md).

Usage: python benchmarks/bench_motifs.py [--kb 128] [--tfs 711] [--motifs 1465] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

BIN, WINDOW, START, SEED = 128, 200, 20_000_001, 0
#: HOMER's floor on probabilities before the log (``MOTIF_PROBABILITY_MINIMUM``).
FLOOR = 0.001
#: Bases HOMER's ``-size 200`` region reaches before and after a 128-bp bin (201 bp in all).
LEFT, RIGHT = 1 - (1 + BIN - WINDOW) // 2, (1 + BIN + WINDOW) // 2 - BIN
SPAN = LEFT + BIN + RIGHT
GAP = 1e-3


def _region(kb: int) -> tuple[str, int]:
    n_bins = -(-kb * 1000 // BIN)
    return f"22:{START}-{START + kb * 1000 - 1}", n_bins


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# ---------------------------------------------------------------- the NumPy peer


def read_codes(n_bins: int) -> np.ndarray:
    """Base codes (A C G T = 0..3, else 4) of the bins plus HOMER's flanks, N past the segment's ends."""
    import epiformer as ef

    segment = ef.datasets.hg19_chr22_segment()
    lines = Path(segment.fasta).read_text().splitlines()
    text = "".join(line.strip() for line in lines[1:]).upper().encode("ascii")
    lookup = np.full(256, 4, dtype=np.uint8)
    lookup[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
    seq = lookup[np.frombuffer(text, dtype=np.uint8)]
    lo, hi = START - LEFT, START + n_bins * BIN - 1 + RIGHT  # 1-based, inclusive
    out = np.full(hi - lo + 1, 4, dtype=np.uint8)
    first, last = max(lo, segment.start), min(hi, segment.start + seq.size - 1)
    out[first - lo : last - lo + 1] = seq[first - segment.start : last - segment.start + 1]
    return out


def _tables(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (length x 5) log-odds of the forward and reverse strand; column 4 (N) is -inf."""
    log_odds = np.log(np.maximum(probabilities, FLOOR) / 0.25)
    forward = np.full((log_odds.shape[0], 5), -np.inf)
    forward[:, :4] = log_odds
    reverse = np.full_like(forward, -np.inf)
    reverse[:, :4] = log_odds[::-1, ::-1]  # reverse complement: positions reversed, A<->T, C<->G
    return forward.ravel(), reverse.ravel()


def best_site_per_bin(codes: np.ndarray, motifs, n_bins: int) -> np.ndarray:
    """Best site score (both strands, no threshold) of every motif in every bin's window: (n_bins, n_motifs)."""
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.empty((n_bins, len(motifs)))
    lengths = np.array([m.probabilities.shape[0] for m in motifs])
    for length in np.unique(lengths):
        windows = sliding_window_view(codes, length)  # (positions, length) view, no copy
        index = windows + 5 * np.arange(length, dtype=np.intp)  # flat index into a (length x 5) table, once
        for m in np.flatnonzero(lengths == length):
            forward, reverse = _tables(motifs[m].probabilities)
            site = np.maximum(forward.take(index).sum(1), reverse.take(index).sum(1))
            out[:, m] = sliding_window_view(site, SPAN - length + 1)[::BIN].max(1)
    return out


def numpy_scores(codes: np.ndarray, motifs, motif_tf: np.ndarray, n_tfs: int, n_bins: int) -> np.ndarray:
    best = best_site_per_bin(codes, motifs, n_bins)
    thresholds = np.array([m.threshold for m in motifs])
    hits = np.where(best >= thresholds, best, -np.inf)
    out = np.full((n_bins, n_tfs), -np.inf)
    for m, tf in enumerate(motif_tf):
        np.maximum(out[:, tf], hits[:, m], out=out[:, tf])
    return np.where(np.isfinite(out), out, 0.0)


def setup_numpy(kb, library, table, threads):
    _set_threads(threads)
    _, n_bins = _region(kb)
    tfs = list(dict.fromkeys(table["tf"]))
    column = {tf: j for j, tf in enumerate(tfs)}
    by_name = {m.name: m for m in library}
    motifs = [by_name[name] for name in table["motif"]]
    motif_tf = np.array([column[tf] for tf in table["tf"]])
    return read_codes(n_bins), motifs, motif_tf, len(tfs), n_bins


def run_numpy(state):
    return numpy_scores(*state).astype(np.float32)


# ---------------------------------------------------------------- epiformer


def setup_epiformer(kb, library, table, threads):
    import torch  # noqa: F401  (imports and reading the FASTA are not part of the timed job, as for the peer)

    import epiformer as ef

    _set_threads(threads)
    region, _ = _region(kb)
    genome = ef.io.Genome.open(ef.datasets.hg19_chr22_segment())
    genome.codes("22")  # read and encoded once, then cached
    return region, genome, list(dict.fromkeys(table["tf"])), library, table


def run_epiformer(state):
    import epiformer as ef

    region, genome, tfs, library, table = state
    return ef.pp.motif_scores(region, fasta=genome, tfs=tfs, motifs=library, motif_to_tf=table).X


# ---------------------------------------------------------------- the library


def make_library(n_motifs: int, n_tfs: int, codes: np.ndarray, n_bins: int):
    """Seeded HOMER-format motifs (epiformer.io.HomerMotif) and a motif-to-TF table (motif, tf)."""
    import pandas as pd

    from epiformer.io import HomerMotif

    rng = np.random.default_rng(SEED)
    draws = []
    for _ in range(n_motifs):
        length = int(rng.integers(6, 21))
        probabilities = np.round(rng.dirichlet(np.full(4, 0.5), size=length), 3)
        best = np.log(np.maximum(probabilities, FLOOR) / 0.25).max(1).sum()
        draws.append((probabilities, 0.6 * best))
    tf_of = np.concatenate([np.arange(n_tfs), rng.integers(0, n_tfs, n_motifs - n_tfs)])
    names = [f"Motif{i}(Synthetic)/Bench/Homer" for i in range(n_motifs)]
    stub = [HomerMotif(n, "N", 0.0, p) for n, (p, _) in zip(names, draws, strict=True)]
    best = best_site_per_bin(codes, stub, n_bins)  # move thresholds off every bin's best score
    library, moved = [], 0
    for m, (probabilities, threshold) in enumerate(draws):
        for k in range(1000):
            shifted = threshold + GAP * ((k + 1) // 2) * (1 if k % 2 else -1)
            if np.abs(best[:, m] - shifted).min() >= GAP:
                break
        moved += shifted != threshold
        consensus = "".join("ACGT"[i] for i in probabilities.argmax(1))
        library.append(HomerMotif(names[m], consensus, float(shifted), probabilities))
    table = pd.DataFrame({"motif": names, "tf": [f"TF{j}" for j in tf_of]})
    order = np.argsort(tf_of, kind="stable")  # table rows grouped by TF, TFs in order TF0, TF1, ...
    return library, table.iloc[order].reset_index(drop=True), moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=128, help="sequence length in kb (from 22:20,000,001)")
    parser.add_argument("--tfs", type=int, default=711)
    parser.add_argument("--motifs", type=int, default=1465)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 kb x 50 TFs, 100 motifs")
    args = parser.parse_args()
    if args.quick:
        args.kb, args.tfs, args.motifs = 16, 50, 100
    if not 0 < args.kb <= 500 or not 0 < args.tfs <= args.motifs:
        parser.error("need 0 < --kb <= 500 (the segment's sequence before its N block) and 0 < --tfs <= --motifs")
    region, n_bins = _region(args.kb)
    library, table, moved = make_library(args.motifs, args.tfs, read_codes(n_bins), n_bins)
    lengths = np.array([m.length for m in library])
    print(
        f"library: {len(library)} motifs (lengths {lengths.min()}..{lengths.max()}, mean {lengths.mean():.1f}) "
        f"-> {args.tfs} TFs (max {table['tf'].value_counts().max()} motifs per TF); "
        f"{moved} thresholds moved by >= {GAP} off a bin's best score",
        flush=True,
    )
    ours = measure(setup_epiformer, run_epiformer, args.kb, library, table, args.threads)
    peer = measure(setup_numpy, run_numpy, args.kb, library, table, args.threads)
    np.testing.assert_allclose(ours["result"], peer["result"], rtol=0, atol=1e-4)
    hit = peer["result"] > 0
    print(
        f"same matrix ({n_bins} bins x {args.tfs} TFs): {hit.mean():.1%} of (bin, TF) cells hit, "
        f"{(hit.any(0)).mean():.1%} of TFs hit somewhere, max |diff| {np.abs(ours['result'] - peer['result']).max():.2e}",
        flush=True,
    )
    job = f"HOMER motif scan {region} ({n_bins} bins) x {args.tfs} TFs, {args.motifs} motifs"
    report(job, ours, peer, "NumPy sliding_window_view + gather")


if __name__ == "__main__":
    main()
