"""Plot of the dilution simulation: predictor accuracy against expression retention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from epiformer._constants import Key
from epiformer._validation import check_choice
from epiformer.pl._utils import axes_or_new

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_LABELS = {
    "spearman": "pooled Spearman",
    "mae": "MAE",
    "per_cpg_spearman": "per-CpG Spearman (median)",
    "per_sample_spearman": "per-sample Spearman (median)",
    "n_genes_kept": "genes kept per sample",
}


def dilution_curve(
    mdata,
    *,
    key: str = Key.uns.dilution,
    metric: str = "spearman",
    kind: Literal["box", "line"] = "box",
    ax: Axes | None = None,
) -> Axes:
    """Accuracy of the predictor at each retention level, from :func:`epiformer.tl.dilution_curve`.

    Levels run from the most retained (left) to the sparsest (right), labelled with the mean number of
    genes kept; the dashed line is the undiluted score.

    Parameters
    ----------
    mdata
        Object whose `uns[key]` was written by :func:`epiformer.tl.dilution_curve`.
    key
        The `uns` key.
    metric
        Column to plot: ``"spearman"``, ``"mae"``, ``"per_cpg_spearman"``, ``"per_sample_spearman"`` or
        ``"n_genes_kept"``.
    kind
        ``"box"`` (the spread over iterations, as the study showed) or ``"line"`` (mean +- sd).
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    if key not in mdata.uns or "table" not in mdata.uns[key]:
        msg = f"`uns[{key!r}]` not found. Run `ef.tl.dilution_curve(mdata, model)` first."
        raise KeyError(msg)
    table = mdata.uns[key]["table"]
    if metric not in table.columns:
        msg = f"`metric` must be one of {list(_LABELS)}, got {metric!r}."
        raise ValueError(msg)
    check_choice(kind, ("box", "line"), name="kind")
    levels = sorted(table["retention"].unique(), reverse=True)
    groups = [table.loc[table["retention"] == r, metric].to_numpy(float) for r in levels]
    kept = [table.loc[table["retention"] == r, "n_genes_kept"].mean() for r in levels]
    x = np.arange(len(levels))
    ax = axes_or_new(ax)
    if kind == "box":
        ax.boxplot(groups, positions=x, widths=0.5)
    else:
        means, sds = np.array([g.mean() for g in groups]), np.array([g.std() for g in groups])
        ax.plot(x, means, marker="o", color="tab:blue")
        ax.fill_between(x, means - sds, means + sds, color="tab:blue", alpha=0.2)
    undiluted = mdata.uns[key].get("undiluted", {})
    if metric in undiluted:
        ax.axhline(float(undiluted[metric]), color="0.4", ls="--", lw=1, label="undiluted")
        ax.legend(frameon=False, fontsize="small")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{int(r):,}\n({k:,.0f} genes)" for r, k in zip(levels, kept, strict=True)], fontsize="small")
    ax.set_xlabel("retention (draws per sample)")
    ax.set_ylabel(_LABELS.get(metric, metric))
    return ax
