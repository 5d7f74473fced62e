"""Plot of the CpGs that receive the most MethylGPT attention, per group of samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_adata, doc_params
from epiformer.pl._utils import axes_or_new

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes


@doc_params(adata=doc_adata)
def attention(
    adata: AnnData,
    *,
    key: str = Key.uns.attention,
    groups: Sequence[str] | None = None,
    n_top: int = 10,
    ax: Axes | None = None,
) -> Axes:
    """Heat map of the attention received by the top CpGs of each group (from :func:`epiformer.tl.attention`).

    Rows are the union of each group's `n_top` CpGs (in group order), columns the groups; a star marks the
    CpGs whose one-vs-rest test is significant in that group (BH-adjusted p < 0.05). The title gives the number of
    rows and how they were chosen.

    Parameters
    ----------
    {adata}
    key
        `key_added` of :func:`epiformer.tl.attention`.
    groups
        Groups to show (all when `None`).
    n_top
        CpGs taken from each group's ranking.
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    if key not in adata.uns or key not in adata.varm:
        msg = f"No attention under {key!r}: run `ef.tl.attention(adata, model, key_added={key!r})` first."
        raise KeyError(msg)
    means = adata.varm[key]
    top = adata.uns[key]["top"]
    groups = list(means.columns) if groups is None else list(groups)
    unknown = [g for g in groups if g not in means.columns]
    if unknown:
        msg = f"Unknown groups {unknown}; {key!r} has {list(means.columns)}."
        raise ValueError(msg)
    chosen = top[top["group"].isin(groups) & (top["rank"] <= n_top)]
    cpgs = list(dict.fromkeys(chosen["cpg"]))
    values = means.loc[cpgs, groups].to_numpy(float)
    ax = axes_or_new(ax)
    image = ax.imshow(values, aspect="auto", cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label="attention received")
    significant = chosen[chosen["pval_adj"] < 0.05]
    for cpg, group in zip(significant["cpg"], significant["group"], strict=True):
        ax.text(groups.index(group), cpgs.index(cpg), "*", ha="center", va="center", color="white")
    ax.set_xticks(np.arange(len(groups)), groups, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(cpgs)), cpgs, fontsize=7)
    plural = "s" if len(groups) != 1 else ""
    ax.set_title(f"attention received: top {n_top} CpGs per group\n{len(cpgs)} CpGs, {len(groups)} group{plural}")
    return ax
