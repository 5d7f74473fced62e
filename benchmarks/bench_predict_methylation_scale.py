"""Methylation maps of many spatial spots: ``ef.tl.predict_methylation`` streamed in row chunks (issue 21).

Job: predict 2,000 CpGs for N synthetic spots x 20,000 genes (sparse CSR, log1p of counts per 10,000; counts
are a multinomial draw of a negative-binomial library size, mean 2,000 UMIs per spot, over Zipf-like gene
frequencies) with a random-weight factorized model of the package's architecture over all 20,000 genes. Ours
streams `sample_batch` spots at a time (only that chunk densified) and writes the betas chunk by chunk to an
AnnData zarr store (``out=``), so its peak memory should not grow with N; measured at two sizes. The peer is the
code before the change (HEAD before issue 21): the whole expression made dense in the model's gene order, one
``model.predict`` over it, the betas held in memory; run on a size it can hold, beside ours in memory and on
disk, and its results are checked equal to ours. Each side runs in its own process (``_measure.py``: peak
resident memory over what the inputs occupy, the sparse matrix and the model) with `--threads` intra-op threads.

    .venv/bin/python benchmarks/bench_predict_methylation_scale.py                 # 50,000 and 200,000 spots
    .venv/bin/python benchmarks/bench_predict_methylation_scale.py --sizes 20000 80000 --peer-size 20000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure

N_GENES, N_CPGS, SEQ_LEN, UMIS = 20_000, 2_000, 200, 2_000


def synthetic_spots(n_spots: int, n_genes: int = N_GENES, *, seed: int = 0):
    """Sparse CSR log1p(CP10k) of `n_spots` x `n_genes`, built 10,000 spots at a time (never dense)."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, n_genes + 1) ** 0.9
    freq = rng.permutation(freq / freq.sum())
    cdf = np.cumsum(freq)
    cdf /= cdf[-1]
    blocks = []
    for start in range(0, n_spots, 10_000):
        n = min(10_000, n_spots - start)
        library = rng.negative_binomial(4, 4 / (4 + UMIS), n) + 1  # mean ~2,000, overdispersed
        genes = np.minimum(np.searchsorted(cdf, rng.random(int(library.sum()))), n_genes - 1)
        rows = np.repeat(np.arange(n), library)
        counts = sparse.csr_matrix(
            (np.ones(len(genes), dtype=np.float32), (rows, genes)), shape=(n, n_genes), dtype=np.float32
        )
        counts.sum_duplicates()
        counts.data *= np.repeat(1e4 / library, np.diff(counts.indptr)).astype(np.float32)
        np.log1p(counts.data, out=counts.data)
        blocks.append(counts)
    return sparse.vstack(blocks, format="csr", dtype=np.float32)


def random_model(n_genes: int = N_GENES, n_cpgs: int = N_CPGS, *, seed: int = 0):
    """A factorized :class:`ExpressionPredictor` with random weights, 16 nearest genes per CpG, a fitted scaler."""
    from scipy import sparse

    from epiformer.models import ExpressionPredictor
    from epiformer.models._base import history_frame
    from epiformer.models.expression_predictor._data import CpGTable, ExpressionScaler

    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_cpgs), 24)
    cols = rng.integers(0, n_genes, len(rows))
    dist = sparse.csr_matrix((rng.uniform(-5e5, 5e5, len(rows)), (rows, cols)), shape=(n_cpgs, n_genes))
    model = ExpressionPredictor.__new__(ExpressionPredictor)
    model.config = {
        "architecture": "factorized",
        "scaling": "standard",
        "n_neighbors": 16,
        "encoding": "signed_bp",
        "seq_len": SEQ_LEN,
        "network": {},
        "random_state": seed,
    }
    model.rna_mod, model.methyl_mod, model.rna_layer, model.methyl_layer = "rna", "methyl", None, None
    model.genes = [f"gene{i:05d}" for i in range(n_genes)]
    model.cpgs = [f"chr1:{1000 * (i + 1)}" for i in range(n_cpgs)]
    model.cpg_chrom, model.cpg_pos = ["chr1"] * n_cpgs, [1000 * (i + 1) for i in range(n_cpgs)]
    seq = rng.integers(0, 4, (n_cpgs, SEQ_LEN), dtype=np.uint8)
    model.table = CpGTable(seq, dist, "signed_bp", "factorized", 16)
    model.network = model._build_network()
    model.scaler = ExpressionScaler("standard", np.full(n_genes, 0.5, np.float32), np.full(n_genes, 1.0, np.float32))
    model.history, model.train_params, model.checkpoint, model.mdata = history_frame(None), {}, {}, None
    return model


