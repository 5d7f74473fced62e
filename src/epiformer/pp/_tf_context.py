"""EpiGePT cell contexts: TF expression per context (pseudo-bulk), quantile-normalised, log1p, in model order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scipy.stats import rankdata

from epiformer._constants import Key
from epiformer._docs import doc_adata, doc_mod, doc_params
from epiformer._logging import warn
from epiformer._utils import get_matrix, record_params, select_modality
from epiformer._validation import check_choice, check_nonnegative, check_raw_counts, first_items
from epiformer.pp._motifs import tf_list

if TYPE_CHECKING:
    from mudata import MuData


def rank_mean(reference: np.ndarray) -> np.ndarray:
    """Quantile-normalisation target of a TFs x contexts table: the mean over contexts of each rank's value.

    The same as the authors' ``df.stack().groupby(df.rank(method='first').stack()).mean()``.
    """
    return np.sort(np.asarray(reference, dtype=np.float64), axis=0).mean(axis=1)


def quantile_normalize(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Map each row of `values` (contexts x TFs) onto `target` by within-row rank; ties take the lowest rank.

    ``rank(method='min')`` as in the authors' ``quantile_norm``: every unexpressed TF of a context gets the
    smallest reference value.
    """
    ranks = rankdata(values, method="min", axis=1).astype(np.int64)
    return np.asarray(target)[ranks - 1]


def _reference_target(reference: Any, tfs: list[str] | None) -> tuple[np.ndarray | None, list[str] | None]:
    """Rank-mean target and (when `tfs` is None) the TF order taken from a reference table."""
    if reference is None:
        return None, tfs
    if isinstance(reference, pd.DataFrame):
        table = reference
        upper_index = {str(i).upper() for i in table.index}
        upper_cols = {str(c).upper() for c in table.columns}
        wanted = {t.upper() for t in tfs} if tfs is not None else None
        if wanted is not None and len(wanted & upper_cols) > len(wanted & upper_index):
            table = table.T  # contexts in rows: use TFs x contexts
        if tfs is None:
            tfs = [str(i) for i in table.index]
        position = {str(i).upper(): k for k, i in enumerate(table.index)}
        absent = [t for t in tfs if t.upper() not in position]
        if absent:
            msg = f"{len(absent)} TFs are not in the reference table: {first_items(absent)}."
            raise ValueError(msg)
        values = table.to_numpy(dtype=np.float64)[[position[t.upper()] for t in tfs]]
        check_nonnegative(values, what="the reference expression")
        return rank_mean(values), tfs
    target = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    if tfs is not None and target.size != len(tfs):
        msg = f"`reference` holds {target.size} values (a rank-mean) but there are {len(tfs)} TFs."
        raise ValueError(msg)
    return target, tfs


