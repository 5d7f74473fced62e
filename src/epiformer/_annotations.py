"""Readers of what `pp` writes for the models: sequence codes, CpG-gene distances and pair splits.

Each checks the annotation is there and says which `ef.pp` function makes it, so models and tools read
them one way.
"""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from scipy import sparse

from epiformer._constants import Key
from epiformer._utils import select_modality

LEGACY_BUCKET = 2_000
LEGACY_MAX = 20_000


def legacy_code(offset: np.ndarray) -> np.ndarray:
    """Levy-Jurgenson et al.'s distance code of ``offset = gene_start - cpg_pos`` (bp, genome coordinates).

    ``sign(offset) * 0.5 ** k`` where ``k = ceil(|offset| / 2000) - 1`` (1 within 2 kb, 0.5 within 4 kb, ...
    ``0.5 ** 9`` within 20 kb), 0 beyond 20 kb; an offset of exactly 0 codes as +1.
    """
    offset = np.asarray(offset, dtype=np.float64)
    dist = np.abs(offset)
    k = np.maximum(np.ceil(dist / LEGACY_BUCKET) - 1, 0)
    code = np.where(offset < 0, -1.0, 1.0) * 0.5**k
    return np.where(dist <= LEGACY_MAX, code, 0.0)


def check_sequences(adata: AnnData, key: str) -> np.ndarray:
    """The `varm` sequence codes, or a clear error naming :func:`cpg_sequences`."""
    if key not in adata.varm:
        msg = f"`varm[{key!r}]` not found. Run `ef.pp.cpg_sequences(data, fasta)` first."
        raise KeyError(msg)
    return np.asarray(adata.varm[key])


def check_distances(adata: AnnData, key: str) -> tuple[sparse.csr_matrix, list[str], str]:
    """The distance matrix, its gene order and encoding, or a clear error naming :func:`cpg_gene_distances`."""
    if key not in adata.varm or key not in adata.uns or "genes" not in adata.uns[key]:
        msg = f"`varm[{key!r}]` not found. Run `ef.pp.cpg_gene_distances(mdata)` first."
        raise KeyError(msg)
    return (
        sparse.csr_matrix(adata.varm[key]),
        [str(g) for g in adata.uns[key]["genes"]],
        str(adata.uns[key]["params"]["encoding"]),
    )


def pair_split(data, *, split_key: str = Key.obs.split, mod: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sample and CpG split labels (object arrays), or a clear error naming :func:`split_pairs`."""
    methyl = select_modality(data, mod, default=Key.mod.methyl)
    obs = methyl.obs if isinstance(data, AnnData) else data.obs
    if split_key not in obs or split_key not in methyl.var:
        msg = f"No `{split_key}` in `obs` and the CpG `var`. Run `ef.pp.split_pairs(data)` first."
        raise KeyError(msg)
    samples = obs[split_key].reindex(methyl.obs_names).astype(object).to_numpy()
    return samples, methyl.var[split_key].astype(object).to_numpy()
