"""EPICv2 probe harmonisation: `ef.pp.harmonize_probes` vs the pandas groupby a user would write.

Job: 200 samples x 150,000 EPICv2-style probes (suffixed IDs, 10 % of CpGs with a second replicate, 2 %
missing values), collapse suffixes and average replicates ignoring NaN.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

N_OBS, N_CPG = 200, 150_000


def make_data():
    import anndata as ad

    rng = np.random.default_rng(0)
    base = np.array([f"cg{i:08d}" for i in range(N_CPG)])
    dup = rng.choice(N_CPG, N_CPG // 10, replace=False)
    names = np.concatenate([[f"{b}_TC11" for b in base], [f"{b}_TC12" for b in base[dup]]])
    X = rng.uniform(0, 1, (N_OBS, len(names))).astype(np.float32)
    X[rng.random(X.shape) < 0.02] = np.nan
    adata = ad.AnnData(X=X)
    adata.var_names = names
    return adata


def run_epiformer(adata):
    import epiformer as ef

    return ef.pp.harmonize_probes(adata).shape


def run_pandas(adata):
    frame = adata.to_df()
    ids = frame.columns.str.replace(r"_[A-Z]{2}\d+$", "", regex=True)
    return frame.T.groupby(ids, sort=False).mean().T.shape


if __name__ == "__main__":
    ours = measure(make_data, run_epiformer)
    peer = measure(make_data, run_pandas)
    assert tuple(ours["result"]) == tuple(peer["result"]) == (N_OBS, N_CPG)
    report(f"harmonize_probes {N_OBS} x {N_CPG + N_CPG // 10} EPICv2", ours, peer, "pandas groupby-mean")
