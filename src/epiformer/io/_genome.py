"""Indexed FASTA access through pyfaidx: chromosome-name reconciliation, region FASTAs, integer base codes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from epiformer._validation import _first

#: Integer code of each base; anything else (N, IUPAC ambiguity codes) is 4.
BASES = "ACGT"
N_CODE = 4
_LOOKUP = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _LOOKUP[ord(_b)] = _LOOKUP[ord(_b.lower())] = _i

_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[\d,]+)-(?P<end>[\d,]+)$")


def normalize_chrom(name: str) -> str:
    """A chromosome name without the ``chr`` prefix, with ``M`` for the mitochondrion: ``chr22`` -> ``22``."""
    name = str(name)
    bare = name[3:] if name.lower().startswith("chr") else name
    return "M" if bare.upper() in {"M", "MT"} else bare


def encode(sequence: str | bytes) -> np.ndarray:
    """Integer codes of a DNA sequence (A=0, C=1, G=2, T=3, anything else 4; lowercase accepted), uint8."""
    raw = sequence.encode("ascii") if isinstance(sequence, str) else sequence
    return _LOOKUP[np.frombuffer(raw, dtype=np.uint8)]


def one_hot(codes: np.ndarray, *, channels: int = 4, dtype=np.float32) -> np.ndarray:
    """One-hot encoding of integer base codes, channels last: ``(..., L) -> (..., L, channels)``.

    With ``channels=4`` an N is all zeros (as EpiGePT); with ``channels=5`` N has its own channel (as
    Levy-Jurgenson et al.).
    """
    if channels not in (4, 5):
        msg = f"`channels` must be 4 or 5, got {channels}."
        raise ValueError(msg)
    return np.eye(5, channels, dtype=dtype)[np.asarray(codes)]


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
        try:
            self._fasta = pyfaidx.Fasta(str(self.path), sequence_always_upper=False, rebuild=False)
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
            match = _REGION.match(region)
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
            msg = f"Chromosome {chrom!r} is not in {self.path.name} (available: {_first(self.chromosomes, 8)})."
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
            msg = f"Chromosomes not in {self.path.name}: {_first(unknown)} (available: {_first(self.chromosomes, 8)})."
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
            msg = f"{len(bad)} windows of +-{flank} bp reach past the available sequence: {_first(bad)}."
            raise ValueError(msg)
        return out


def as_genome(fasta: str | Path | Genome | object) -> Genome:
    """A :class:`Genome` from a FASTA path, a :class:`Genome`, or a genome segment.

    A segment is anything with `fasta`, `chrom`, `start` and `end`, such as
    :func:`epiformer.datasets.hg19_chr22_segment`.
    """
    if isinstance(fasta, Genome):
        return fasta
    if all(hasattr(fasta, a) for a in ("fasta", "chrom", "start", "end")):
        return Genome(fasta.fasta, region=f"{fasta.chrom}:{fasta.start}-{fasta.end}")
    if isinstance(fasta, str | Path):
        return Genome(fasta)
    msg = f"`fasta` must be a FASTA path, an `ef.io.Genome` or a genome segment, not {type(fasta).__name__}."
    raise TypeError(msg)


def parse_regions(regions) -> list[tuple[str, int, int]]:
    """``(chrom, start, end)`` triples (1-based, inclusive) from region strings, triples or a table.

    Accepts ``"chr22:20,000,001-20,500,000"``, a ``(chrom, start, end)`` tuple, a list of either, or a
    DataFrame with `chrom`, `start`, `end` columns.
    """
    import pandas as pd

    if isinstance(regions, pd.DataFrame):
        missing = {"chrom", "start", "end"} - set(regions.columns)
        if missing:
            msg = f"The regions table lacks columns {sorted(missing)}; it needs chrom, start, end (1-based, inclusive)."
            raise ValueError(msg)
        items = list(regions[["chrom", "start", "end"]].itertuples(index=False, name=None))
    elif isinstance(regions, str) or (isinstance(regions, tuple) and len(regions) == 3 and isinstance(regions[1], int)):
        items = [regions]
    else:
        items = list(regions)
    out = []
    for item in items:
        if isinstance(item, str):
            match = _REGION.match(item.strip())
            if match is None:
                msg = f"Region {item!r} must look like 'chr22:20000001-20500000' (1-based, inclusive)."
                raise ValueError(msg)
            chrom, start, end = match["chrom"], int(match["start"].replace(",", "")), int(match["end"].replace(",", ""))
        else:
            chrom, start, end = str(item[0]), int(item[1]), int(item[2])
        if start < 1 or end < start:
            msg = f"Region {chrom}:{start}-{end} is empty or starts before position 1."
            raise ValueError(msg)
        out.append((chrom, start, end))
    if not out:
        msg = "No regions given."
        raise ValueError(msg)
    return out
