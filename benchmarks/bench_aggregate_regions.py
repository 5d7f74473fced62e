"""Single-cell methylation into 100-kb bins: `ef.pp.aggregate_regions` vs the pandas groupby a user would write.

Job: 2,000 cells x 1,000,000 CpG sites spread over the 22 autosomes of hg19 (3 % of the sites covered per cell,
``1 + Poisson(0.2)`` reads each), methylated and total reads summed per cell over 100-kb bins.

- epiformer: the cells x sites AnnData with CSR int32 layers `mc` and `cov`, as the sequencing reader writes it,
  into a cells x bins AnnData (``fraction=False``: the two count layers, what METHYLVI reads; then
  ``fraction=True``, which also writes the dense methylated fraction).
- pandas: the same reads as a long table (cell, chrom, pos, mc, cov), binned and summed with
  ``groupby([cell, chrom, bin]).sum()`` (then the fraction ``mc / cov`` as a column).

Both give the same sums (checked: the number of covered cell-bin pairs and the read totals agree).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

N_CELLS, N_SITES, COVERED, BIN = 2_000, 1_000_000, 0.03, 100_000
#: hg19 autosome lengths (bp), the sites' span.
# fmt: off
LENGTHS = [
    249_250_621, 243_199_373, 198_022_430, 191_154_276, 180_915_260, 171_115_067, 159_138_663, 146_364_022,
    141_213_431, 135_534_747, 135_006_516, 133_851_895, 115_169_878, 107_349_540, 102_531_392, 90_354_753,
    81_195_210, 78_077_248, 59_128_983, 63_025_520, 48_129_895, 51_304_566,
]
# fmt: on


def make_sites():
    """Site coordinates and CSR read counts, the same in every process (seeded)."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    lengths = np.asarray(LENGTHS, dtype=np.int64)
    chrom_index = np.sort(rng.choice(len(lengths), N_SITES, p=lengths / lengths.sum()))
    pos = np.empty(N_SITES, dtype=np.int64)
    for k in range(len(lengths)):
        rows = chrom_index == k
        pos[rows] = np.sort(rng.choice(lengths[k], rows.sum(), replace=False) + 1)
    per_cell = int(COVERED * N_SITES)
    indices = np.concatenate([np.sort(rng.choice(N_SITES, per_cell, replace=False)) for _ in range(N_CELLS)])
    indptr = np.arange(N_CELLS + 1, dtype=np.int64) * per_cell
    cov = (1 + rng.poisson(0.2, len(indices))).astype(np.int32)
    mc = rng.binomial(cov, 0.7).astype(np.int32)
    shape = (N_CELLS, N_SITES)
    chroms = np.array([f"chr{k + 1}" for k in range(len(lengths))])[chrom_index]
    return (
        chroms,
        pos,
        sparse.csr_matrix((mc, indices, indptr), shape),
        sparse.csr_matrix((cov, indices, indptr), shape),
    )


def make_anndata():
    import anndata as ad
    import pandas as pd

    import epiformer  # noqa: F401  (imports are not part of the timed job)

    chroms, pos, mc, cov = make_sites()
    var = pd.DataFrame(
        {"chrom": chroms, "pos": pos, "strand": "."}, index=[f"{c}:{p}" for c, p in zip(chroms, pos, strict=True)]
    )
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"cell{i}" for i in range(N_CELLS)]), var=var)
    adata.layers["mc"], adata.layers["cov"] = mc, cov
    return adata


def make_long_table():
    import pandas as pd

    chroms, pos, mc, cov = make_sites()
    sites = mc.indices
    return pd.DataFrame(
        {
            "cell": np.repeat(np.arange(N_CELLS, dtype=np.int32), np.diff(mc.indptr)),
            "chrom": pd.Categorical(chroms[sites]),
            "pos": pos[sites],
            "mc": mc.data,
            "cov": cov.data,
        }
    )


def _summary(mc, cov) -> tuple[int, int, int]:
    return int(cov.nnz), int(mc.sum()), int(cov.sum())


def run_epiformer(adata):
    import epiformer as ef

    out = ef.pp.aggregate_regions(adata, regions="100kb", fraction=False)
    return _summary(out.layers["mc"], out.layers["cov"])


def run_epiformer_fraction(adata):
    import epiformer as ef

    out = ef.pp.aggregate_regions(adata, regions="100kb", fraction=True)
    return _summary(out.layers["mc"], out.layers["cov"])


def _pandas_sums(table):
    binned = table.assign(bin=(table["pos"] - 1) // BIN)
    return binned.groupby(["cell", "chrom", "bin"], observed=True, sort=False)[["mc", "cov"]].sum()


def run_pandas(table):
    sums = _pandas_sums(table)
    return len(sums), int(sums["mc"].sum()), int(sums["cov"].sum())


def run_pandas_fraction(table):
    sums = _pandas_sums(table)
    sums["fraction"] = sums["mc"] / sums["cov"]
    return len(sums), int(sums["mc"].sum()), int(sums["cov"].sum())


if __name__ == "__main__":
    job = f"aggregate_regions {N_CELLS} cells x {N_SITES:,} sites ({COVERED:.0%} covered) into 100-kb bins"
    ours = measure(make_anndata, run_epiformer)
    peer = measure(make_long_table, run_pandas)
    assert tuple(ours["result"]) == tuple(peer["result"]), (ours["result"], peer["result"])
    report(f"{job}, counts", ours, peer, "pandas long-table groupby-sum")
    ours = measure(make_anndata, run_epiformer_fraction)
    peer = measure(make_long_table, run_pandas_fraction)
    assert tuple(ours["result"]) == tuple(peer["result"]), (ours["result"], peer["result"])
    report(f"{job}, counts + fraction", ours, peer, "pandas long-table groupby-sum + fraction column")
