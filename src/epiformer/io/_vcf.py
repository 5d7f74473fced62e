"""Reader for variant files (VCF, bgzipped VCF, BCF) into the variant table :func:`epiformer.tl.variant_effect` takes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._validation import check_choice, first_items

from ._common import check_path

Indels = Literal["raise", "drop"]
_BASES = frozenset("ACGT")


def _is_snv(ref: str | None, alt: str | None) -> bool:
    return bool(ref and alt) and len(ref) == 1 and len(alt) == 1 and ref.upper() in _BASES and alt.upper() in _BASES


def _without_repeats(
    path: Path, rows: list[tuple[str, int, str, str, str | None]]
) -> list[tuple[str, int, str, str, str | None]]:
    """The alleles in file order, each listed once: a repeated chrom, pos, ref, alt is dropped with a warning."""
    seen: set[tuple[str, int, str, str]] = set()
    kept, repeated = [], []
    for row in rows:
        if row[:4] in seen:
            repeated.append(f"{row[0]}:{row[1]} {row[2]}>{row[3]}")
        else:
            seen.add(row[:4])
            kept.append(row)
    if repeated:
        warn(
            f"{path}: dropped {len(repeated)} repeated alleles (the same chrom, pos, ref and alt), e.g. {first_items(repeated)}."
        )
    return kept


def read_vcf(path: str | os.PathLike, *, indels: Indels = "raise") -> pd.DataFrame:
    """Read single-base substitutions from a VCF (plain or bgzipped) or BCF file, one row per alternative allele.

    The records are parsed with :mod:`pysam` (``pip install 'epiformer[genome]'``). A multi-allelic record
    (``ALT`` = ``C,G``) becomes one row per alternative allele. Only single-base A/C/G/T substitutions are
    kept: indels, multi-base substitutions, symbolic alleles (``<DEL>``, ``*``, breakends) and records without
    an ``ALT`` cannot be scored. Chromosome names are kept as written (``chr22`` and ``22`` both match a
    genome). Samples, ``QUAL``, ``FILTER`` and ``INFO`` are not read.

    Parameters
    ----------
    path
        A ``.vcf``, ``.vcf.gz`` (gzip or bgzip) or ``.bcf`` file.
    indels
        What to do with alleles that are not single-base substitutions: ``"raise"`` a :class:`ValueError`
        listing them, or ``"drop"`` them with a warning giving their number.

    Returns
    -------
    DataFrame with one row per kept allele, in file order: `chrom` (as written), `pos` (1-based, int64),
    `ref` and `alt` (upper-case) and `id` (the ``ID`` column, or ``chrom:pos:ref>alt`` where it is ``.``).
    The index is `id` where that is unique in the table, else ``chrom:pos:ref>alt`` (as for the alleles of
    one multi-allelic record). Pass it as ``variants=`` to :func:`epiformer.tl.variant_effect`.
    """
    check_choice(indels, ("raise", "drop"), name="indels")
    path = check_path(path)
    try:
        import pysam
    except ImportError as err:
        msg = "Reading VCF files needs pysam: `pip install 'epiformer[genome]'` (or `pip install pysam`)."
        raise ImportError(msg) from err

    rows: list[tuple[str, int, str, str, str | None]] = []
    skipped: list[str] = []
    verbosity = pysam.set_verbosity(0)  # htslib's own stderr warnings; errors are raised below instead
    try:
        with pysam.VariantFile(str(path)) as vcf:
            for rec in vcf:
                alts = rec.alts or (None,)
                for alt in alts:
                    if _is_snv(rec.ref, alt):
                        rows.append((rec.chrom, rec.pos, rec.ref.upper(), alt.upper(), rec.id))
                    else:
                        skipped.append(f"{rec.chrom}:{rec.pos} {rec.ref}>{alt or '.'}")
    except (OSError, ValueError) as err:
        msg = f"{path} could not be read as a VCF/BCF file by pysam ({type(err).__name__}: {err})."
        raise ValueError(msg) from None
    finally:
        pysam.set_verbosity(verbosity)

    if skipped:
        if indels == "raise":
            msg = (
                f"{path}: {len(skipped)} alleles are not single-base substitutions (indels or symbolic alleles), "
                f'which cannot be scored: {first_items(skipped)}. Pass `indels="drop"` to skip them.'
            )
            raise ValueError(msg)
        warn(
            f"{path}: dropped {len(skipped)} alleles that are not single-base substitutions (indels or symbolic alleles)."
        )

    rows = _without_repeats(path, rows)
    columns = [Key.obs.chrom, Key.obs.pos, Key.obs.ref, Key.obs.alt]
    names = [f"{c}:{p}:{r}>{a}" for c, p, r, a, _ in rows]
    ids = [name if i is None else str(i) for (*_, i), name in zip(rows, names, strict=True)]
    table = pd.DataFrame([row[:4] for row in rows], columns=columns)
    table[Key.obs.pos] = table[Key.obs.pos].astype(np.int64)
    table["id"] = ids
    counts = pd.Series(ids, dtype=object).value_counts()
    table.index = pd.Index([i if counts[i] == 1 else name for i, name in zip(ids, names, strict=True)])
    if table.empty:
        warn(f"{path} holds no single-base substitutions.")
    return table
