"""Plots of predictions and of training runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_adata, doc_params
from epiformer.pl._utils import axes_or_new
from epiformer.tl import evaluate

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@doc_params(adata=doc_adata)
def prediction(
    adata: AnnData,
    *,
    truth: str,
    pred: str,
    split: str | None = "test",
    split_key: str = Key.obs.split,
    ax: Axes | None = None,
) -> Axes:
    """Predicted against true values (regression) or a confusion matrix (classification), with the metrics.

    Parameters
    ----------
    {adata}
    truth
        `obs` column with the true values or labels.
    pred
        `obs` column written by :func:`epiformer.tl.predict`.
    split
        Plot only the samples of this split (``"test"``); `None` plots every sample with a truth value.
    split_key
        `obs` column holding the split.
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    scores = evaluate(adata, truth=truth, pred=pred, split=split, split_key=split_key).iloc[0]
    rows = adata.obs[truth].notna().to_numpy()
    if split is not None:
        rows = rows & (adata.obs[split_key] == split).to_numpy()
    ax = axes_or_new(ax)
    if "medae" in scores:
        x, y = adata.obs[truth].to_numpy(float)[rows], adata.obs[pred].to_numpy(float)[rows]
        ax.scatter(x, y, s=12, alpha=0.7, color="tab:blue", edgecolor="none")
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--")
        text = f"MedAE {scores['medae']:.2f}\nMAE {scores['mae']:.2f}\nr {scores['pearson']:.3f}\nR² {scores['r2']:.3f}"
        ax.set_xlabel(f"true {truth}")
        ax.set_ylabel(f"predicted {truth}")
    else:
        classes = sorted(adata.obs[truth].dropna().astype(str).unique())
        true = pd.Categorical(adata.obs[truth].astype(str)[rows], categories=classes).codes
        predicted = pd.Categorical(adata.obs[pred].astype(str)[rows], categories=classes).codes
        matrix = np.zeros((len(classes), len(classes)), dtype=int)
        np.add.at(matrix, (true, predicted), 1)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", fontsize="small")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel(f"predicted {truth}")
        ax.set_ylabel(f"true {truth}")
        text = f"accuracy {scores['accuracy']:.2f}\nbalanced {scores['balanced_accuracy']:.2f}\nAUROC {scores['auroc']:.2f}"
    ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize="small")
    ax.set_title(f"{pred} (n = {int(scores['n'])})")
    return ax


def training_history(history: Any, *, keys: list[str] | None = None, ax: Axes | None = None) -> Axes:
    """Loss curves of a training run, one line per logged quantity, against the epoch.

    Parameters
    ----------
    history
        A DataFrame or mapping of equal-length lists with an `epoch` column (as stored in
        ``uns[...]["history"]`` by the training tools), or an object with such a `history` attribute.
    keys
        Columns to draw; default every column except `epoch` and `step`.
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    history = getattr(history, "history", history)
    if not isinstance(history, pd.DataFrame | Mapping):
        msg = "`history` must be a DataFrame, a mapping of lists, or an object with a `history` attribute."
        raise TypeError(msg)
    frame = pd.DataFrame(history)
    if frame.empty or "epoch" not in frame:
        msg = "`history` has no `epoch` column (or no rows): nothing to plot."
        raise ValueError(msg)
    keys = keys or [c for c in frame.columns if c not in ("epoch", "step")]
    ax = axes_or_new(ax)
    for key in keys:
        points = frame[["epoch", key]].dropna()
        ax.plot(points["epoch"], points[key], marker="o", ms=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False, fontsize="small")
    return ax
