"""Single-cell bisulfite data simulated from real bulk WGBS levels, with planted cell types."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._constants import Key
from epiformer._sites import count_layers, counts_anndata
from epiformer._utils import as_generator

from ._real import imr90_wgbs_chr22

#: Fewest sites a block must hold to be planted.
_MIN_BLOCK_SITES = 20
#: Spread (coefficient of variation) of the per-cell coverage around `coverage`.
_COVERAGE_CV = 0.3
#: Uniform draws made at once when choosing the covered sites (cells go in chunks of this many draws).
_CHUNK_DRAWS = 1 << 21


def synthetic_single_cell_methylation(
    n_cells: int = 500,
    *,
    n_types: int = 3,
    coverage: float = 0.05,
    reads: float = 1.0,
    block_size: int = 10_000,
    blocks_per_type: int = 8,
    effect: float = 0.8,
    prior: tuple[float, float] = (0.5, 1.0),
    random_state: int | np.random.Generator | None = 0,
) -> AnnData:
    """Single cells simulated from the real per-site levels of IMR90 bulk WGBS, with planted cell types.

    This is simulated data, not real single-cell data: each site's level comes from the two IMR90 replicates of
    :func:`imr90_wgbs_chr22` (12,914 CpGs of hg19 chr22:20-21 Mb) pooled with a small prior,
    ``level = (mc_1 + mc_2 + a) / (cov_1 + cov_2 + b)`` with ``(a, b) = prior``. Every cell type then changes the
    levels of its own blocks: the chromosome is cut into blocks of `block_size` bp (block ``k`` holds positions
    ``k * block_size + 1`` to ``(k + 1) * block_size``, the bins of :func:`epiformer.pp.aggregate_regions`); among the blocks holding at least 20 sites, each type draws
    `blocks_per_type` of its own (no block belongs to two types). In a block whose mean level is above 0.5 the
    type is hypomethylated, ``level * (1 - effect)``; in the others hypermethylated,
    ``level + (1 - level) * effect``. Outside its blocks a type keeps the bulk levels.

    Cells are spread evenly over the types (in random order). Cell ``i`` covers each site independently with
    probability ``coverage * g_i``, where ``g_i`` is drawn from a gamma distribution of mean 1 and coefficient of
    variation 0.3 (cells differ in coverage, as they do in real libraries); a covered site has
    ``1 + Poisson(reads - 1)`` reads, of which ``Binomial(reads, level)`` are methylated at the cell type's level.

    Parameters
    ----------
    n_cells
        Number of cells.
    n_types
        Number of cell types, named ``type_0``, ``type_1``, ...
    coverage
        Mean fraction of the sites a cell covers (a few percent in single-cell bisulfite sequencing).
    reads
        Mean reads per covered site, at least 1 (1 gives exactly one read).
    block_size
        Size of the blocks, in bp.
    blocks_per_type
        Blocks planted per cell type.
    effect
        How far a planted block moves from the bulk level towards 0 (hypo) or 1 (hyper), between 0 and 1.
    prior
        Pseudo-counts ``(a, b)`` added to the pooled methylated and total reads of each site.
    random_state
        Seed or generator; the same seed gives the same cells.

    Returns
    -------
    AnnData of cells x the 12,914 sites, laid out as :func:`epiformer.io.read_bedmethyl` writes sequencing data:

    `var`
        As :func:`imr90_wgbs_chr22`: `chrom`, `pos` (1-based), `strand` (``"."``), `context21`.
    `layers['mc']`, `layers['cov']`
        CSR int32 methylated and total reads; ``.X`` is empty.
    `obs`
        `cell_type` (categorical), `n_observed` (sites with a read, as `ef.io.read_bedmethyl` counts them).
    `uns['synthetic']`
        The planted truth: `description`, `blocks` (a DataFrame of `cell_type`, `block`, `chrom`, `start`, `end`
        (1-based, inclusive), `direction` (``"hypo"`` / ``"hyper"``), `n_sites`, `bulk_level` and `type_level`,
        the block means), `bulk_level` (per site), `type_levels` (cell types x sites), `cell_types`, and every
        parameter including `random_state` (the seed, or `None` when a generator was passed).
    """
    _check_options(n_cells, n_types, coverage, reads, block_size, blocks_per_type, effect, prior)
    rng = as_generator(random_state)
    bulk = imr90_wgbs_chr22()
    level = _bulk_level(bulk, prior)
    pos = bulk.var[Key.var.pos].to_numpy(np.int64)
    block = (pos - 1) // block_size
    blocks = _plant_blocks(block, level, n_types, blocks_per_type, rng)
    type_levels = _type_levels(level, block, blocks, n_types, effect)
    types = rng.permutation(np.arange(n_cells) % n_types)
    mc, cov = _draw_cells(type_levels[types], coverage, reads, rng)
    names = [f"type_{k}" for k in range(n_types)]
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(types, categories=names),
            Key.obs.n_observed: np.diff(cov.indptr).astype(np.int64),
        },
        index=pd.Index([f"cell_{i:05d}" for i in range(n_cells)]),
    )
    adata = counts_anndata(mc, cov, obs=obs, var=bulk.var.copy(), beta=False)
    table = _blocks_table(blocks, block, level, type_levels, names, block_size, bulk.var)
    adata.uns["synthetic"] = {
        "description": (
            "Simulated single-cell bisulfite data: per-site levels of real IMR90 bulk WGBS (Lister et al. 2009, "
            "hg19 chr22:20-21 Mb, two replicates pooled) with planted cell-type blocks; reads are drawn, not measured."
        ),
        "blocks": table,
        "bulk_level": level.astype(np.float32),
        "type_levels": type_levels.astype(np.float32),
        "cell_types": np.asarray(names, dtype=str),
        "n_cells": int(n_cells),
        "coverage": float(coverage),
        "coverage_cv": _COVERAGE_CV,
        "reads": float(reads),
        "block_size": int(block_size),
        "blocks_per_type": int(blocks_per_type),
        "effect": float(effect),
        "prior": [float(prior[0]), float(prior[1])],
        "random_state": int(random_state) if isinstance(random_state, int | np.integer) else None,
    }
    return adata


def _check_options(
    n_cells: int,
    n_types: int,
    coverage: float,
    reads: float,
    block_size: int,
    blocks_per_type: int,
    effect: float,
    prior: tuple[float, float],
) -> None:
    checks = [
        (n_cells >= 1, f"`n_cells` must be at least 1, got {n_cells}."),
        (n_types >= 1, f"`n_types` must be at least 1, got {n_types}."),
        (0 < coverage <= 1, f"`coverage` must be a fraction in (0, 1], got {coverage}."),
        (reads >= 1, f"`reads` (mean reads per covered site) must be at least 1, got {reads}."),
        (block_size >= 1, f"`block_size` must be at least 1 bp, got {block_size}."),
        (blocks_per_type >= 1, f"`blocks_per_type` must be at least 1, got {blocks_per_type}."),
        (0 <= effect <= 1, f"`effect` must be between 0 and 1, got {effect}."),
        (prior[0] >= 0 and prior[1] > prior[0], f"`prior` must be (a, b) with 0 <= a < b, got {prior}."),
    ]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


def _bulk_level(bulk: AnnData, prior: tuple[float, float]) -> np.ndarray:
    """Per-site level of the pooled replicates, ``(sum mc + a) / (sum cov + b)``."""
    mc, cov = count_layers(bulk, what="The IMR90 data")
    a, b = prior
    return (np.asarray(mc.sum(axis=0)).ravel() + a) / (np.asarray(cov.sum(axis=0)).ravel() + b)


def _plant_blocks(
    block: np.ndarray, level: np.ndarray, n_types: int, blocks_per_type: int, rng: np.random.Generator
) -> dict[int, list[tuple[int, str]]]:
    """Each type's own blocks (block index, ``"hypo"`` or ``"hyper"``), drawn among blocks with enough sites."""
    ids, counts = np.unique(block, return_counts=True)
    usable = ids[counts >= _MIN_BLOCK_SITES]
    needed = n_types * blocks_per_type
    if needed > len(usable):
        msg = (
            f"{n_types} types x {blocks_per_type} blocks need {needed} blocks, but only {len(usable)} blocks of the "
            f"segment hold {_MIN_BLOCK_SITES} or more sites; lower `n_types`, `blocks_per_type` or `block_size`."
        )
        raise ValueError(msg)
    chosen = rng.choice(usable, size=needed, replace=False).reshape(n_types, blocks_per_type)
    out = {}
    for k in range(n_types):
        picks = sorted(int(b) for b in chosen[k])
        out[k] = [(b, "hypo" if level[block == b].mean() > 0.5 else "hyper") for b in picks]
    return out


