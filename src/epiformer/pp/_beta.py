"""Explicit conversion between beta values and M-values."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from mudata import MuData

from epiformer._beta import DEFAULT_OFFSET, beta_to_mvalue, mvalue_to_beta
from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_mod, doc_params
from epiformer._logging import warn
from epiformer._utils import get_matrix, output, select_modality
from epiformer._validation import check_betas, refuse_sparse_betas


def _check_offset(offset: float) -> None:
    if not offset >= 0:
        msg = f"`offset` must be a non-negative number, got {offset!r}."
        raise ValueError(msg)


def _input(data, *, mod: str | None, layer: str | None) -> np.ndarray:
    X = (
        get_matrix(select_modality(data, mod, default=Key.mod.methyl), layer)
        if isinstance(data, AnnData | MuData)
        else data
    )
    refuse_sparse_betas(X, what="The input")
    return np.asarray(X)


def _apply(data, func, *, mod, layer, copy, dtype):
    if not isinstance(data, AnnData | MuData):
        return func(np.asarray(data)).astype(dtype)
    data, adata = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
    result = func(np.asarray(get_matrix(adata, layer))).astype(np.float32)
    if layer is None:
        adata.X = result
    else:
        adata.layers[layer] = result
    return data if copy else None


@doc_params(mod=doc_mod, layer=doc_layer, copy=doc_copy)
def to_mvalue(
    data: AnnData | MuData | np.ndarray,
    *,
    mod: str | None = None,
    layer: str | None = None,
    offset: float = DEFAULT_OFFSET,
    copy: bool = False,
):
    """Convert beta values to M-values, ``M = log2((beta + offset) / (1 - beta + offset))``.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` or :class:`~mudata.MuData` holding beta values, or an array of them.
    {mod} Default ``"methyl"``.
    {layer}
    offset
        Added to numerator and denominator so that beta = 0 and beta = 1 map to finite M-values.
    {copy}

    Returns
    -------
    For an array, the M-values (same shape, float64 for float64 input, otherwise float32). For an AnnData
    or MuData, `None` (the matrix is replaced in place) or, with ``copy=True``, the converted copy.

    Raises
    ------
    ValueError
        If any value lies outside [0, 1] (the input is not beta values).
    """
    _check_offset(offset)
    X = _input(data, mod=mod, layer=layer)
    check_betas(X, what="The input of `to_mvalue`")
    dtype = np.float64 if X.dtype == np.float64 else np.float32
    return _apply(data, lambda x: beta_to_mvalue(x, offset), mod=mod, layer=layer, copy=copy, dtype=dtype)


@doc_params(mod=doc_mod, layer=doc_layer, copy=doc_copy)
def to_beta(
    data: AnnData | MuData | np.ndarray,
    *,
    mod: str | None = None,
    layer: str | None = None,
    offset: float = DEFAULT_OFFSET,
    copy: bool = False,
):
    """Convert M-values to beta values, the exact inverse of :func:`epiformer.pp.to_mvalue`.

    ``beta = (2^M (1 + offset) - offset) / (1 + 2^M)``, clipped to [0, 1]; NaN stays NaN.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` or :class:`~mudata.MuData` holding M-values, or an array of them.
    {mod} Default ``"methyl"``.
    {layer}
    offset
        The offset the M-values were computed with (0 for the plain ``log2(beta / (1 - beta))``).
    {copy}

    Returns
    -------
    For an array, the beta values; for an AnnData or MuData, `None` or, with ``copy=True``, the converted copy.
    """
    _check_offset(offset)
    X = _input(data, mod=mod, layer=layer)
    if X.size and np.isfinite(X).any():
        finite = X[np.isfinite(X)]
        if finite.min() >= 0 and finite.max() <= 1:
            warn(
                "Every value is already in [0, 1]; if these are beta values, `to_beta` should not be applied.",
                UserWarning,
            )
    dtype = np.float64 if X.dtype == np.float64 else np.float32
    return _apply(
        data, lambda x: np.clip(mvalue_to_beta(x, offset), 0.0, 1.0), mod=mod, layer=layer, copy=copy, dtype=dtype
    )
