"""Expression dilution: thin every sample to a fixed number of molecules, as a single cell or a spot would see it."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from scipy import sparse

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_mod, doc_params, doc_random_state
from epiformer._utils import as_generator, get_matrix, record_params, select_modality
from epiformer._validation import check_nonnegative

DiluteMethod = Literal["multinomial", "legacy"]

#: Floats held at once by the chunked legacy rule (32 MB).
_CHUNK_FLOATS = 1 << 22


def _distinct_positions(size: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each group ``i``, `k[i]` distinct integers drawn uniformly from ``[0, size[i])`` (a uniform k-subset).

    Returns ``(group, value)`` arrays. The first `k` distinct values of an i.i.d. uniform sequence form a
    uniformly random k-subset, so a few extra draws per group are taken and the first distinct ones kept;
    groups left short are drawn again.
    """
    groups, values = [], []
    todo = np.flatnonzero(k > 0)
    need = k.astype(np.int64).copy()
    while todo.size:
        n_draw = need[todo] + need[todo] // 8 + 8
        group = np.repeat(todo, n_draw)
        value = rng.integers(0, size[group])
        _, first = np.unique(group * (int(size.max()) + 1) + value, return_index=True)
        first.sort()
        group, value = group[first], value[first]
        start = np.searchsorted(group, todo)
        rank = np.arange(len(group)) - np.repeat(start, np.diff(np.append(start, len(group))))
        keep = rank < need[group]
        groups.append(group[keep])
        values.append(value[keep])
        got = np.bincount(group[keep], minlength=len(need))
        short = todo[got[todo] < need[todo]]
        need[todo] = 0
        need[short] = k[short]
        if short.size:  # start those groups afresh so their draws stay one uniform subset
            drop = np.isin(groups[-1], short)
            groups[-1], values[-1] = groups[-1][~drop], values[-1][~drop]
        todo = short
    return np.concatenate(groups), np.concatenate(values)


def _categorical(weights: np.ndarray, indptr: np.ndarray, total: np.ndarray, rows: np.ndarray, rng) -> np.ndarray:
    """One categorical draw (an entry index, probability proportional to `weights`) within each listed row."""
    cum = np.cumsum(weights)
    before = np.concatenate([[0.0], cum])[indptr[:-1]]
    entry = np.searchsorted(cum, before[rows] + rng.random(len(rows)) * total[rows], side="right")
    return np.clip(entry, indptr[rows], indptr[rows + 1] - 1)


