"""Tracks out and in: `ef.io.write_bigwig` / `ef.io.read_bigwig` vs the pyBigWig loops a user would write.

Job 1 (write): one context's prediction, 1,000 bins (and 100,000 bins) x 8 signals, to 8 bigWig files. Peer:
pyBigWig directly, one `addEntries` call per interval.
Job 2 (read): the same files back as 128-bp bin means over the bins' region. Peer: one exact `bw.stats` call per
bin and file.

Both sides produce the same values (checked).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

FOLDER = Path(tempfile.gettempdir()) / "epiformer-bench-tracks"
FIRST = 20_000_000 // 128


def prediction(n_bins: int):
    import pandas as pd
    from anndata import AnnData

    from epiformer._constants import Key
    from epiformer._sequence import bin_frame

    rng = np.random.default_rng(0)
    pred = AnnData(obs=pd.DataFrame(index=["HepG2"]), var=bin_frame("chr22", FIRST, n_bins, 128))
    for signal in Key.layers.epigept_signals:
        pred.layers[signal] = rng.gamma(1.0, 1.0, (1, n_bins)).astype(np.float32)
    return pred


def setup_write(n_bins: int, side: str):
    import pyBigWig  # noqa: F401  (imported before the clock starts on both sides)

    import epiformer  # noqa: F401

    folder = FOLDER / f"{side}-{n_bins}"
    folder.mkdir(parents=True, exist_ok=True)
    return prediction(n_bins), folder


def run_epiformer_write(state):
    import epiformer as ef

    pred, folder = state
    paths = ef.io.write_bigwig(pred, folder, transform=None)
    return len(paths), sum(p.stat().st_size > 0 for p in paths)


def run_pybigwig_write(state):
    import pyBigWig

    pred, folder = state
    chrom = pred.var["chrom"].astype(str).tolist()
    starts = (pred.var["start"].to_numpy() - 1).tolist()
    ends = pred.var["end"].to_numpy().tolist()
    written = 0
    for signal in pred.layers:
        values = pred.layers[signal][0].astype(float).tolist()
        bw = pyBigWig.open(str(folder / f"HepG2.{signal}.bw"), "w")
        bw.addHeader([("chr22", ends[-1])], maxZooms=10)
        for c, s, e, v in zip(chrom, starts, ends, values, strict=True):
            bw.addEntries([c], [s], ends=[e], values=[v])
        bw.close()
        written += 1
    return written, written


def setup_read(n_bins: int):
    import pyBigWig  # noqa: F401

    import epiformer as ef

    folder = FOLDER / f"read-{n_bins}"
    paths = ef.io.write_bigwig(prediction(n_bins), folder, transform=None)
    region = f"chr22:{FIRST * 128 + 1}-{(FIRST + n_bins) * 128}"
    return paths, region, n_bins


def run_epiformer_read(state):
    import epiformer as ef

    paths, region, _ = state
    signals = [p.name.split(".")[1] for p in paths]
    out = ef.io.read_bigwig({"HepG2": dict(zip(signals, paths, strict=True))}, regions=region, transform=None)
    return np.stack([out.layers[s][0] for s in signals])


def run_pybigwig_read(state):
    import pyBigWig

    paths, _, n_bins = state
    rows = []
    for path in paths:
        bw = pyBigWig.open(str(path))
        row = np.empty(n_bins, dtype=np.float32)
        for k in range(n_bins):
            start = (FIRST + k) * 128
            value = bw.stats("chr22", start, start + 128, type="mean", exact=True)[0]
            row[k] = np.nan if value is None else value
        bw.close()
        rows.append(row)
    return np.stack(rows)


if __name__ == "__main__":
    sizes = [1_000] if "--quick" in sys.argv else [1_000, 100_000]
    for n_bins in sizes:
        ours = measure(setup_write, run_epiformer_write, n_bins, "ef")
        peer = measure(setup_write, run_pybigwig_write, n_bins, "peer")
        assert ours["result"] == peer["result"] == (8, 8)
        report(f"write_bigwig {n_bins:,} bins x 8 signals", ours, peer, "pyBigWig per-interval addEntries")
        ours = measure(setup_read, run_epiformer_read, n_bins)
        peer = measure(setup_read, run_pybigwig_read, n_bins)
        np.testing.assert_allclose(ours["result"], peer["result"], rtol=1e-6)
        report(f"read_bigwig {n_bins:,} bins x 8 files", ours, peer, "pyBigWig per-bin exact stats")