@doc_params(adata=doc_adata, mod=doc_mod)
def tf_context(
    adata: AnnData | MuData,
    *,
    groupby: str | None = None,
    layer: str | None = "counts",
    reference: pd.DataFrame | np.ndarray | None = None,
    tfs: Sequence[str] | Any | None = None,
    unit: Literal["cpm", "tpm", "none"] = "cpm",
    length_key: str = "length",
    min_cells: int = 20,
    max_missing: float = 0.5,
    mod: str | None = None,
) -> AnnData:
    """EpiGePT cell contexts from expression: pseudo-bulk per group, CPM/TPM, quantile normalisation, log1p.

    A context is the vector ``log1p(QN(TPM))`` of the model's TFs (711 for the published checkpoints), in
    checkpoint order. Counts are summed per group (clusters, cell types, spots), scaled to counts per
    million of the whole transcriptome (a stand-in for TPM with UMI data, where reads are not
    length-biased) or to TPM with gene lengths, and each context's TFs are quantile-normalised onto a
    reference: the rank-mean of the authors' ``reference_TPM_tf_expr.csv`` (TPM of the 711 TFs in 105
    ENCODE contexts, TFs in rows) when given, otherwise of the contexts themselves. Ties take the lowest
    rank, as in the authors' code, so unexpressed TFs get the smallest reference value.

    TFs absent from the data count as unexpressed; they are reported and flagged in `var['in_data']`.
    Contexts where most TFs are missing (absent or zero) draw a warning with the number: the authors
    report that predictions degrade as TF values go missing.

    Parameters
    ----------
    {adata}
        Raw counts (or TPM with ``unit='none'``), gene symbols as `var_names`.
    groupby
        Categorical `obs` column defining the contexts; `None` makes every observation its own context.
    layer
        Layer with the counts; `None` uses `.X`.
    reference
        The authors' reference table (DataFrame, TFs x contexts, or contexts x TFs), a rank-mean vector of
        one value per TF, or `None` to normalise the contexts among themselves.
    tfs
        TF names in checkpoint order, or a model carrying them (``model.tf_names``); `None` takes the
        reference table's row order.
    unit
        ``"cpm"`` (sum of counts per group, per million), ``"tpm"`` (length-normalised with
        `var[length_key]` in bp) or ``"none"`` (values are already TPM; averaged per group).
    length_key
        `var` column of gene lengths for ``unit='tpm'``.
    min_cells
        Groups with fewer observations draw a warning (pseudo-bulk of few cells is noisy).
    max_missing
        Warn about contexts with more than this fraction of TFs missing.
    {mod}
        Default ``"rna"``.

    Returns
    -------
    A new AnnData of contexts x TFs (TFs in checkpoint order):

    `X`
        ``log1p`` of the quantile-normalised expression: the model's context input (float32).
    `layers['expression']`
        CPM / TPM of each TF before normalisation.
    `layers['observed']`
        1 where the TF is in the data and expressed in the context, else 0.
    `obs['n_cells']`, `obs['n_tfs_observed']`
        Observations pooled per context; TFs observed per context.
    `var['in_data']`
        Whether the TF is a gene of `adata`.
    `uns['epigept_context']`
        Settings, the reference rank-mean and the TFs absent from the data.
    """
    adata = select_modality(adata, mod, default=Key.mod.rna)
    names = None if tfs is None else tf_list(tfs)
    target, names = _reference_target(reference, names)
    if names is None:
        msg = "Pass `tfs=` (the TF names in checkpoint order, or the model) or a reference table with TF names."
        raise ValueError(msg)
    check_choice(unit, ("cpm", "tpm", "none"), name="unit")
    X = get_matrix(adata, layer)
    X = X.tocsr() if sparse.issparse(X) else np.asarray(X)
    if unit == "none":
        check_nonnegative(X, what=f"`{layer or 'X'}`")
    else:
        check_raw_counts(X, what=f"`{layer or 'X'}`")
    if groupby is None:
        labels = pd.Categorical(adata.obs_names.astype(str), categories=adata.obs_names.astype(str))
    else:
        if groupby not in adata.obs:
            msg = f"`groupby={groupby!r}` is not a column of `adata.obs` (columns: {list(adata.obs.columns)})."
            raise KeyError(msg)
        labels = pd.Categorical(adata.obs[groupby]).remove_unused_categories()
        if labels.isna().any():
            msg = f"`obs[{groupby!r}]` has missing labels; drop or label those observations first."
            raise ValueError(msg)
    lengths = None
    if unit == "tpm":
        if length_key not in adata.var:
            msg = f"`unit='tpm'` needs gene lengths in `adata.var[{length_key!r}]`; use `unit='cpm'` for UMI counts."
            raise KeyError(msg)
        lengths = adata.var[length_key].to_numpy(dtype=np.float64)
        if not (np.isfinite(lengths) & (lengths > 0)).all():
            msg = f"`adata.var[{length_key!r}]` must hold positive gene lengths."
            raise ValueError(msg)
    if target is None and len(labels.categories) < 2:
        msg = "Quantile normalisation among the contexts needs at least 2 of them; pass `reference=`."
        raise ValueError(msg)

    groups = sparse.csr_matrix(
        (np.ones(len(labels)), (labels.codes, np.arange(len(labels)))), shape=(len(labels.categories), len(labels))
    )
    n_cells = np.asarray(groups.sum(axis=1)).ravel()
    pooled = groups @ X
    pooled = pooled.toarray() if sparse.issparse(pooled) else np.asarray(pooled)
    pooled = pooled.astype(np.float64)
    if unit == "none":
        expression = pooled / n_cells[:, None]
    else:
        rate = pooled / (lengths[None, :] / 1e3) if lengths is not None else pooled
        totals = rate.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            expression = np.where(totals > 0, rate / totals * 1e6, 0.0)

    genes = {}
    for k, g in enumerate(adata.var_names.astype(str)):
        genes.setdefault(g.upper(), k)
    columns = np.array([genes.get(t.upper(), -1) for t in names])
    in_data = columns >= 0
    tf_expr = np.zeros((len(labels.categories), len(names)))
    tf_expr[:, in_data] = expression[:, columns[in_data]]
    observed = in_data[None, :] & (tf_expr > 0)

    if target is None:
        target = rank_mean(tf_expr.T)
    normalised = np.log1p(quantile_normalize(tf_expr, target))

    contexts = [str(c) for c in labels.categories]
    absent = [t for t, ok in zip(names, in_data, strict=True) if not ok]
    if absent:
        warn(
            f"{len(absent)} of {len(names)} TFs are absent from the data: {first_items(absent)}. They count as "
            "unexpressed (lowest reference value) and are flagged in `var['in_data']`.",
            UserWarning,
        )
    n_observed = observed.sum(axis=1)
    sparse_contexts = [
        (c, len(names) - n)
        for c, n in zip(contexts, n_observed, strict=True)
        if len(names) - n > max_missing * len(names)
    ]
    if sparse_contexts:
        listed = ", ".join(f"{c!r} ({m} of {len(names)} missing)" for c, m in sparse_contexts[:5])
        warn(
            f"{len(sparse_contexts)} contexts have most TFs missing (absent or zero): {listed}"
            f"{', ...' if len(sparse_contexts) > 5 else ''}. EpiGePT's predictions degrade as TF values go "
            "missing; pool more cells per context or measure more genes.",
            UserWarning,
        )
    small = [(c, int(n)) for c, n in zip(contexts, n_cells, strict=True) if n < min_cells]
    if groupby is not None and small:
        warn(
            f"{len(small)} contexts pool fewer than {min_cells} observations: "
            + ", ".join(f"{c!r} ({n})" for c, n in small[:5])
            + ". Their pseudo-bulk expression is noisy.",
            UserWarning,
        )

    out = AnnData(
        X=normalised.astype(np.float32),
        obs=pd.DataFrame(
            {Key.obs.n_cells: n_cells.astype(np.int64), Key.obs.n_tfs_observed: n_observed.astype(np.int64)},
            index=pd.Index(contexts),
        ),
        var=pd.DataFrame({Key.var.tf_in_data: in_data}, index=pd.Index(names)),
    )
    out.layers[Key.layers.tf_expression] = tf_expr.astype(np.float32)
    out.layers[Key.layers.observed] = observed.astype(np.uint8)
    record_params(
        out,
        Key.uns.tf_context,
        {
            "groupby": groupby,
            "layer": layer,
            "unit": unit,
            "reference": "none (contexts among themselves)" if reference is None else type(reference).__name__,
        },
        rank_mean=np.asarray(target, dtype=np.float64),
        tfs_absent=absent,
    )
    return out