def _type_levels(
    level: np.ndarray, block: np.ndarray, blocks: dict[int, list[tuple[int, str]]], n_types: int, effect: float
) -> np.ndarray:
    """Cell types x sites levels: the bulk level, moved in each type's own blocks."""
    out = np.tile(level, (n_types, 1))
    for k, planted in blocks.items():
        for b, direction in planted:
            sites = block == b
            moved = level[sites] * (1 - effect) if direction == "hypo" else level[sites] + (1 - level[sites]) * effect
            out[k, sites] = moved
    return out


def _draw_cells(
    levels: np.ndarray, coverage: float, reads: float, rng: np.random.Generator
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Sparse methylated and total reads of cells whose site levels are the rows of `levels`."""
    n_cells, n_sites = levels.shape
    shape = 1 / _COVERAGE_CV**2
    depth = np.minimum(coverage * rng.gamma(shape, 1 / shape, size=n_cells), 1.0)
    step = max(1, _CHUNK_DRAWS // max(n_sites, 1))
    hits = [np.nonzero(rng.random((len(d), n_sites)) < d[:, None]) for d in np.split(depth, range(step, n_cells, step))]
    rows = np.concatenate([r + i * step for i, (r, _) in enumerate(hits)])
    cols = np.concatenate([c for _, c in hits])
    n_reads = 1 + rng.poisson(reads - 1, size=len(rows)) if reads > 1 else np.ones(len(rows), dtype=np.int64)
    methylated = rng.binomial(n_reads, levels[rows, cols])
    cov = sparse.csr_matrix((n_reads.astype(np.int32), (rows, cols)), shape=(n_cells, n_sites))
    mc = sparse.csr_matrix((methylated.astype(np.int32), (rows, cols)), shape=(n_cells, n_sites))
    mc.eliminate_zeros()
    return mc, cov


def _blocks_table(
    blocks: dict[int, list[tuple[int, str]]],
    block: np.ndarray,
    level: np.ndarray,
    type_levels: np.ndarray,
    names: list[str],
    block_size: int,
    var: pd.DataFrame,
) -> pd.DataFrame:
    """One row per planted block: its type, position, direction, size and mean levels."""
    chrom = str(var[Key.var.chrom].iloc[0])
    rows = []
    for k, planted in blocks.items():
        for b, direction in planted:
            sites = block == b
            rows.append(
                {
                    "cell_type": names[k],
                    "block": b,
                    Key.var.chrom: chrom,
                    Key.var.start: b * block_size + 1,
                    Key.var.end: (b + 1) * block_size,
                    "direction": direction,
                    "n_sites": int(sites.sum()),
                    "bulk_level": float(level[sites].mean()),
                    "type_level": float(type_levels[k, sites].mean()),
                }
            )
    return pd.DataFrame(rows)
