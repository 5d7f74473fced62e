"""Expression dilution: thin every sample to a fixed number of molecules, as a single cell or a spot would see it."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import sparse

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_mod, doc_params, doc_random_state
from epiformer._logging import warn
from epiformer._utils import as_generator, get_matrix, record_params, select_modality
from epiformer._validation import check_choice, check_nonnegative, check_raw_counts

DiluteMethod = Literal["hypergeometric", "multinomial", "legacy"]
METHODS = ("hypergeometric", "multinomial", "legacy")

#: Floats held at once by the chunked legacy rule (2 MB per array: small chunks keep the search in cache).
_CHUNK_FLOATS = 1 << 18
#: Entries handled at once by the multinomial draws, so that their tables stay in cache.
_CACHE_ENTRIES = 1 << 16
#: Largest molecule table (per chunk of rows) built for integer counts; beyond, cumulative sums are searched.
_MAX_MOLECULES = 1 << 22
#: Molecules drawn at once (per chunk of rows) by the hypergeometric thinning.
_DRAW_BUDGET = 1 << 20


def _row_chunks(sizes: np.ndarray, budget: int):
    """Consecutive ``(lo, hi)`` row ranges whose `sizes` add up to about `budget` (at least one row each)."""
    bounds = np.searchsorted(np.cumsum(sizes), np.arange(budget, int(sizes.sum()) + budget, budget), side="right")
    lo = 0
    for hi in bounds:
        hi = min(max(int(hi), lo + 1), len(sizes))
        if hi > lo:
            yield lo, hi
            lo = hi
    if lo < len(sizes):
        yield lo, len(sizes)


def multinomial_rows(
    weights: np.ndarray, indptr: np.ndarray, n_draws: int, rng: np.random.Generator, *, out: np.ndarray | None = None
) -> np.ndarray:
    """One multinomial draw of `n_draws` per row of a CSR-like layout, over non-negative `weights`.

    Rows are the slices ``indptr[i]:indptr[i + 1]`` of `weights`; returns the count of each entry (in `out`
    when given, else int64), summing to `n_draws` in every row of positive total. Integer weights (counts)
    are expanded into their molecules and each draw picks a molecule uniformly (a table look-up); other
    weights are searched on their cumulative sums. Rows go a few at a time, so the tables stay in cache, with
    all their draws at once.
    """
    counts = np.zeros(len(weights), dtype=np.int64) if out is None else out
    for lo, hi in _row_chunks(np.diff(indptr), _CACHE_ENTRIES):
        start, stop = indptr[lo], indptr[hi]
        chunk = weights[start:stop]
        local = indptr[lo : hi + 1] - start
        running = np.concatenate([[0.0], np.cumsum(chunk, dtype=np.float64)])
        totals = running[local[1:]] - running[local[:-1]]
        rows = np.flatnonzero(totals > 0)
        if not rows.size:
            continue
        if totals.sum() <= _MAX_MOLECULES and np.all(chunk == np.floor(chunk)):
            owner = np.repeat(np.arange(len(chunk), dtype=np.int32), chunk.astype(np.int64))
            first = np.concatenate([[0], np.cumsum(totals.astype(np.int64))[:-1]]).astype(np.int32)
            position = rng.random((rows.size, n_draws))
            position *= totals[rows, None]  # a uniform molecule: floor(u * total), bias below 2**-30
            molecule = position.astype(np.int32)
            np.minimum(molecule, (totals[rows] - 1).astype(np.int32)[:, None], out=molecule)
            molecule += first[rows, None]
            entry = owner[molecule]
        else:
            position = running[local[:-1]][rows, None] + rng.random((rows.size, n_draws)) * totals[rows, None]
            entry = np.minimum(np.searchsorted(running[1:], position, side="right"), local[1:][rows, None] - 1)
        counts[start:stop] = np.bincount(entry.ravel(), minlength=len(chunk))
    return counts


def _kept_entries(csr: sparse.csr_matrix, data: np.ndarray, keep: np.ndarray) -> sparse.csr_matrix:
    """A CSR matrix with the entries of `csr` where `keep`, holding `data` there (the input is not touched)."""
    indptr = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])[csr.indptr].astype(csr.indptr.dtype)
    return sparse.csr_matrix((data[keep], csr.indices[keep], indptr), shape=csr.shape)


def _canonical(X) -> sparse.csr_matrix:
    csr = sparse.csr_matrix(X) if not sparse.issparse(X) else X.tocsr()
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    return csr


def _dilute_multinomial(X, retention: int, rng: np.random.Generator):
    csr = _canonical(X)
    counts = np.zeros(csr.nnz, dtype=np.uint16 if retention < 1 << 16 else np.int64)  # small: counts <= retention
    multinomial_rows(csr.data, csr.indptr, retention, rng, out=counts)  # non-negative: checked by `dilute`
    keep = counts > 0
    out = _kept_entries(csr, counts, keep)
    out.data = out.data.astype(X.dtype, copy=False)
    return out if sparse.issparse(X) else out.toarray()


def _sample_without_replacement(
    totals: np.ndarray, wanted: np.ndarray, starts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Sorted keys ``starts[r] + j`` for `wanted[r]` distinct ``j`` uniform in ``[0, totals[r])``, every row r.

    The key ranges ``starts[r] + [0, totals[r])`` must be disjoint and increasing. Draws with replacement, then
    redraws each row's shortfall (its duplicates), adding the new distinct values, until every row has its
    count: the distinct values of an i.i.d. uniform sequence, stopped once there are enough, are a uniform random
    subset (every subset of that size is equally likely, by symmetry), so the law is exactly that of drawing
    without replacement. Callers keep ``wanted <= totals / 2``, so each round leaves at most about half of its
    draws to redo; after the first, rounds only touch the few rows still short.
    """
    ends = starts + totals
    first = _distinct(_draw(totals, wanted, starts, rng))
    need = wanted - (np.searchsorted(first, ends) - np.searchsorted(first, starts))
    extra = np.empty(0, dtype=np.int64)
    while need.any():
        short = np.flatnonzero(need)
        fresh = _distinct(_draw(totals[short], need[short], starts[short], rng))
        new = fresh[~_isin_sorted(fresh, first)]
        new = new[~_isin_sorted(new, extra)]
        extra = np.sort(np.concatenate([extra, new]))
        need[short] -= np.searchsorted(new, ends[short]) - np.searchsorted(new, starts[short])
    if extra.size:
        first = np.concatenate([first, extra])
        first.sort(kind="stable")  # two sorted runs: a merge
    return first


