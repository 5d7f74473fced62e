"""Score EpiGePT predictions against measured tracks (in memory or bigWig files), per context and signal."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from epiformer._constants import Key
from epiformer._logging import timed
from epiformer._sequence import bin_bounds, normalize_chrom
from epiformer._utils import layer_names, record_params, to_dense_float
from epiformer._validation import first_items
from epiformer.io import read_bigwig


def _bin_keys(var: pd.DataFrame, what: str) -> pd.Index:
    chroms, starts, ends = bin_bounds(var, f"`{what}.var`")
    return pd.Index([f"{normalize_chrom(c)}:{s}-{e}" for c, s, e in zip(chroms, starts, ends, strict=True)])


def _runs(var: pd.DataFrame) -> list[tuple[str, int, int]]:
    """The bins of `var` merged into runs of adjacent bins: ``(chrom, start, end)`` regions, 1-based, inclusive."""
    frame = var[[Key.var.chrom, Key.var.start, Key.var.end]].astype({Key.var.chrom: str}).copy()
    frame = frame.sort_values([Key.var.chrom, Key.var.start], kind="stable")
    chrom, start, end = (frame[c].to_numpy() for c in (Key.var.chrom, Key.var.start, Key.var.end))
    new = np.r_[True, (chrom[1:] != chrom[:-1]) | (start[1:] != end[:-1] + 1)]
    group = np.cumsum(new)
    runs = pd.DataFrame({"chrom": chrom, "start": start, "end": end, "g": group}).groupby("g", sort=False)
    merged = runs.agg(chrom=("chrom", "first"), start=("start", "min"), end=("end", "max"))
    return [(str(c), int(a), int(b)) for c, a, b in merged.itertuples(index=False, name=None)]


def evaluate_epigenome(
    data: AnnData,
    *,
    tracks: AnnData | Mapping[str, Mapping[str, str | os.PathLike]],
    signals: Sequence[str] | None = None,
    key_added: str = Key.uns.epigept_evaluation,
) -> pd.DataFrame:
    """Score predicted chromatin signals against measured tracks: Pearson and Spearman r, MSE, per context and signal.

    Predictions and truth are compared on the scale EpiGePT predicts, ``log(count + 1)``, over the bins both
    have a value for (NaN truth = unmeasured, left out). Bins are matched by chromosome (with or without ``chr``)
    and start, contexts by name.

    Parameters
    ----------
    data
        Predictions, contexts x bins with one layer per signal (:func:`epiformer.tl.predict_epigenome`);
        `uns[key_added]` is written into it.
    tracks
        The truth: an AnnData in the same layout (e.g. from :func:`epiformer.io.read_bigwig`), or bigWig files as
        ``{context: {signal: path}}``, read over the prediction's bins with :func:`epiformer.io.read_bigwig`'s
        defaults (bin means, ``log1p``). Contexts and signals it lacks are not scored.
    signals
        Signals to score; `None` scores every layer present in both.
    key_added
        `uns` key of the scores.

    Returns
    -------
    One row per (context, signal) with any measured bin: `context`, `signal`, `n` (bins compared), `pearson`,
    `spearman`, `mse` (the correlations NaN where fewer than 2 bins, or a constant side). Also written to ``uns[key_added]`` as `metrics`, with
    `pearson`, a contexts x signals table of the Pearson r.
    """
    with timed("ef.tl.evaluate_epigenome") as written:
        if not isinstance(data, AnnData):
            msg = "`data` must be an AnnData of predictions, contexts x bins with one layer per signal."
            raise TypeError(msg)
        pred_keys = _bin_keys(data.var, "data")
        if isinstance(tracks, Mapping):
            widths = np.unique(data.var[Key.var.end].to_numpy(np.int64) - data.var[Key.var.start].to_numpy(np.int64))
            tracks = read_bigwig(tracks, regions=_runs(data.var), bin_size=int(widths.max()) + 1)
        if not isinstance(tracks, AnnData):
            msg = "`tracks` must be an AnnData of contexts x bins, or bigWig files as {context: {signal: path}}."
            raise TypeError(msg)
        truth_keys = _bin_keys(tracks.var, "tracks")
        available = [s for s in layer_names(data) if s in layer_names(tracks)]
        if signals is None:
            signals = available
        else:
            signals = [signals] if isinstance(signals, str) else list(signals)
            absent = [s for s in signals if s not in available]
            if absent:
                msg = (
                    f"Signals {first_items(absent)} are not layers of both `data` and `tracks` (both have {available})."
                )
                raise KeyError(msg)
        contexts = [c for c in data.obs_names if c in tracks.obs_names]
        if not signals or not contexts:
            msg = (
                f"Nothing to score: `data` and `tracks` share {len(contexts)} contexts and {len(signals)} signals; "
                "contexts match by obs name and signals by layer name."
            )
            raise ValueError(msg)
        columns = pd.Index(truth_keys).get_indexer(pred_keys)
        if (columns < 0).all():
            msg = (
                "No bin of `data` is in `tracks` (bins match by chromosome, 1-based start and end: read the tracks "
                "with the prediction's bin size)."
            )
            raise ValueError(msg)
        rows = []
        pred_rows = data.obs_names.get_indexer(contexts)
        truth_rows = tracks.obs_names.get_indexer(contexts)
        for signal in signals:
            pred = to_dense_float(data.layers[signal][pred_rows], dtype=np.float64)
            truth = np.full_like(pred, np.nan)
            found = columns >= 0
            truth[:, found] = to_dense_float(tracks.layers[signal][truth_rows], dtype=np.float64)[:, columns[found]]
            for i, context in enumerate(contexts):
                ok = np.isfinite(pred[i]) & np.isfinite(truth[i])
                if not ok.any():  # this context has no measurement of this signal
                    continue
                p, t = pred[i, ok], truth[i, ok]
                varied = len(p) >= 2 and np.ptp(p) > 0 and np.ptp(t) > 0
                rows.append(
                    {
                        "context": context,
                        "signal": signal,
                        "n": int(ok.sum()),
                        "pearson": float(stats.pearsonr(p, t)[0]) if varied else np.nan,
                        "spearman": float(stats.spearmanr(p, t)[0]) if varied else np.nan,
                        "mse": float(np.mean((p - t) ** 2)),
                    }
                )
        if not rows:
            msg = "No bin has both a prediction and a measured value in `tracks`; nothing to score."
            raise ValueError(msg)
        table = pd.DataFrame(rows)
        pearson = table.pivot(index="context", columns="signal", values="pearson").reindex(
            index=contexts, columns=signals
        )
        pearson.index.name, pearson.columns.name = None, None
        record_params(data, key_added, {"signals": list(signals), "scale": "log1p"}, metrics=table, pearson=pearson)
        written.append(f"uns[{key_added!r}]")
    return table
