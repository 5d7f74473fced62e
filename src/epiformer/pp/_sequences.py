"""DNA around each CpG, read from an indexed FASTA into `varm` as integer base codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_mod, doc_params
from epiformer._logging import warn
from epiformer._utils import output, record_params, select_modality
from epiformer._validation import check_cpg_positions
from epiformer.io import Genome, GenomeSegment


@doc_params(mod=doc_mod, copy=doc_copy)
def cpg_sequences(
    data,
    fasta: str | Path | Genome | GenomeSegment,
    *,
    mod: str | None = None,
    flank: int = 400,
    region: str | None = None,
    key_added: str = Key.varm.seq_codes,
    copy: bool = False,
):
    """The ``2 * flank`` bp around every CpG, as integer base codes (A=0, C=1, G=2, T=3, N=4) in `varm`.

    Positions are read from `var['chrom']` and `var['pos']` (1-based position of the C); chromosome names
    with and without ``chr`` match. Window ``i`` covers ``pos - flank .. pos + flank - 1``, so the C of the
    CpG sits at column `flank` and its G at ``flank + 1``. Lowercase (soft-masked) bases are read as
    uppercase. Models one-hot encode the codes on the device (5 channels, N included).

    Parameters
    ----------
    data
        :class:`~anndata.AnnData` or :class:`~mudata.MuData` whose CpGs are the variables.
    fasta
        Indexed FASTA path, an :class:`epiformer.io.Genome`, or a :class:`epiformer.io.GenomeSegment`
        such as :func:`epiformer.datasets.hg19_chr22_segment` (its region is used).
    {mod}
        Default ``"methyl"``.
    flank
        Bases on each side of the CpG (400 in Levy-Jurgenson et al., an 800 bp window).
    region
        For a FASTA holding one piece of a chromosome, where that piece lies (``"22:20000001-21000000"``).
    key_added
        `varm` key written.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy (the whole MuData for a MuData). Writes

    `varm[key_added]`
        uint8 array ``(n_cpgs, 2 * flank)``.
    `uns[key_added]`
        `params` (FASTA path, flank, region) and `frac_cg_centre`, the fraction of windows whose centre
        reads ``CG`` (a warning is raised below 90 %: wrong build or positions not on the C).

    Raises
    ------
    ValueError
        Unknown chromosomes or windows reaching past the sequence, listing the first offenders.
    """
    if flank < 1:
        msg = f"`flank` must be positive, got {flank}."
        raise ValueError(msg)
    adata = select_modality(data, mod, default=Key.mod.methyl)
    check_cpg_positions(adata)
    genome = Genome.open(fasta, region=region)
    codes = genome.windows(
        adata.var[Key.var.chrom].astype(str).to_numpy(), adata.var[Key.var.pos].to_numpy(), flank=flank
    )
    frac_cg = float(np.mean((codes[:, flank] == 1) & (codes[:, flank + 1] == 2))) if len(codes) else 1.0
    if frac_cg < 0.9:
        warn(
            f"Only {frac_cg:.0%} of the windows have a CG at their centre: check the genome build and that "
            "`var['pos']` is the 1-based position of the C.",
            UserWarning,
        )
    data, adata = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
    adata.varm[key_added] = codes
    record_params(
        adata,
        key_added,
        {"fasta": str(genome.path), "flank": flank, "region": region},
        frac_cg_centre=frac_cg,
    )
    return data if copy else None
