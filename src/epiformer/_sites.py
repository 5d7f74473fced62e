"""Sequencing sites: methylated (`mc`) and total (`cov`) read counts as sparse layers, and their beta fraction.

Every reader, dataset and step that handles per-site or per-region counts builds and reads them here, so the
layout (CSR int32 layers `mc` and `cov`, ``.X`` only when asked) is written once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._constants import Key
from epiformer._utils import layer_names
from epiformer._validation import first_items

#: Positions are below this bound (the longest chromosomes known are far shorter), so a locus packs in an int64.
POS_LIMIT = 1 << 32
_SITE_STRANDS = (".", "+", "-")

#: Dense cells held at once while turning counts into fractions or checking them (float64: 128 MB).
_BLOCK_CELLS = 1 << 24


def _row_blocks(shape: tuple[int, int]) -> tuple[range, int]:
    step = max(1, _BLOCK_CELLS // max(shape[1], 1))
    return range(0, shape[0], step), step


def beta_fraction(mc: sparse.spmatrix, cov: sparse.spmatrix) -> np.ndarray:
    """``mc / cov`` as a dense float32 matrix, NaN where `cov` is 0 (uncovered, not unmethylated)."""
    mc, cov = sparse.csr_matrix(mc), sparse.csr_matrix(cov)
    out = np.empty(cov.shape, dtype=np.float32)
    starts, step = _row_blocks(cov.shape)
    for start in starts:
        m, c = mc[start : start + step].toarray(), cov[start : start + step].toarray()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + step] = np.where(c > 0, m / c, np.nan)
    return out


def counts_anndata(
    mc: sparse.spmatrix, cov: sparse.spmatrix, *, obs: pd.DataFrame, var: pd.DataFrame, beta: bool
) -> AnnData:
    """AnnData with CSR int32 layers `mc` and `cov`; ``.X`` is the beta fraction when `beta`, else empty."""
    mc, cov = sparse.csr_matrix(mc), sparse.csr_matrix(cov)
    if cov.nnz and cov.data.max() >= np.iinfo(np.int32).max:
        msg = f"Read counts reach {int(cov.data.max())}, more than int32 layers hold; use smaller regions."
        raise ValueError(msg)
    mc, cov = mc.astype(np.int32), cov.astype(np.int32)
    X = beta_fraction(mc, cov) if beta else None
    adata = AnnData(X=X, obs=obs, var=var)
    adata.layers[Key.layers.mc] = mc
    adata.layers[Key.layers.cov] = cov
    return adata


def count_layers(adata: AnnData, *, what: str = "the data") -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """The `mc` and `cov` layers of `adata` as CSR matrices, checked: non-negative integers with mc <= cov."""
    missing = [k for k in (Key.layers.mc, Key.layers.cov) if k not in layer_names(adata)]
    if missing:
        msg = (
            f"{what} has no layer {missing[0]!r}: it needs methylated and total read counts per site in "
            f"layers {Key.layers.mc!r} and {Key.layers.cov!r}, as `ef.io.read_bedmethyl` writes them."
        )
        raise KeyError(msg)
    mc, cov = (sparse.csr_matrix(adata.layers[k]) for k in (Key.layers.mc, Key.layers.cov))
    for name, m in ((Key.layers.mc, mc), (Key.layers.cov, cov)):
        if m.nnz and (not np.isfinite(m.data).all() or (m.data < 0).any() or (m.data != np.round(m.data)).any()):
            msg = f"{what}: layer {name!r} must hold non-negative integer read counts."
            raise ValueError(msg)
    starts, step = _row_blocks(cov.shape)
    if mc.nnz and any((mc[i : i + step] - cov[i : i + step]).max() > 0 for i in starts):
        msg = f"{what}: some entries of layer {Key.layers.mc!r} exceed the total reads in {Key.layers.cov!r}."
        raise ValueError(msg)
    return mc, cov


def locus_keys(codes: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """One int64 per locus, ordered by chromosome code then position: ``code << 32 | pos``."""
    pos = np.asarray(pos, dtype=np.int64)
    if pos.size and (pos.min() < 0 or pos.max() >= POS_LIMIT):
        msg = f"Positions must lie in 1..{POS_LIMIT - 1}; found {int(pos.min())}..{int(pos.max())}."
        raise ValueError(msg)
    return (np.asarray(codes, dtype=np.int64) << 32) | pos


def cpg_positions(var: pd.DataFrame, *, what: str = "the data") -> np.ndarray:
    """The + strand C of every site's CpG: `pos`, or ``pos - 1`` for a ``-`` site (the C opposite the G)."""
    pos = pd.to_numeric(var[Key.var.pos], errors="coerce")
    if pos.isna().any() or (pos % 1 != 0).any() or (pos < 1).any():
        msg = f"`var['pos']` of {what} must hold whole 1-based positions (the C of each site)."
        raise ValueError(msg)
    if Key.var.strand not in var:
        return pos.to_numpy(np.int64)
    strand = var[Key.var.strand].astype(str)
    bad = sorted(set(strand.unique()) - set(_SITE_STRANDS))
    if bad:
        msg = (
            f"`var['strand']` of {what} holds {first_items(bad)}; sites need '+', '-' or '.' (strands combined, "
            "`pos` the + strand C). For files without a strand column ('*'), read them with "
            "`ef.io.read_bedmethyl(..., fasta=)`."
        )
        raise ValueError(msg)
    return pos.to_numpy(np.int64) - (strand == "-").to_numpy()


def check_min_coverage(min_coverage: object) -> None:
    """Raise unless `min_coverage` is a whole number of reads of at least 1."""
    if isinstance(min_coverage, bool) or not isinstance(min_coverage, int | np.integer):
        msg = f"`min_coverage` must be a whole number of reads, got {type(min_coverage).__name__} {min_coverage!r}."
        raise TypeError(msg)
    if min_coverage < 1:
        msg = f"`min_coverage` must be at least 1 read, got {min_coverage}."
        raise ValueError(msg)
