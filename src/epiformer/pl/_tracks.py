"""Genome-browser-style tracks of predicted chromatin signals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

from epiformer._constants import Key
from epiformer._sequence import bin_bounds, normalize_chrom, parse_regions
from epiformer._utils import layer_names
from epiformer._validation import first_items

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The unit of EpiGePT's signals, on every panel's y axis.
_UNIT = "log(count + 1)"


def tracks(
    pred: AnnData,
    *,
    contexts: Sequence[str] | None = None,
    signals: Sequence[str] | None = None,
    region: str | None = None,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """Predicted signals along a region, one panel per signal and one line per context.

    The title names the region drawn and the contexts, and says "random weights" when the model that predicted
    them had never been loaded nor trained (`uns['epigept']['params']['weights']`); y axes are in
    ``log(count + 1)``, EpiGePT's unit.

    Parameters
    ----------
    pred
        Output of :func:`epiformer.tl.predict_epigenome` (contexts x 128-bp bins, one layer per signal).
    contexts
        Contexts (`obs_names`) to draw; default all (at most 10).
    signals
        Signals (layers) to draw, one panel each; default every signal of the prediction.
    region
        ``"chr22:20100001-20300000"`` to zoom into; default every bin of the first chromosome.
    ax
        One Axes per signal (a single Axes for one signal); a new figure is made when `None`.

    Returns
    -------
    The Figure drawn into.
    """
    import matplotlib.pyplot as plt

    if not isinstance(pred, AnnData) or not {Key.var.chrom, Key.var.start, Key.var.end} <= set(pred.var.columns):
        msg = "`pred` must be the AnnData returned by `ef.tl.predict_epigenome` (var: chrom, start, end)."
        raise ValueError(msg)
    recorded = pred.uns.get(Key.uns.epigept, {}).get("signals")
    layers = layer_names(pred)
    available = [str(s) for s in recorded] if recorded is not None else layers
    signals = list(available if signals is None else signals)
    unknown = [s for s in signals if s not in layers]
    if unknown or not signals:
        msg = f"Signals {first_items(unknown)} are not layers of `pred`; available: {layers}."
        raise KeyError(msg)
    names = [str(c) for c in pred.obs_names]
    contexts = names[:10] if contexts is None else [str(c) for c in contexts]
    missing = [c for c in contexts if c not in names]
    if missing:
        msg = f"Contexts {first_items(missing)} are not in `pred.obs_names`."
        raise KeyError(msg)
    chrom_names, starts, ends = bin_bounds(pred.var, "`pred.var`")
    chroms = np.array([normalize_chrom(c) for c in chrom_names])
    if region is None:
        chrom = chroms[0]
        cols = chroms == chrom
        label = chrom_names[0]
    else:
        label, lo, hi = parse_regions(region)[0]
        chrom = normalize_chrom(label)
        cols = (chroms == chrom) & (ends >= lo) & (starts <= hi)
    if not cols.any():
        msg = f"No predicted bin lies in {region}."
        raise ValueError(msg)
    order = np.flatnonzero(cols)[np.argsort(starts[cols])]
    x = (starts[order] + ends[order]) / 2 / 1e6

    if ax is None:
        fig, axes = plt.subplots(len(signals), 1, figsize=(9, 1.6 * len(signals) + 0.6), sharex=True, squeeze=False)
        axes = list(axes[:, 0])
    else:
        axes = [ax] if not isinstance(ax, Sequence | np.ndarray) else list(np.ravel(ax))
        if len(axes) != len(signals):
            msg = f"`ax` holds {len(axes)} Axes for {len(signals)} signals; give one per signal."
            raise ValueError(msg)
        fig = axes[0].figure
    rows = [names.index(c) for c in contexts]
    colors = plt.get_cmap("tab10")
    for panel, signal in zip(axes, signals, strict=True):
        values = pred.layers[signal]
        for k, (row, context) in enumerate(zip(rows, contexts, strict=True)):
            panel.plot(x, np.asarray(values[row, order]).ravel(), lw=0.8, color=colors(k % 10), label=context)
        panel.set_ylabel(f"{signal}\n{_UNIT}", rotation=0, ha="right", va="center")
        panel.spines[["top", "right"]].set_visible(False)
    axes[0].legend(loc="upper right", fontsize="x-small", ncols=min(len(contexts), 5), frameon=False)
    axes[0].set_title(
        _title(pred, label=label, start=int(starts[order[0]]), end=int(ends[order[-1]]), contexts=contexts)
    )
    axes[-1].set_xlabel(f"{label} position (Mb)")
    return fig


def _title(pred: AnnData, *, label: str, start: int, end: int, contexts: Sequence[str]) -> str:
    """What the tracks show: the region drawn, the contexts, and "random weights" when the model had them."""
    params = pred.uns.get(Key.uns.epigept, {}).get("params", {})
    plural = "s" if len(contexts) != 1 else ""
    text = f"EpiGePT predictions, {label}:{start:,}-{end:,}, context{plural} {', '.join(contexts)}"
    if params.get("weights") == "random":
        text += " (random weights: not a prediction)"
    return text