def multinomial_rows(weights: np.ndarray, indptr: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """One multinomial draw of `n_draws` per row of a CSR-like layout, over positive `weights`.

    Rows are the slices ``indptr[i]:indptr[i + 1]`` of `weights` (all > 0); returns the count of each entry
    (int64), summing to `n_draws` in every row with entries. Exact and vectorised over all rows. With fewer
    draws than entries, the draws are made one by one (categorical). Otherwise each entry gets
    ``Poisson(n_draws * w / W)`` (a Poisson process conditioned on its total is multinomial), then rows that
    drew too many lose a uniformly random subset of their molecules and rows that drew too few get the
    missing molecules as extra categorical draws.
    """
    n_rows = len(indptr) - 1
    lengths = np.diff(indptr)
    active = np.flatnonzero(lengths > 0)
    row = np.repeat(np.arange(n_rows), lengths)
    total = np.bincount(row, weights=weights, minlength=n_rows)
    if n_draws * len(active) <= len(weights):
        draws = _categorical(weights, indptr, total, np.repeat(active, n_draws), rng)
        return np.bincount(draws, minlength=len(weights))
    counts = rng.poisson(n_draws * weights / total[row])
    drawn = np.zeros(n_rows, dtype=np.int64)
    drawn[active] = np.add.reduceat(counts, indptr[active])
    over = active[drawn[active] > n_draws]
    if over.size:
        cum = np.cumsum(counts)
        before = np.concatenate([[0], cum])[indptr[:-1]]
        group, value = _distinct_positions(drawn[over], drawn[over] - n_draws, rng)
        entry = np.searchsorted(cum, before[over][group] + value, side="right")
        counts -= np.bincount(entry, minlength=len(counts))
    under = active[drawn[active] < n_draws]
    if under.size:
        extra = _categorical(weights, indptr, total, np.repeat(under, n_draws - drawn[under]), rng)
        counts += np.bincount(extra, minlength=len(counts))
    return counts


def _dilute_multinomial(X, retention: int, rng: np.random.Generator):
    csr = sparse.csr_matrix(X) if not sparse.issparse(X) else X.tocsr()
    values = np.asarray(csr.data, dtype=np.float64)
    if values.size and values.min() > 0:
        counts = multinomial_rows(values, csr.indptr, retention, rng).astype(X.dtype)
    else:
        positive = np.flatnonzero(values > 0)
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))[positive]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=csr.shape[0]))])
        counts = np.zeros(len(values), dtype=X.dtype)
        counts[positive] = multinomial_rows(values[positive], indptr, retention, rng)
    out = sparse.csr_matrix((counts, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    out.eliminate_zeros()
    return out if sparse.issparse(X) else out.toarray()


def _dilute_legacy(X, retention: int, rng: np.random.Generator):
    """Per sample: draw `retention` genes with probability value / row sum; keep drawn genes' values, zero others.

    Uses exactly the uniforms, cumulative sums and search of :meth:`numpy.random.Generator.choice` with `p`
    and ``replace=True``, so it reproduces a per-sample ``rng.choice`` loop draw for draw.
    """
    n_obs, n_vars = X.shape
    step = max(1, min(_CHUNK_FLOATS // max(n_vars, 1), _CHUNK_FLOATS // max(retention, 1)))
    parts = []
    for start in range(0, n_obs, step):
        chunk = X[start : start + step]
        dense = np.asarray(chunk.toarray() if sparse.issparse(chunk) else chunk, dtype=np.float64)
        totals = dense.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cdf = np.cumsum(dense / totals[:, None], axis=1)
            cdf /= cdf[:, -1:]
        uniform = rng.random((len(dense), retention))
        mask = np.zeros(dense.shape, dtype=bool)
        for i in np.flatnonzero(totals > 0):
            mask[i, np.searchsorted(cdf[i], uniform[i], side="right")] = True
        kept = np.where(mask, chunk.toarray() if sparse.issparse(chunk) else chunk, 0).astype(X.dtype)
        parts.append(sparse.csr_matrix(kept) if sparse.issparse(X) else kept)
    return sparse.vstack(parts, format="csr") if sparse.issparse(X) else np.concatenate(parts)


@doc_params(layer=doc_layer, mod=doc_mod, random_state=doc_random_state, copy=doc_copy)
def dilute(
    adata,
    retention: int,
    *,
    method: DiluteMethod = "multinomial",
    layer: str | None = Key.layers.counts,
    mod: str | None = None,
    random_state: int | np.random.Generator | None = 0,
    key_added: str = Key.layers.diluted,
    copy: bool = False,
):
    """Thin every sample's expression to `retention` molecules, to mimic single-cell or spatial sparsity.

    - ``method="multinomial"``: draw `retention` molecules per sample, with replacement, each gene with
      probability proportional to its count; the diluted counts of a sample sum to `retention`. Exact and
      vectorised over samples (categorical draws, or Poisson draws corrected to their total).
    - ``method="legacy"``: the rule of the reproduction study (Gotliber & Keydar 2023): per sample, draw
      `retention` genes with replacement with probability proportional to their values (they used log
      expression), keep the drawn genes' original values and zero the rest. Same draws as a per-sample
      ``numpy.random.default_rng(random_state).choice(n_genes, retention, p=row / row.sum())`` loop.

    Dense input gives dense output and sparse input sparse (CSR) output; the input layer is never modified.
    Samples without any positive value stay empty (with a warning).

    Parameters
    ----------
    adata
        :class:`~anndata.AnnData` or :class:`~mudata.MuData` of samples x genes.
    retention
        Molecules (``multinomial``) or gene draws (``legacy``) per sample.
    method
        ``"multinomial"`` or ``"legacy"``.
    {layer}
        Counts for ``multinomial`` (``"counts"``); for ``legacy``, the values the study diluted (log
        expression, usually ``layer=None``).
    {mod}
        Default ``"rna"``.
    {random_state}
    key_added
        Layer written.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes `layers[key_added]` (same dtype as the input)
    and `uns[key_added]['params']`.
    """
    if method not in ("multinomial", "legacy"):
        msg = f"`method` must be 'multinomial' or 'legacy', got {method!r}."
        raise ValueError(msg)
    if int(retention) != retention or retention < 1:
        msg = f"`retention` must be a positive integer, got {retention!r}."
        raise ValueError(msg)
    retention = int(retention)
    target = select_modality(adata, mod, default=Key.mod.rna)
    X = get_matrix(target, layer)
    check_nonnegative(X, what=f"`layers[{layer!r}]`" if layer else "`.X`")
    totals = np.asarray(X.sum(axis=1)).ravel()
    if (totals <= 0).any():
        warnings.warn(
            f"{int((totals <= 0).sum())} samples have no positive value and stay empty after dilution.",
            UserWarning,
            stacklevel=2,
        )
    rng = as_generator(random_state)
    diluted = _dilute_multinomial(X, retention, rng) if method == "multinomial" else _dilute_legacy(X, retention, rng)

    adata = adata.copy() if copy else adata
    target = select_modality(adata, mod, default=Key.mod.rna)
    target.layers[key_added] = diluted
    record_params(target, key_added, {"retention": retention, "method": method, "layer": layer})
    return adata if copy else None
