"""Quality-control metrics for methylation matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_layer, doc_mod, doc_params
from epiformer._utils import get_matrix, record_params, select_modality, to_dense_float
from epiformer._validation import check_betas, warn_all_missing_rows


@doc_params(mod=doc_mod, layer=doc_layer)
def qc_metrics(
    data: AnnData | MuData,
    *,
    mod: str | None = None,
    layer: str | None = None,
    intermediate: tuple[float, float] = (0.2, 0.8),
    n_bins: int = 50,
    inplace: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Missingness and beta-distribution summaries per sample and per CpG.

    Parameters
    ----------
    data
        AnnData of beta values (samples x CpGs), or a MuData holding one.
    {mod} Default ``"methyl"``.
    {layer}
    intermediate
        Bounds of the "intermediate" beta range; its per-sample fraction flags failed or mixed arrays.
    n_bins
        Number of bins of the pooled beta histogram.
    inplace
        Write the metrics into `adata`; with `False`, return them instead.

    Returns
    -------
    With ``inplace=True``, `None`, and writes into the (methylation) AnnData

    `adata.obs`
        `missing_fraction`, `n_observed`, `mean_beta`, `median_beta`, `frac_intermediate`.
    `adata.var`
        `missing_fraction`, `mean_beta`, `sd_beta`.
    `adata.uns['methylation_qc']`
        `params`, `histogram` (`counts`, `edges`) and `all_missing_samples` (names of samples without any
        observed value; they are reported, not dropped).

    With ``inplace=False``, the two DataFrames ``(obs_metrics, var_metrics)``.
    """
    adata = select_modality(data, mod, default=Key.mod.methyl)
    X = to_dense_float(get_matrix(adata, layer))
    check_betas(X, what="The methylation matrix")
    all_missing = warn_all_missing_rows(X, adata.obs_names)
    observed = ~np.isnan(X)
    lo, hi = intermediate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # means of all-NaN rows / columns are NaN
        obs = pd.DataFrame(
            {
                Key.obs.missing_fraction: 1.0 - observed.mean(axis=1),
                Key.obs.n_observed: observed.sum(axis=1),
                Key.obs.mean_beta: np.nanmean(X, axis=1),
                Key.obs.median_beta: np.nanmedian(X, axis=1),
                Key.obs.frac_intermediate: np.where(
                    observed.any(axis=1),
                    ((X >= lo) & (X <= hi)).sum(axis=1) / np.maximum(observed.sum(axis=1), 1),
                    np.nan,
                ),
            },
            index=adata.obs_names,
        )
        var = pd.DataFrame(
            {
                Key.var.missing_fraction: 1.0 - observed.mean(axis=0),
                Key.var.mean_beta: np.nanmean(X, axis=0),
                Key.var.sd_beta: np.nanstd(X, axis=0),
            },
            index=adata.var_names,
        )
    if not inplace:
        return obs, var
    for col in obs:
        adata.obs[col] = obs[col]
    for col in var:
        adata.var[col] = var[col]
    counts, edges = np.histogram(X[observed], bins=n_bins, range=(0.0, 1.0))
    record_params(
        adata,
        Key.uns.qc,
        {"layer": layer, "intermediate": list(intermediate), "n_bins": n_bins},
        histogram={"counts": counts, "edges": edges},
        all_missing_samples=np.asarray(all_missing, dtype=str),
    )
    return None
