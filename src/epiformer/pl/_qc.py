"""Quality-control plots of methylation matrices."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_adata, doc_layer, doc_params
from epiformer._utils import get_matrix, to_dense_float
from epiformer.pl._utils import axes_or_new

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@doc_params(adata=doc_adata, layer=doc_layer)
def beta_distribution(
    adata: AnnData, *, layer: str | None = None, groupby: str | None = None, n_bins: int = 50, ax: Axes | None = None
) -> Axes:
    """Density of beta values, pooled or one curve per group of samples.

    Parameters
    ----------
    {adata}
    {layer}
    groupby
        Categorical `obs` column; one curve per category. `None` draws one curve per sample (up to 20) or
        a pooled curve for larger cohorts.
    n_bins
        Number of histogram bins on [0, 1].
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    X = to_dense_float(get_matrix(adata, layer))
    ax = axes_or_new(ax)
    edges = np.linspace(0, 1, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    if groupby is not None:
        if groupby not in adata.obs:
            msg = f"`groupby={groupby!r}` is not a column of `adata.obs`."
            raise KeyError(msg)
        labels = adata.obs[groupby].astype("category")
        groups = [(str(c), (labels == c).to_numpy()) for c in labels.cat.categories]
    elif adata.n_obs <= 20:
        groups = [(str(name), np.arange(adata.n_obs) == i) for i, name in enumerate(adata.obs_names)]
    else:
        groups = [("all samples", np.ones(adata.n_obs, dtype=bool))]
    for label, rows in groups:
        values = X[rows].ravel()
        density, _ = np.histogram(values[~np.isnan(values)], bins=edges, density=True)
        ax.plot(centres, density, label=label, lw=1.2)
    ax.set_xlabel("beta value")
    ax.set_ylabel("density")
    ax.set_xlim(0, 1)
    if len(groups) > 1:
        ax.legend(fontsize="x-small", frameon=False, ncol=2 if len(groups) > 8 else 1)
    return ax


@doc_params(adata=doc_adata)
def missingness(adata: AnnData, *, ax: Axes | None = None) -> Axes:
    """Fraction of missing CpGs per sample, as computed by :func:`epiformer.pp.qc_metrics`.

    Parameters
    ----------
    {adata}
    ax
        Axes to draw into; a new figure is made when `None`.

    Returns
    -------
    The Axes drawn into.
    """
    if Key.obs.missing_fraction not in adata.obs:
        msg = f"Did not find `adata.obs[{Key.obs.missing_fraction!r}]`. Run `ef.pp.qc_metrics(adata)` first."
        raise ValueError(msg)
    ax = axes_or_new(ax)
    values = adata.obs[Key.obs.missing_fraction].to_numpy()
    ax.bar(np.arange(adata.n_obs), values, color="0.4")
    ax.set_xticks(np.arange(adata.n_obs))
    ax.set_xticklabels(adata.obs_names, rotation=90, fontsize="x-small")
    ax.set_ylabel("missing fraction")
    ax.set_ylim(0, max(1e-3, float(np.nanmax(values)) * 1.1) if len(values) else 1)
    return ax
