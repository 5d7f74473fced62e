"""DNA sequence codes and genomic coordinates (1-based, inclusive), shared by every sub-package."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from epiformer._constants import Key

#: Integer code of each base; anything else (N, IUPAC ambiguity codes) is 4.
BASES = "ACGT"
N_CODE = 4
_LOOKUP = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _LOOKUP[ord(_b)] = _LOOKUP[ord(_b.lower())] = _i

REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[\d,]+)-(?P<end>[\d,]+)$")


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


def parse_regions(regions) -> list[tuple[str, int, int]]:
    """``(chrom, start, end)`` triples (1-based, inclusive) from region strings, triples or a table.

    Accepts ``"chr22:20,000,001-20,500,000"``, a ``(chrom, start, end)`` tuple, a list of either, or a
    DataFrame with `chrom`, `start`, `end` columns.
    """
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
            match = REGION.match(item.strip())
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


def bin_range(start: int, end: int, bin_size: int) -> tuple[int, int]:
    """First bin and number of bins covering ``start..end`` (1-based inclusive); bin k holds ``k*bin+1 .. (k+1)*bin``."""
    first = (start - 1) // bin_size
    return first, (end - 1) // bin_size - first + 1


def bin_frame(chrom: str, first_bin: int, n_bins: int, bin_size: int) -> pd.DataFrame:
    """`chrom`, `start`, `end` (1-based, inclusive) of consecutive bins, indexed ``chrom:start-end``."""
    starts = (first_bin + np.arange(n_bins)) * bin_size + 1
    ends = starts + bin_size - 1
    index = [f"{chrom}:{s}-{e}" for s, e in zip(starts, ends, strict=True)]
    return pd.DataFrame(
        {Key.var.chrom: chrom, Key.var.start: starts.astype(np.int64), Key.var.end: ends.astype(np.int64)},
        index=index,
    )
