"""Sparse CpG x gene distance matrices: which genes lie near each CpG, and how far (strand-aware)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._annotations import LEGACY_MAX, legacy_code
from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_mod, doc_params
from epiformer._logging import warn
from epiformer._sequence import normalize_chrom
from epiformer._utils import output, record_params, select_modality
from epiformer._validation import check_choice, check_cpg_positions, first_items

Encoding = Literal["signed_bp", "legacy_halving_2kb"]
Anchor = Literal["tss", "gene_start"]

#: Default window (bp) of each encoding; the legacy code is 0 beyond 20 kb.
DEFAULT_WINDOW = {"signed_bp": 1_000_000, "legacy_halving_2kb": 20_000}


def _gene_table(data, genes: pd.DataFrame | None, rna_mod: str) -> pd.DataFrame:
    """Gene coordinates in the column order of the distance matrix."""
    if genes is not None:
        table = genes.set_index("gene_name") if "gene_name" in genes.columns else genes
        table = table[~table.index.duplicated()]
    if isinstance(data, AnnData):
        if genes is None:
            msg = "With an AnnData of CpGs, pass `genes=` (a table with `chrom`, `start`, `end`, `strand`)."
            raise ValueError(msg)
        return table
    rna = select_modality(data, rna_mod, default=Key.mod.rna)
    if genes is None:
        table = rna.var
    return table.reindex(rna.var_names)


@doc_params(mod=doc_mod, copy=doc_copy)
def cpg_gene_distances(
    data,
    *,
    genes: pd.DataFrame | None = None,
    window: int | None = None,
    anchor: Anchor = "tss",
    encoding: Encoding = "signed_bp",
    mod: str | None = None,
    rna_mod: str = Key.mod.rna,
    key_added: str = Key.varm.gene_dist,
    copy: bool = False,
):
    """Distances from every CpG to the genes within a window, as a sparse CpG x gene matrix in `varm`.

    Only pairs within `window` bp are stored (a dense 450k x 20k matrix would take 36 GB). The anchor of a
    gene is its transcription start site, strand-aware (`start` on ``+``, `end` on ``-``); the published
    model used the gene start on both strands, available as ``anchor="gene_start"``.

    - ``encoding="signed_bp"``: the CpG position minus the anchor, in bp, negated for ``-`` strand genes, so
      negative values are upstream of the gene and positive ones inside it. A CpG exactly at an anchor has an
      explicitly stored 0: the sparsity pattern, not the value, says which genes are near.
    - ``encoding="legacy_halving_2kb"``: Levy-Jurgenson et al.'s code, ``sign(anchor - pos) * 0.5 ** k``
      with ``k = ceil(|d| / 2000) - 1`` (1 within 2 kb, halving every 2 kb), nothing beyond 20 kb.

    Parameters
    ----------
    data
        :class:`~mudata.MuData` with the CpGs (`var['chrom']`, `var['pos']`) in `mod` and the genes in
        `rna_mod`, or an :class:`~anndata.AnnData` of CpGs together with `genes`.
    genes
        Gene coordinates (`chrom`, `start`, `end`, `strand`; 1-based), indexed by gene name or with a
        `gene_name` column, such as :func:`epiformer.datasets.hg19_genes`. For a MuData it is matched to the
        `rna` genes, whose own `var` columns are used when `None`.
    window
        Largest distance kept (bp); default 1 Mb for ``signed_bp`` and 20 kb for the legacy code.
    anchor
        ``"tss"`` (strand-aware) or ``"gene_start"`` (`start` on both strands, as published).
    encoding
        ``"signed_bp"`` or ``"legacy_halving_2kb"``.
    {mod}
        Default ``"methyl"``.
    rna_mod
        With a MuData, the expression modality whose genes (in order) are the columns.
    key_added
        `varm` key written.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes to the CpG modality

    `varm[key_added]`
        CSR float32 matrix ``(n_cpgs, n_genes)``.
    `uns[key_added]`
        `params` and `genes`, the gene of each column.
    """
    check_choice(encoding, tuple(DEFAULT_WINDOW), name="encoding")
    check_choice(anchor, ("tss", "gene_start"), name="anchor")
    window = DEFAULT_WINDOW[encoding] if window is None else int(window)
    if window < 0 or (encoding == "legacy_halving_2kb" and window > LEGACY_MAX):
        msg = f"`window` must be non-negative (and at most {LEGACY_MAX:,} bp for the legacy code), got {window}."
        raise ValueError(msg)
    methyl = select_modality(data, mod, default=Key.mod.methyl)
    check_cpg_positions(methyl)
    table = _gene_table(data, genes, rna_mod)
    needed = [Key.var.chrom, Key.var.start, Key.var.end, Key.var.strand]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        msg = f"The gene table lacks {absent}; it needs {needed}."
        raise KeyError(msg)
    located = table[Key.var.chrom].notna() & table[Key.var.start].notna() & table[Key.var.end].notna()
    if not located.all():
        unplaced = table.index[~located.to_numpy()]
        warn(
            f"{len(unplaced)} of {len(table)} genes have no coordinates and get no distances: {first_items(list(unplaced))}.",
            UserWarning,
        )
    strand = table[Key.var.strand].astype(str).to_numpy()
    minus = strand == "-"
    bad_strand = located.to_numpy() & ~np.isin(strand, ["+", "-"])
    if anchor == "tss" and bad_strand.any():
        msg = (
            f"Genes with a strand other than '+' / '-' cannot have a TSS: {first_items(list(table.index[bad_strand]))}."
        )
        raise ValueError(msg)

    start = pd.to_numeric(table[Key.var.start]).to_numpy(dtype=np.float64)
    end = pd.to_numeric(table[Key.var.end]).to_numpy(dtype=np.float64)
    anchors = np.where(minus, end, start) if anchor == "tss" else start
    gene_chrom = np.array(
        [normalize_chrom(c) if ok else "" for c, ok in zip(table[Key.var.chrom], located, strict=True)]
    )
    cpg_chrom = np.array([normalize_chrom(c) for c in methyl.var[Key.var.chrom].astype(str)])
    cpg_pos = methyl.var[Key.var.pos].to_numpy(dtype=np.float64)

    rows, cols = [], []
    for chrom in np.intersect1d(np.unique(cpg_chrom), np.unique(gene_chrom[located.to_numpy()])):
        ci = np.flatnonzero(cpg_chrom == chrom)
        gi = np.flatnonzero((gene_chrom == chrom) & located.to_numpy())
        order = np.argsort(anchors[gi], kind="stable")
        sorted_anchor, sorted_gene = anchors[gi][order], gi[order]
        lo = np.searchsorted(sorted_anchor, cpg_pos[ci] - window, side="left")
        hi = np.searchsorted(sorted_anchor, cpg_pos[ci] + window, side="right")
        n = hi - lo
        rows.append(np.repeat(ci, n))
        cols.append(sorted_gene[np.repeat(lo, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)])
    rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    if encoding == "signed_bp":
        values = (cpg_pos[rows] - anchors[cols]) * np.where(minus[cols], -1.0, 1.0)
    else:
        values = legacy_code(anchors[cols] - cpg_pos[rows])
    matrix = sparse.csr_matrix(
        (values.astype(np.float32), (rows, cols)), shape=(methyl.n_vars, len(table)), dtype=np.float32
    )
    matrix.sort_indices()

    data, methyl = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
    methyl.varm[key_added] = matrix
    record_params(
        methyl,
        key_added,
        {"window": window, "anchor": anchor, "encoding": encoding, "rna_mod": rna_mod},
        genes=[str(g) for g in table.index],
    )
    return data if copy else None