def setup(n_spots: int, threads: int, mode: str, folder: str):
    import anndata as ad
    import pandas as pd
    import torch

    torch.set_num_threads(threads)
    model = random_model()
    X = synthetic_spots(n_spots)
    spots = ad.AnnData(X, obs=pd.DataFrame(index=[f"spot{i}" for i in range(n_spots)]))
    spots.var_names = model.genes
    return spots, model, mode, folder


def run(state):
    import epiformer as ef
    from epiformer.models.expression_predictor._engine import in_model_order

    spots, model, mode, folder = state
    start = time.perf_counter()
    if mode == "peer":  # the code before issue 21: densify everything, one predict, all betas in memory
        expr, present = in_model_order(spots.X, spots.var_names, model.genes)
        betas = model.predict(expr, present=present, cpg_batch=256, sample_batch=256, device="cpu")
        np.save(Path(folder) / "peer.npy", betas[:2_000])
    elif mode == "memory":
        ef.tl.predict_methylation(spots, model, cpg_batch=256, sample_batch=256, device="cpu", progress=False)
        np.save(Path(folder) / "memory.npy", spots.obsm["predicted_methylation"].to_numpy()[:2_000])
    else:
        store = Path(folder) / f"betas_{spots.n_obs}.zarr"
        ef.tl.predict_methylation(
            spots, model, cpg_batch=256, sample_batch=256, device="cpu", progress=False, out=store
        )
        import zarr

        np.save(Path(folder) / f"disk_{spots.n_obs}.npy", zarr.open_group(str(store), mode="r")["X"][:2_000])
        shutil.rmtree(store)
    return {"seconds_inner": time.perf_counter() - start, "nnz": int(spots.X.nnz)}


def line(name: str, n: int, m: dict) -> str:
    pairs = n * N_CPGS / m["seconds"]
    text = (
        f"{name}, {n:,} spots x {N_GENES:,} genes ({m['result']['nnz'] / n:,.0f} non-zero per spot) x {N_CPGS:,} CpGs: "
        f"{m['seconds']:.1f} s ({pairs:,.0f} pairs/s), peak {m['peak_mb']:,.0f} MB"
    )
    print(text, flush=True)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs=2, default=[50_000, 200_000])
    parser.add_argument("--peer-size", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_predict_scale_")
    print(f"chunk: sample_batch 256 spots x cpg_batch 256 CpGs, {args.threads} thread(s)", flush=True)
    try:
        n = args.peer_size
        peer = measure(setup, run, n, args.threads, "peer", folder)
        line("before (whole matrix dense, one predict)", n, peer)
        ours_memory = measure(setup, run, n, args.threads, "memory", folder)
        line("streamed, betas in memory", n, ours_memory)
        ours_disk = measure(setup, run, n, args.threads, "disk", folder)
        line("streamed, betas to zarr (out=)", n, ours_disk)
        same = [
            np.array_equal(np.load(Path(folder) / "peer.npy"), np.load(Path(folder) / f))
            for f in ("memory.npy", f"disk_{n}.npy")
        ]
        print(
            f"at {n:,} spots: speed-up x{peer['seconds'] / ours_memory['seconds']:.2f} (memory) / "
            f"x{peer['seconds'] / ours_disk['seconds']:.2f} (zarr); peak memory "
            f"{ours_memory['peak_mb'] / peer['peak_mb']:.3f} / {ours_disk['peak_mb'] / peer['peak_mb']:.3f} x the "
            f"peer's; first 2,000 spots equal to the peer's: {same}",
            flush=True,
        )
        assert all(same)
        for size in args.sizes:
            line("streamed, betas to zarr (out=)", size, measure(setup, run, size, args.threads, "disk", folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
