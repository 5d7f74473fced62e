"""Indexed FASTA access through pyfaidx: chromosome-name reconciliation, region FASTAs, integer base codes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from epiformer._logging import warn
from epiformer._sequence import N_CODE, REGION, encode, normalize_chrom
from epiformer._validation import first_items


class GenomeSegment(NamedTuple):
    """A FASTA file holding one region of a chromosome."""

    fasta: Path
    """Path of the indexed FASTA file."""
    record: str
    """Name of the FASTA record."""
    chrom: str
    """Chromosome the record comes from."""
    start: int
    """1-based position of the record's first base on `chrom`."""
    end: int
    """1-based position of the record's last base (inclusive)."""
    build: str
    """Genome build."""


class Genome:
    """A reference genome (or a piece of one) in an indexed FASTA file, read through :mod:`pyfaidx`.

    Chromosomes are matched whether or not the names carry ``chr`` (``chr22`` and ``22`` are the same).
    Coordinates are 1-based and inclusive, as in ``var['pos']``.

    Parameters
    ----------
    fasta
        Path of a FASTA file (plain, or bgzip-compressed with its ``.gzi``); a ``.fai`` index is built
        next to it when missing.
    region
        For a FASTA holding one piece of a chromosome, where that piece lies: ``"22:20000001-21000000"``
        means the file's (single, or identically named) record starts at position 20,000,001 of chromosome
        22. Positions outside the piece are then out of range.
    """

    def __init__(self, fasta: str | Path, *, region: str | None = None) -> None:
        import pyfaidx

        self.path = Path(fasta)
        if not self.path.is_file():
            msg = f"No such FASTA file: {self.path}"
            raise FileNotFoundError(msg)
        index = Path(f"{self.path}.fai")
        stale = index.is_file() and index.stat().st_mtime < self.path.stat().st_mtime
        if stale:
            warn(f"{index} is older than {self.path.name}: the FASTA changed after its index was built; rebuilt it.")
        try:
            self._fasta = pyfaidx.Fasta(str(self.path), sequence_always_upper=False, rebuild=stale)
        except PermissionError as err:
            msg = f"Could not write the index of {self.path} ({err}); index it once with `samtools faidx` or copy it."
            raise PermissionError(msg) from err
        except Exception as err:  # pyfaidx raises several types for unreadable files
            msg = f"Could not read {self.path} as an indexed FASTA file: {err}"
            raise ValueError(msg) from err
        records = list(self._fasta.keys())
        # chromosome (normalised) -> (record name, 1-based position of the record's first base)
        self._records: dict[str, tuple[str, int]] = {}
        if region is None:
            for name in records:
                self._records[normalize_chrom(name)] = (name, 1)
        else:
            match = REGION.match(region)
            if match is None:
                msg = f"`region={region!r}` must look like 'chrom:start-end' (1-based, inclusive)."
                raise ValueError(msg)
            record = region if region in records else (records[0] if len(records) == 1 else None)
            if record is None:
                msg = f"`region=` needs a FASTA with one record (or a record named {region!r}); found {len(records)}."
                raise ValueError(msg)
            start, end = (int(match[k].replace(",", "")) for k in ("start", "end"))
            if end - start + 1 != len(self._fasta[record]):
                msg = f"`region={region!r}` spans {end - start + 1} bp but record {record!r} holds {len(self._fasta[record])}."
                raise ValueError(msg)
            self._records[normalize_chrom(match["chrom"])] = (record, start)
        self._codes: dict[str, np.ndarray] = {}

    @property
    def chromosomes(self) -> list[str]:
        """Chromosomes available (normalised names, without ``chr``)."""
        return list(self._records)

    def bounds(self, chrom: str) -> tuple[int, int]:
        """First and last 1-based position available on `chrom`."""
        record, first = self._record(chrom)
        return first, first + len(self._fasta[record]) - 1

    def _record(self, chrom: str) -> tuple[str, int]:
        key = normalize_chrom(chrom)
        if key not in self._records:
            msg = f"Chromosome {chrom!r} is not in {self.path.name} (available: {first_items(self.chromosomes, 8)})."
            raise KeyError(msg)
        return self._records[key]

    def codes(self, chrom: str) -> np.ndarray:
        """Integer codes of the whole available sequence of `chrom` (read once, then cached)."""
        key = normalize_chrom(chrom)
        if key not in self._codes:
            record, _ = self._record(chrom)
            self._codes[key] = encode(str(self._fasta[record][:]))
        return self._codes[key]

    def fetch(self, chrom: str, start: int, end: int, *, pad: bool = False) -> np.ndarray:
        """Integer codes of ``chrom:start-end`` (1-based, inclusive).

        With ``pad=True`` positions outside the available sequence read as N (code 4); otherwise they
        raise a :class:`ValueError`.
        """
        first, last = self.bounds(chrom)
        if end < start:
            msg = f"Empty interval {chrom}:{start}-{end}."
            raise ValueError(msg)
        if not pad and (start < first or end > last):
            msg = f"{chrom}:{start}-{end} lies outside the available sequence {chrom}:{first}-{last}."
            raise ValueError(msg)
        out = np.full(end - start + 1, N_CODE, dtype=np.uint8)
        lo, hi = max(start, first), min(end, last)
        if lo <= hi:
            out[lo - start : hi - start + 1] = self.codes(chrom)[lo - first : hi - first + 1]
        return out

    def windows(self, chroms: Sequence[str], centers: Sequence[int] | np.ndarray, *, flank: int) -> np.ndarray:
        """Codes of the ``2 * flank`` bases around every site, as an array of shape ``(n_sites, 2 * flank)``.

        Window ``i`` covers positions ``centers[i] - flank`` to ``centers[i] + flank - 1``.

        The base at `center` sits at column `flank` (for a CpG at 1-based position ``pos``, the C is the
        middle column). Unknown chromosomes or windows past a sequence end raise a :class:`ValueError`
        listing the first offenders.
        """
        chroms = np.asarray([normalize_chrom(c) for c in chroms], dtype=str)
        centers = np.asarray(centers, dtype=np.int64)
        unknown = sorted({str(c) for c in chroms} - set(self._records))
        if unknown:
            msg = f"Chromosomes not in {self.path.name}: {first_items(unknown)} (available: {first_items(self.chromosomes, 8)})."
            raise ValueError(msg)
        out = np.empty((len(centers), 2 * flank), dtype=np.uint8)
        offsets = np.arange(-flank, flank)
        bad: list[str] = []
        for chrom in np.unique(chroms):
            rows = np.flatnonzero(chroms == chrom)
            first, last = self.bounds(chrom)
            lo, hi = centers[rows] - flank, centers[rows] + flank - 1
            outside = (lo < first) | (hi > last)
            bad.extend(f"{chrom}:{p}" for p in centers[rows][outside])
            if not outside.any():
                out[rows] = self.codes(chrom)[(centers[rows] - first)[:, None] + offsets[None, :]]
        if bad:
            msg = f"{len(bad)} windows of +-{flank} bp reach past the available sequence: {first_items(bad)}."
            raise ValueError(msg)
        return out

    @classmethod
    def open(cls, fasta: str | Path | Genome | GenomeSegment, *, region: str | None = None) -> Genome:
        """A :class:`Genome` from a FASTA path, a :class:`Genome`, or a :class:`GenomeSegment`.

        Parameters
        ----------
        fasta
            The genome: a FASTA path, an open :class:`Genome` (returned as is), or a segment such as
            :func:`epiformer.datasets.hg19_chr22_segment` (anything with `fasta`, `chrom`, `start`, `end`).
        region
            With a FASTA path, where its single record lies (see :class:`Genome`).

        Returns
        -------
        The open genome.
        """
        if isinstance(fasta, Genome):
            if region is not None:
                msg = "`region=` applies to a FASTA path; a `Genome` already knows its region."
                raise ValueError(msg)
            return fasta
        if all(hasattr(fasta, a) for a in ("fasta", "chrom", "start", "end")):
            return cls(fasta.fasta, region=region or f"{fasta.chrom}:{fasta.start}-{fasta.end}")
        if isinstance(fasta, str | Path):
            return cls(fasta, region=region)
        msg = f"`fasta` must be a FASTA path, an `ef.io.Genome` or a genome segment, not {type(fasta).__name__}."
        raise TypeError(msg)
