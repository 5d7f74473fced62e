"""Train / validation / test splits disjoint on samples AND on CpGs, for models of (CpG, sample) pairs."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_mod, doc_params, doc_random_state
from epiformer._sequence import normalize_chrom
from epiformer._utils import as_generator, record_params, select_modality
from epiformer._validation import check_choice
from epiformer.pp._split_samples import SPLITS

SplitBy = Literal["random", "chromosome", "block"]


def _assign_groups(sizes: np.ndarray, test_size: float, val_size: float, rng: np.random.Generator) -> np.ndarray:
    """Split labels for groups of the given sizes (shuffled, filled test first, then validation)."""
    order = rng.permutation(len(sizes))
    total = sizes.sum()
    label = np.empty(len(sizes), dtype=object)
    filled = 0
    for g in order:
        if filled < test_size * total:
            label[g] = "test"
        elif filled < (test_size + val_size) * total:
            label[g] = "val"
        else:
            label[g] = "train"
        filled += sizes[g]
    return label


def _split_units(n: int, test_size: float, val_size: float, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(n)
    n_test, n_val = int(round(test_size * n)), int(round(val_size * n))
    split = np.empty(n, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    split[order[n_test + n_val :]] = "train"
    return split


@doc_params(mod=doc_mod, random_state=doc_random_state, copy=doc_copy)
def split_pairs(
    data,
    *,
    test_size: float = 0.3,
    val_size: float = 0.1,
    by: SplitBy = "random",
    block_size: int = 100_000,
    mod: str | None = None,
    random_state: int | np.random.Generator | None = 0,
    key_added: str = Key.obs.split,
    copy: bool = False,
):
    """Assign samples and CpGs to ``train`` / ``val`` / ``test``, disjoint on both axes.

    A (CpG, sample) pair belongs to a split when both its CpG and its sample do, so test pairs pair CpGs and
    samples never seen in training (as in Levy-Jurgenson et al.; pairs mixing splits are not used). CpGs can
    be split at random, by whole chromosome, or by genomic blocks of `block_size` bp, so that neighbouring
    CpGs with near-identical sequence windows do not straddle the split.

    Parameters
    ----------
    data
        :class:`~mudata.MuData` (samples shared by the modalities) or an :class:`~anndata.AnnData` of CpGs.
    test_size
        Fraction of samples, and of CpGs, held out for testing.
    val_size
        Fraction of samples, and of CpGs, used for validation (early stopping).
    by
        How CpGs are grouped: ``"random"`` (each CpG alone), ``"chromosome"`` or ``"block"``; groups go
        whole to one split, so fractions are approximate.
    block_size
        Block length (bp) for ``by="block"``.
    {mod}
        Default ``"methyl"``.
    {random_state}
    key_added
        Column written to `obs` and to the CpG `var`.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes

    `obs[key_added]`
        Categorical split of each sample (in the MuData's global `obs` and in every modality's `obs`).
    `var[key_added]`
        Categorical split of each CpG.
    `uns[key_added]['params']`
        The settings, in the CpG modality.
    """
    if not (0 < test_size < 1 and 0 <= val_size < 1 and test_size + val_size < 1):
        msg = f"`test_size` ({test_size}) must be in (0, 1), `val_size` ({val_size}) in [0, 1), summing below 1."
        raise ValueError(msg)
    check_choice(by, ("random", "chromosome", "block"), name="by")
    methyl = select_modality(data, mod, default=Key.mod.methyl)
    if by != "random":
        absent = [c for c in (Key.var.chrom, Key.var.pos) if c not in methyl.var]
        if absent:
            msg = f"`by={by!r}` needs CpG positions; `var` lacks {absent}."
            raise KeyError(msg)
        chrom = np.array([normalize_chrom(c) for c in methyl.var[Key.var.chrom].astype(str)])
        if by == "chromosome":
            groups = chrom
            if len(np.unique(groups)) < 3:
                msg = "`by='chromosome'` needs CpGs on at least 3 chromosomes; use `by='block'`."
                raise ValueError(msg)
        else:
            if block_size < 1:
                msg = f"`block_size` must be positive, got {block_size}."
                raise ValueError(msg)
            block = (methyl.var[Key.var.pos].to_numpy(dtype=np.int64) - 1) // block_size
            groups = np.char.add(np.char.add(chrom, ":"), block.astype(str))
    rng = as_generator(random_state)
    samples = methyl.obs_names if isinstance(data, AnnData) else data.obs_names
    sample_split = _split_units(len(samples), test_size, val_size, rng)
    if by == "random":
        cpg_split = _split_units(methyl.n_vars, test_size, val_size, rng)
    else:
        names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        cpg_split = _assign_groups(sizes, test_size, val_size, rng)[inverse]
    empty = [
        s for s in SPLITS if (s != "val" or val_size > 0) and not ((sample_split == s).any() and (cpg_split == s).any())
    ]
    if empty:
        msg = f"Split(s) {empty} would hold no samples or no CpGs; use more data, larger fractions or smaller blocks."
        raise ValueError(msg)

    data = data.copy() if copy else data
    by_sample = pd.Series(sample_split, index=samples)
    data.obs[key_added] = pd.Categorical(by_sample.reindex(data.obs_names), categories=list(SPLITS))
    if not isinstance(data, AnnData):
        for member in data.mod.values():
            member.obs[key_added] = pd.Categorical(by_sample.reindex(member.obs_names), categories=list(SPLITS))
    methyl = select_modality(data, mod, default=Key.mod.methyl)
    methyl.var[key_added] = pd.Categorical(cpg_split, categories=list(SPLITS))
    record_params(methyl, key_added, {"test_size": test_size, "val_size": val_size, "by": by, "block_size": block_size})
    return data if copy else None