def _draw(totals: np.ndarray, counts: np.ndarray, starts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`counts[r]` keys ``starts[r] + j``, ``j`` uniform in ``[0, totals[r])`` (with replacement), row after row."""
    owner = np.repeat(np.arange(len(totals)), counts)
    keys = rng.integers(0, totals[owner], dtype=np.int64)
    keys += starts[owner]
    return keys


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of `keys`, sorted (sorts `keys` in place)."""
    keys.sort()
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def _isin_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of `values` are in the sorted array `sorted_keys`."""
    if not sorted_keys.size:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[at] == values


def _dilute_hypergeometric(X, retention: int, rng: np.random.Generator, *, what: str):
    """Per sample of total T > `retention`: keep `retention` of its T molecules, uniformly without replacement.

    A multivariate hypergeometric draw per sample. Rows go a few at a time: each row's molecules are numbered
    along its cumulative counts, ``min(retention, T - retention)`` distinct molecule numbers are drawn (those
    kept, or those dropped when more than half are kept) and a search of the cumulative counts gives their genes.
    Samples with at most `retention` molecules are kept as they are. Returns the diluted matrix and the number
    of samples with some but fewer than `retention` molecules.
    """
    csr = _canonical(X)
    integer = np.issubdtype(csr.data.dtype, np.integer)
    small = np.uint16 if retention < 1 << 16 else np.int64  # every result is at most `retention`
    n_obs = csr.shape[0]
    n_short = 0
    # each kept entry holds a molecule: at most min(entries, retention) per row, filled chunk by chunk
    bound = int(np.minimum(np.diff(csr.indptr), retention).sum())
    data, indices, filled = np.empty(bound, dtype=X.dtype), np.empty(bound, dtype=csr.indices.dtype), 0
    kept_per_row = np.zeros(n_obs, dtype=np.int64)
    for lo, hi in _row_chunks(np.diff(csr.indptr) + retention // 2, _DRAW_BUDGET):
        start, stop = int(csr.indptr[lo]), int(csr.indptr[hi])
        chunk = csr.data[start:stop]
        if not integer and not np.array_equal(chunk, np.floor(chunk)):
            check_raw_counts(X, what=what)  # the clearer message when the values look log-transformed
            msg = (
                f"{what} holds non-integer values, but `method='hypergeometric'` thins whole molecules: pass a layer "
                "of integer counts (`layer='counts'`), or use `method='multinomial'` for estimated counts."
            )
            raise ValueError(msg)
        local = csr.indptr[lo : hi + 1] - start
        whole = chunk.astype(np.int64)
        running = np.concatenate([[0], np.cumsum(whole)])  # molecules before each entry
        bounds = running[local]
        row_totals = np.diff(bounds)
        n_short += int(((row_totals > 0) & (row_totals < retention)).sum())
        row_of = np.repeat(np.arange(hi - lo), np.diff(local))
        mode = np.zeros(hi - lo, dtype=np.int8)  # 0: kept as is, 1: the dropped molecules drawn, 2: the kept
        thin = np.flatnonzero(row_totals > retention)
        if thin.size:
            draw_dropped = row_totals[thin] - retention < retention
            wanted = np.where(draw_dropped, row_totals[thin] - retention, retention)
            mode[thin] = np.where(draw_dropped, 1, 2)
            keys = _sample_without_replacement(row_totals[thin], wanted, bounds[:-1][thin], rng)
            drawn = np.bincount(np.searchsorted(running[1:], keys, side="right"), minlength=len(chunk))
            # rows kept as they are have no draws: their counts minus nothing
            counts = np.where(mode[row_of] == 2, drawn, whole - drawn).astype(small)
        else:
            counts = chunk.astype(small)
        nonzero = counts > 0
        n_kept = int(np.count_nonzero(nonzero))
        data[filled : filled + n_kept] = counts[nonzero]
        indices[filled : filled + n_kept] = csr.indices[start:stop][nonzero]
        filled += n_kept
        kept_per_row[lo:hi] = np.bincount(row_of[nonzero], minlength=hi - lo)
    data.resize(filled, refcheck=False)  # shrinks in place: no second copy of the result
    indices.resize(filled, refcheck=False)
    indptr = np.concatenate([[0], np.cumsum(kept_per_row)]).astype(csr.indptr.dtype)
    out = sparse.csr_matrix((data, indices, indptr), shape=csr.shape)
    return (out if sparse.issparse(X) else out.toarray()), n_short


def _search_right(cdf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each draw ``u[r, k]``, the first entry of row r's non-decreasing `cdf` segment that exceeds it.

    The same answer as ``np.searchsorted(cdf_row, u[r], side="right")`` (as a flat index into `cdf`),
    vectorised over rows: a guide table (for each of ``2 * max(lengths)`` buckets of [0, 1), how many
    entries of the row lie in earlier buckets) gives a start at or before the answer (looked up one bucket
    early, so rounding cannot overshoot), then every draw steps forward while ``cdf <= u``.
    """
    n_rows, n_buckets = len(lengths), 2 * int(lengths.max())
    bucket = np.minimum((cdf * n_buckets).astype(np.int64), n_buckets - 1) + 1
    bucket += np.repeat(np.arange(n_rows) * (n_buckets + 1), lengths)
    guide = np.bincount(bucket, minlength=n_rows * (n_buckets + 1)).reshape(n_rows, n_buckets + 1)
    guide = np.cumsum(guide, axis=1, dtype=np.int64)  # guide[r, b]: entries of row r in buckets before b
    scaled = u * n_buckets
    scaled -= 1.0
    start = scaled.astype(np.int32)
    np.maximum(start, 0, out=start)
    index = np.take_along_axis(guide, start, axis=1)
    np.minimum(index, (lengths - 1)[:, None], out=index)
    index += offsets[:, None]
    index = index.ravel()
    flat_u = u.ravel()
    active = np.flatnonzero(cdf[index] <= flat_u)
    while active.size:
        index[active] += 1
        active = active[cdf[index[active]] <= flat_u[active]]
    return index


def _dilute_legacy(X, retention: int, rng: np.random.Generator):
    """Per sample: draw `retention` genes with probability value / row sum; keep drawn genes' values, zero others.

    Uses exactly the uniforms, probabilities, cumulative sums and comparisons of
    :meth:`numpy.random.Generator.choice` with `p` and ``replace=True`` on the dense float64 row, so it
    reproduces a per-sample ``rng.choice`` loop draw for draw. Only genes with a positive value can be drawn
    (a zero adds nothing to a cumulative sum), so everything after the row sum runs over those.
    """
    csr = _canonical(X)
    n_obs, n_vars = csr.shape
    keep = np.zeros(csr.nnz, dtype=bool)
    step = max(1, min(_CHUNK_FLOATS // max(n_vars, 1), _CHUNK_FLOATS // max(retention, 1)))
    for lo in range(0, n_obs, step):
        hi = min(lo + step, n_obs)
        totals = csr[lo:hi].toarray().astype(np.float64).sum(axis=1)  # the dense row sum of `row / row.sum()`
        uniform = rng.random((hi - lo, retention))
        start = csr.indptr[lo]
        values = csr.data[start : csr.indptr[hi]].astype(np.float64)
        row = np.repeat(np.arange(hi - lo), np.diff(csr.indptr[lo : hi + 1]))
        positive = np.flatnonzero(values > 0)
        if not positive.size:
            continue
        nz_row = row[positive]
        lengths = np.bincount(nz_row, minlength=hi - lo)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        rank = np.arange(len(positive)) - offsets[nz_row]
        padded = np.zeros((hi - lo, int(lengths.max())))
        padded[nz_row, rank] = values[positive] / totals[nz_row]
        cdf = np.cumsum(padded, axis=1)  # sequential sums: equal to the dense cumsum at these genes
        last = cdf[np.arange(hi - lo), np.maximum(lengths - 1, 0)]
        cdf /= np.where(lengths > 0, last, 1.0)[:, None]
        usable = np.flatnonzero(lengths)
        if usable.size < len(lengths):
            offsets, lengths, uniform = offsets[usable], lengths[usable], uniform[usable]
        entry = _search_right(cdf[nz_row, rank], offsets, lengths, uniform)
        keep[start + positive[entry]] = True
    out = _kept_entries(csr, csr.data, keep)
    return out if sparse.issparse(X) else out.toarray()


@doc_params(layer=doc_layer, mod=doc_mod, random_state=doc_random_state, copy=doc_copy)
def dilute(
    adata,
    retention: int,
    *,
    method: DiluteMethod = "hypergeometric",
    layer: str | None = Key.layers.counts,
    mod: str | None = None,
    random_state: int | np.random.Generator | None = 0,
    key_added: str = Key.layers.diluted,
    copy: bool = False,
):
    """Thin every sample's expression to `retention` molecules, to mimic single-cell or spatial sparsity.

    - ``method="hypergeometric"`` (the default): capture. Each sample with more than `retention` molecules
      keeps exactly `retention` of them, drawn uniformly without replacement (a multivariate hypergeometric
      draw: a gene with ``c`` of the sample's ``T`` molecules keeps on average ``retention * c / T``), so a
      diluted count never exceeds the original one. Samples with at most `retention` molecules are kept as
      they are (with a warning; counted in ``uns[key_added]['n_below_retention']``). The same law as
      ``scanpy.pp.downsample_counts(counts_per_cell=retention, replace=False)``; requires integer counts.
    - ``method="multinomial"``: draw `retention` molecules per sample, with replacement, each gene with
      probability proportional to its count; the diluted counts of a sample sum to `retention` (a gene can
      get more than it had, and a sample more molecules than it had). Accepts fractional (estimated) counts.
      Vectorised over samples (uniform positions on the cumulative counts, a few samples at a time).
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
        Molecules (``hypergeometric``, ``multinomial``) or gene draws (``legacy``) per sample.
    method
        ``"hypergeometric"``, ``"multinomial"`` or ``"legacy"``.
    {layer}
        Counts for ``hypergeometric`` and ``multinomial`` (``"counts"``); for ``legacy``, the values the study
        diluted (log expression, usually ``layer=None``).
    {mod}
        Default ``"rna"``.
    {random_state}
    key_added
        Layer written.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes `layers[key_added]` (same dtype as the input)
    and `uns[key_added]['params']` (with ``hypergeometric``, also `uns[key_added]['n_below_retention']`).
    """
    check_choice(method, METHODS, name="method")
    if int(retention) != retention or retention < 1:
        msg = f"`retention` must be a positive integer, got {retention!r}."
        raise ValueError(msg)
    retention = int(retention)
    target = select_modality(adata, mod, default=Key.mod.rna)
    X = get_matrix(target, layer)
    what = f"`layers[{layer!r}]`" if layer else "`.X`"
    if method == "multinomial":
        check_raw_counts(X, what=what)
        dtype = X.dtype
        if np.issubdtype(dtype, np.integer) and retention > np.iinfo(dtype).max:
            msg = (
                f"{what} is stored as {dtype}, which cannot hold the up to {retention} molecules a gene may draw "
                "with replacement; convert it first (`.astype(np.int32)`)."
            )
            raise ValueError(msg)
    else:  # hypergeometric: integer counts, checked a few rows at a time while thinning (never log-transformed)
        check_nonnegative(X, what=what)
    totals = np.asarray(X.sum(axis=1)).ravel()
    if (totals <= 0).any():
        warn(
            f"{int((totals <= 0).sum())} samples have no positive value and stay empty after dilution.",
            UserWarning,
        )
    rng = as_generator(random_state)
    extra = {}
    if method == "hypergeometric":
        diluted, n_short = _dilute_hypergeometric(X, retention, rng, what=what)
        extra["n_below_retention"] = n_short
        if n_short:
            warn(
                f"{n_short} samples have fewer than {retention} molecules and are kept as they are "
                f"(counted in uns[{key_added!r}]['n_below_retention']).",
                UserWarning,
            )
    elif method == "multinomial":
        diluted = _dilute_multinomial(X, retention, rng)
    else:
        diluted = _dilute_legacy(X, retention, rng)

    adata = adata.copy() if copy else adata
    target = select_modality(adata, mod, default=Key.mod.rna)
    target.layers[key_added] = diluted
    record_params(target, key_added, {"retention": retention, "method": method, "layer": layer}, **extra)
    return adata if copy else None
