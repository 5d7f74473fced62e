"""Reading single-cell methylation calls: `ef.io.read_bedmethyl` vs the pandas code a user would write.

Job 1 (scale): 1,000 cells, one ALLCools allc file each, 1,000,000 CpG sites in all, each cell covering 5 % of
them (50,000 calls per cell, 50 M calls), into sparse methylated / total count matrices. Peer: read every file
with pandas, concatenate into one long table, factorize the sites, build scipy sparse matrices.
Job 2 (dense peer): 200 cells x 100,000 sites, the same kind of files; peer: pandas `pivot_table` into a dense
cells x sites table, as a user new to sparse data would.

The files are written once into a cache folder (about 1.3 GB for job 1) and reused.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

CACHE = Path(tempfile.gettempdir()) / "epiformer-bench-calls"
COVERED = 0.05


def write_cells(n_cells: int, n_sites: int) -> list[str]:
    folder = CACHE / f"{n_cells}x{n_sites}"
    paths = [folder / f"cell{i:05d}.allc.tsv" for i in range(n_cells)]
    if (folder / "done").is_file():
        return [str(p) for p in paths]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    chrom = np.repeat(["chr1", "chr2", "chr3"], [n_sites // 2, n_sites // 4, n_sites - n_sites // 2 - n_sites // 4])
    pos = np.concatenate(
        [np.sort(rng.choice(200_000_000, (chrom == c).sum(), replace=False)) + 1 for c in ("chr1", "chr2", "chr3")]
    )
    strand = rng.choice(["+", "-"], n_sites)
    level = rng.beta(0.5, 0.5, n_sites)
    n_covered = int(COVERED * n_sites)
    for path in paths:
        rows = np.sort(rng.choice(n_sites, n_covered, replace=False))
        cov = rng.poisson(1.0, n_covered) + 1
        mc = rng.binomial(cov, level[rows])
        frame = pd.DataFrame(
            {0: chrom[rows], 1: pos[rows], 2: strand[rows], 3: "CGA", 4: mc, 5: cov, 6: (mc > cov / 2).astype(int)}
        )
        frame.to_csv(path, sep="\t", header=False, index=False)
    (folder / "done").touch()
    return [str(p) for p in paths]


def setup_epiformer(n_cells: int, n_sites: int) -> list[str]:
    import epiformer  # noqa: F401  (imported before the clock starts, as the peer's pandas is)

    return write_cells(n_cells, n_sites)


def run_epiformer(paths):
    from scipy import sparse

    import epiformer as ef

    adata = ef.io.read_bedmethyl(paths, format="allc", combine_strands=False, progress=False)
    assert adata.X is None and all(sparse.issparse(adata.layers[k]) for k in ("mc", "cov"))
    return adata.shape, int(adata.layers["cov"].nnz), int(adata.layers["cov"].sum())


def _long_table(paths) -> pd.DataFrame:
    names = ["chrom", "pos", "strand", "context", "mc", "cov", "flag"]
    frames = [pd.read_csv(p, sep="\t", header=None, names=names).assign(cell=i) for i, p in enumerate(paths)]
    long = pd.concat(frames, ignore_index=True)
    return long[long["context"].str.startswith("CG")]


def run_pandas_sparse(paths):
    from scipy import sparse

    long = _long_table(paths)
    codes, sites = pd.factorize(long["chrom"] + ":" + long["pos"].astype(str) + ":" + long["strand"])
    shape = (len(paths), len(sites))
    mats = [
        sparse.csr_matrix((long[k].to_numpy(), (long["cell"].to_numpy(), codes)), shape=shape) for k in ("mc", "cov")
    ]
    return shape, int(mats[1].nnz), int(mats[1].sum())


def run_pandas_pivot(paths):
    long = _long_table(paths)
    cov = long.pivot_table(index="cell", columns=["chrom", "pos", "strand"], values="cov", aggfunc="sum")
    return cov.shape, int(cov.notna().to_numpy().sum()), int(np.nansum(cov.to_numpy()))


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    jobs = (
        [(20, 20_000, run_pandas_pivot, "pandas pivot_table (dense)")]
        if quick
        else [
            (1_000, 1_000_000, run_pandas_sparse, "pandas concat + scipy sparse"),
            (200, 100_000, run_pandas_pivot, "pandas pivot_table (dense)"),
        ]
    )
    for n_cells, n_sites, peer_run, peer_name in jobs:
        write_cells(n_cells, n_sites)
        ours = measure(setup_epiformer, run_epiformer, n_cells, n_sites)
        peer = measure(write_cells, peer_run, n_cells, n_sites)
        assert tuple(ours["result"][0]) == tuple(peer["result"][0]) and ours["result"][1:] == peer["result"][1:]
        report(
            f"read_bedmethyl {n_cells} cells x {n_sites:,} sites ({ours['result'][1]:,} calls)", ours, peer, peer_name
        )
