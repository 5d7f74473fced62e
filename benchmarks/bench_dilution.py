"""Expression dilution: `ef.pp.dilute` vs `scanpy.pp.downsample_counts` and vs the reproduction study's loop.

Job: 10,000 cells x 20,000 genes of sparse UMI counts (about 7,000 genes and 30,000 UMIs per cell), diluted to
a retention of 10,000 per cell.

- ``multinomial`` (10,000 molecules per cell, with replacement) beside ``sc.pp.downsample_counts(counts_per_cell=
  10_000, replace=True)``, the same job;
- ``legacy`` (the study's rule: draw 10,000 genes per cell with probability proportional to their values, keep
  the drawn genes' values) beside the study's per-sample loop (pandas rows, one ``choice`` per sample, a
  ``.loc`` mask), written here with a ``numpy.random.Generator`` so the two outputs can be compared exactly.
  The loop is too slow for 10,000 cells: it is timed on the first `N_LOOP` cells and scaled linearly (it
  handles one cell at a time), and our legacy rule is checked to give identical output on those cells.

Capture job (``python bench_dilution.py capture [n_cells]``, default 100,000): `N_CELLS_CAPTURE` cells x
`N_GENES_CAPTURE` genes of sparse counts (about 2,000 molecules per cell: lognormal library sizes, ten cell types
whose gene profiles are gamma-perturbed versions of one gamma-distributed profile, so that counts are
overdispersed like negative binomial ones), thinned to `RETENTION_CAPTURE` molecules per cell without
replacement: ``hypergeometric`` (the default) beside ``sc.pp.downsample_counts(counts_per_cell=500,
replace=False)``. scanpy thins `.X` in place; epiformer writes a new layer and leaves the counts as they are.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

N_CELLS, N_GENES, RETENTION, N_LOOP = 10_000, 20_000, 10_000, 200
N_CELLS_CAPTURE, N_GENES_CAPTURE, RETENTION_CAPTURE = 100_000, 30_000, 500


def make_counts(path: Path) -> None:
    from scipy import sparse

    rng = np.random.default_rng(0)
    mean = rng.gamma(0.25, 1.0, N_GENES)
    mean /= mean.sum()
    parts = []
    for _ in range(N_CELLS // 1000):
        library = rng.lognormal(np.log(30_000), 0.25, 1000)
        parts.append(sparse.csr_matrix(rng.poisson(library[:, None] * mean[None, :]).astype(np.float32)))
    sparse.save_npz(path, sparse.vstack(parts, format="csr"))


def make_capture_counts(path: Path, n_cells: int = N_CELLS_CAPTURE, block: int = 5_000) -> None:
    """Sparse counts built molecule by molecule, `block` cells at a time (never a dense matrix)."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    base = rng.gamma(0.3, 1.0, N_GENES_CAPTURE)
    profiles = base * rng.gamma(2.0, 0.5, (10, N_GENES_CAPTURE))
    cdfs = np.cumsum(profiles / profiles.sum(axis=1, keepdims=True), axis=1)
    parts = []
    for lo in range(0, n_cells, block):
        size = min(block, n_cells - lo)
        library = np.round(rng.lognormal(np.log(2_000), 0.35, size)).astype(np.int64)
        kind = rng.integers(0, 10, size)
        cell = np.repeat(np.arange(size), library)
        gene = np.empty(len(cell), dtype=np.int64)
        for k in range(10):
            mine = kind[cell] == k
            gene[mine] = np.minimum(np.searchsorted(cdfs[k], rng.random(int(mine.sum()))), N_GENES_CAPTURE - 1)
        keys, counts = np.unique(cell * N_GENES_CAPTURE + gene, return_counts=True)
        rows, cols = np.divmod(keys, N_GENES_CAPTURE)
        parts.append(sparse.csr_matrix((counts.astype(np.float32), (rows, cols)), shape=(size, N_GENES_CAPTURE)))
    sparse.save_npz(path, sparse.vstack(parts, format="csr"), compressed=False)


def load_capture(path: str):
    import anndata as ad
    import scanpy  # noqa: F401  (imports are not part of the timed job)
    from scipy import sparse

    import epiformer  # noqa: F401

    counts = sparse.load_npz(path).tocsr()
    return ad.AnnData(counts, layers={"counts": counts})  # one matrix: scanpy thins .X, epiformer reads "counts"


def run_capture(adata):
    import epiformer as ef

    ef.pp.dilute(adata, RETENTION_CAPTURE, random_state=0)  # the default: hypergeometric
    diluted = adata.layers["diluted"]
    return float(diluted.sum()), int(diluted.nnz)


