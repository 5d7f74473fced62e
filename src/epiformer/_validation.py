"""Input checks that raise clear errors before anything is modified."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._logging import warn


def first_items(items: Sequence, n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def check_choice(value, choices: Sequence, *, name: str) -> None:
    """Raise a :class:`ValueError` naming the option `name` and its `choices` unless `value` is one of them."""
    try:
        chosen = value in choices
    except (TypeError, ValueError):  # an array or pd.NA compares ambiguously: not a choice
        chosen = False
    if not chosen:
        options = [repr(c) for c in choices]
        listed = options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"
        msg = f"`{name}` must be {listed}, got {value!r}."
        raise ValueError(msg)


def refuse_sparse_betas(X, *, what: str = "the data") -> None:
    """Raise a :class:`TypeError` if `X` is sparse: its implicit zeros would read as values of 0, not as missing."""
    if sparse.issparse(X):
        msg = (
            f"{what} is a sparse matrix: its {X.shape[0] * X.shape[1] - X.nnz} implicit zeros would read as 0 "
            "(beta 0, or M-value 0 = beta 0.5), not as missing. Store beta or M-values as a dense matrix with NaN "
            "where a value is missing, or keep sequencing counts as `mc` / `cov` layers (`ef.io.read_bedmethyl`)."
        )
        raise TypeError(msg)


def check_betas(X, *, what: str = "the data") -> None:
    """Raise a :class:`ValueError` unless every non-missing value of `X` is a beta value in [0, 1].

    Values outside [0, 1] are usually M-values (log2 ratios); the message says how to convert them. A sparse
    matrix is refused with a :class:`TypeError` (see :func:`refuse_sparse_betas`).
    """
    refuse_sparse_betas(X, what=what)
    values = np.asarray(X)
    if values.size == 0:
        return
    if np.isinf(values).any():
        msg = f"{what} contains infinite values; beta values must be finite numbers in [0, 1] (NaN = missing)."
        raise ValueError(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN input
        lo, hi = np.nanmin(values), np.nanmax(values)
    if np.isnan(lo):
        return
    if lo < 0 or hi > 1:
        msg = (
            f"{what} holds values in [{lo:.3g}, {hi:.3g}], outside [0, 1]: these look like M-values, not beta values. "
            "Convert them explicitly with `ef.pp.to_beta` (or read them with `values='mvalue'`)."
        )
        raise ValueError(msg)


def count_nonfinite(values) -> int:
    """The number of NaN or infinite entries of a numeric array, sparse matrix or DataFrame (0 if not numeric)."""
    if sparse.issparse(values):
        values = values.data
    array = values.to_numpy() if isinstance(values, pd.DataFrame | pd.Series) else np.asarray(values)
    if not np.issubdtype(array.dtype, np.number):
        return 0
    return int(array.size - np.isfinite(array).sum())


def refuse_all_missing(X: np.ndarray, *, what: str = "the data") -> None:
    """Raise a :class:`ValueError` when `X` holds values to compute on but every one is missing (NaN)."""
    if X.size and np.isnan(X).all():
        msg = (
            f"Every value of {what} is missing (NaN), so there is nothing to compute on. Check the layer "
            "(`layer=`) and that the CpGs are the ones the model or data set uses."
        )
        raise ValueError(msg)


def check_unique(names: Sequence[str] | pd.Index, *, what: str) -> None:
    """Raise a :class:`ValueError` listing the duplicated entries of `names`."""
    index = pd.Index(names)
    if index.has_duplicates:
        dups = index[index.duplicated()].unique()
        msg = f"Duplicated {what}: {first_items(list(dups))}. Every {what.rstrip('s')} must be unique."
        raise ValueError(msg)


def check_nonnegative(X, *, what: str = "counts") -> None:
    """Raise a :class:`ValueError` if `X` holds negative (or non-finite) values."""
    values = X.data if sparse.issparse(X) else np.asarray(X)
    if values.size and not np.isfinite(values).all():
        msg = f"{what} contains NaN or infinite values; counts must be finite and non-negative."
        raise ValueError(msg)
    if values.size and values.min() < 0:
        msg = f"{what} contains negative values (minimum {values.min():.3g}); counts must be non-negative."
        raise ValueError(msg)


#: Largest value of a matrix with fractional values that is read as log-transformed rather than as estimated counts.
LOG_SCALE_MAX = 30.0


def check_raw_counts(X, *, what: str = "counts") -> None:
    """Raise a :class:`ValueError` unless `X` holds raw counts: finite, non-negative and not log-transformed.

    Fractional values are accepted as estimated counts (salmon, RSEM) unless nearly all (90 %) non-zero values are
    fractional and none exceeds :data:`LOG_SCALE_MAX`, the range of ``log1p`` of any count matrix; negative
    values (scaled data) are refused by :func:`check_nonnegative`.
    """
    check_nonnegative(X, what=what)
    values = X.data if sparse.issparse(X) else np.asarray(X).ravel()
    values = values[values != 0]
    if values.size and values.max() <= LOG_SCALE_MAX and (values != np.round(values)).mean() > 0.9:
        msg = (
            f"{what} holds fractional values no larger than {values.max():.3g}: they look log-transformed or "
            "normalised (`sc.pp.log1p`, `sc.pp.normalize_total`), but raw counts are required. Pass the layer that "
            "holds the raw counts (`layer='counts'`), or keep a copy of them before normalising."
        )
        raise ValueError(msg)


def warn_all_missing_rows(X: np.ndarray, names: Sequence[str], *, what: str = "samples") -> list[str]:
    """Warn about rows of `X` with no observed value and return their names (they are kept, not dropped)."""
    empty = np.isnan(X).all(axis=1) if X.shape[1] else np.ones(X.shape[0], dtype=bool)
    bad = [str(n) for n, e in zip(names, empty, strict=True) if e]
    if bad:
        warn(
            f"{len(bad)} {what} have no observed value (all NaN): {first_items(bad)}. They are kept; "
            "remove them with `adata = adata[~adata.obs_names.isin([...])]` if they should not be analysed.",
            UserWarning,
        )
    return bad


def check_cpg_positions(adata: AnnData) -> None:
    """Raise a :class:`KeyError` unless `var` holds every CpG's `chrom` and 1-based `pos` (the C), none missing."""
    absent = [c for c in ("chrom", "pos") if c not in adata.var]
    if absent:
        msg = f"The CpG `var` lacks {absent}: CpG positions are read from `var['chrom']` and `var['pos']` (1-based C)."
        raise KeyError(msg)
    if adata.var["pos"].isna().any():
        msg = "`var['pos']` has missing positions; drop those CpGs first."
        raise ValueError(msg)