def run_scanpy_capture(adata):
    import scanpy as sc

    sc.pp.downsample_counts(adata, counts_per_cell=RETENTION_CAPTURE, replace=False, random_state=0)
    return float(adata.X.sum()), int(adata.X.nnz)


def capture(n_cells: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "capture.npz")
        make_capture_counts(Path(path), n_cells)
        ours = measure(load_capture, run_capture, path)
        peer = measure(load_capture, run_scanpy_capture, path)
        assert ours["result"][0] == peer["result"][0]  # the same totals: min(total, retention) per cell
        print(f"diluted nnz: epiformer {ours['result'][1]:,}, scanpy {peer['result'][1]:,}", flush=True)
        report(
            f"dilute hypergeometric {n_cells:,} x {N_GENES_CAPTURE:,} to {RETENTION_CAPTURE}",
            ours,
            peer,
            "scanpy downsample_counts(replace=False)",
        )


def load(path: str, n_cells: int = N_CELLS):
    import anndata as ad
    import scanpy  # noqa: F401  (imports are not part of the timed job)
    from scipy import sparse

    import epiformer  # noqa: F401

    counts = sparse.load_npz(path)[:n_cells].tocsr()
    return ad.AnnData(counts.copy(), layers={"counts": counts})


def load_subset(path: str):
    return load(path, N_LOOP)


def load_frame(path: str):
    import pandas as pd

    counts = load(path, N_LOOP).X.toarray().astype(np.float64)  # the study read float64 CSVs
    return pd.DataFrame(counts, columns=[f"g{i}" for i in range(N_GENES)])


def run_multinomial(adata):
    import epiformer as ef

    ef.pp.dilute(adata, RETENTION, method="multinomial", random_state=0)
    return float(adata.layers["diluted"].sum())


def run_scanpy(adata):
    import scanpy as sc

    sc.pp.downsample_counts(adata, counts_per_cell=RETENTION, replace=True, random_state=0)
    return float(adata.X.sum())


def run_legacy(adata):
    import epiformer as ef

    ef.pp.dilute(adata, RETENTION, method="legacy", random_state=0)
    diluted = adata.layers["diluted"]
    return diluted[:N_LOOP].toarray() if diluted.shape[0] == N_LOOP else int(diluted.nnz)


def run_study_loop(frame):
    """The reproduction study's loop: per sample, probabilities from the row, `choice` of gene names, mask."""
    import pandas as pd

    rng = np.random.default_rng(0)
    sums = frame.sum(axis=1)
    chosen = pd.DataFrame(index=frame.index, columns=range(RETENTION))
    for sample in frame.index:
        p = frame.loc[sample] / sums[sample]
        chosen.loc[sample] = rng.choice(frame.columns, size=RETENTION, p=p, replace=True)
    mask = frame.copy()
    mask[:] = 0
    for sample in frame.index:
        genes = chosen.loc[sample].drop_duplicates()
        mask.loc[sample, genes] = frame.loc[sample, genes]
    return mask.to_numpy()


if __name__ == "__main__" and sys.argv[1:2] == ["capture"]:
    capture(int(sys.argv[2]) if len(sys.argv) > 2 else N_CELLS_CAPTURE)
elif __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "counts.npz")
        make_counts(Path(path))
        ours = measure(load, run_multinomial, path)
        peer = measure(load, run_scanpy, path)
        assert ours["result"] == N_CELLS * RETENTION
        report(f"dilute multinomial {N_CELLS:,} x {N_GENES:,} to {RETENTION:,}", ours, peer, "scanpy downsample_counts")

        legacy = measure(load, run_legacy, path)
        legacy_subset = measure(load_subset, run_legacy, path)
        loop = measure(load_frame, run_study_loop, path)
        np.testing.assert_array_equal(legacy_subset["result"], loop["result"])
        print(f"legacy rule on the first {N_LOOP} cells: identical output to the study's loop", flush=True)
        scaled = {"seconds": loop["seconds"] * N_CELLS / N_LOOP, "peak_mb": loop["peak_mb"]}
        print(
            f"study loop: {loop['seconds']:.2f} s for {N_LOOP} cells, scaled to {N_CELLS:,}: {scaled['seconds']:.0f} s"
        )
        report(
            f"dilute legacy {N_CELLS:,} cells (loop scaled from {N_LOOP}, its memory measured on {N_LOOP})",
            legacy,
            scaled,
            "study loop",
        )
        report(f"dilute multinomial {N_CELLS:,} cells vs the study loop (scaled)", ours, scaled, "study loop")
        report(f"dilute legacy on the same {N_LOOP} cells", legacy_subset, loop, "study loop")
