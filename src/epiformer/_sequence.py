"""DNA sequence codes and genomic coordinates (1-based, inclusive), shared by every sub-package."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from epiformer._constants import Key
from epiformer._files import is_gzip, open_text, readable
from epiformer._validation import check_choice, first_items

#: Integer code of each base; anything else (N, IUPAC ambiguity codes) is 4.
BASES = "ACGT"
N_CODE = 4
_LOOKUP = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _LOOKUP[ord(_b)] = _LOOKUP[ord(_b.lower())] = _i

REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[\d,]+)-(?P<end>[\d,]+)$")
#: Coordinate conventions of region tables: 0-based half-open (BED) or 1-based inclusive.
COORDINATES = ("0-based", "1-based")
BED_SUFFIXES = (".bed", ".bed.gz")
_BED_HEADER = ("#", "track", "browser")


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


def _fixed_convention(coordinates: str | None, convention: str, what: str) -> None:
    """Refuse a `coordinates=` that contradicts the convention `what` is defined in."""
    if coordinates is not None and coordinates != convention:
        msg = (
            f"{what} are always {convention}, but `coordinates={coordinates!r}` was given; drop `coordinates` "
            "(it is for DataFrames of chrom / start / end)."
        )
        raise ValueError(msg)


def _is_bed_path(regions: object) -> bool:
    if isinstance(regions, os.PathLike):
        return True
    return isinstance(regions, str) and regions.strip().lower().endswith(BED_SUFFIXES)


def _is_pyranges(regions: object) -> bool:
    return type(regions).__module__.split(".")[0] in {"pyranges", "pyranges1"}


def _bed_header_lines(path: Path) -> tuple[int, int, str]:
    """Lines to skip at the top of a BED file, fields per region, and the separator.

    Track, browser, comment and blank lines and a column-name row are skipped; fields are split at tabs, or at
    runs of spaces in a file without tabs.
    """
    n, named = 0, False
    with open_text(path) as handle:
        for line in handle:
            tabs = "\t" in line
            fields = line.rstrip("\n").split("\t") if tabs else line.split()
            if len(fields) >= 3 and fields[1].strip().isdigit() and fields[2].strip().isdigit():
                return n, len(fields), "\t" if tabs else r"\s+"
            if not line.strip() or line.startswith(_BED_HEADER):
                n += 1
            elif not named:
                n, named = n + 1, True
            else:
                break
    msg = (
        f"{path} holds no BED region line: expected chrom, start (0-based), end, optional name, "
        "after any track / browser / # lines."
    )
    raise ValueError(msg)


def read_bed(path: Path) -> pd.DataFrame:
    """A BED file's `chrom`, `start`, `end` and optional `name`, converted to 1-based inclusive coordinates."""
    with readable(path, what="a BED file"):
        skip, n_fields, sep = _bed_header_lines(path)
        try:
            table = pd.read_csv(
                path,
                sep=sep,
                header=None,
                skiprows=skip,
                usecols=list(range(min(n_fields, 4))),
                dtype={0: str, 3: str},
                comment=None,
                compression="gzip" if is_gzip(path) else None,
            )
        except ValueError as err:  # a ParserError, or a column that is not what it should be
            msg = f"Could not read {path} as a BED file (chrom, start, end, optional name): {err}"
            raise ValueError(msg) from err
    columns = [Key.var.chrom, Key.var.start, Key.var.end, "name"][: table.shape[1]]
    table.columns = columns
    starts = pd.to_numeric(table[Key.var.start], errors="coerce")
    ends = pd.to_numeric(table[Key.var.end], errors="coerce")
    bad = starts.isna() | ends.isna() | (starts < 0) | (ends <= starts)
    if bad.any():
        lines = (np.flatnonzero(bad.to_numpy()) + skip + 1).tolist()
        msg = (
            f"{path}: {int(bad.sum())} lines are not BED regions (start must be a 0-based position >= 0 and end > "
            f"start): lines {first_items(lines)}."
        )
        raise ValueError(msg)
    table[Key.var.start] = starts.to_numpy(np.int64) + 1
    table[Key.var.end] = ends.to_numpy(np.int64)
    return table


def _self_named(frame: pd.DataFrame) -> bool:
    """Whether every row is named ``chrom:start-end`` after its own columns, as epiformer names its bins (1-based)."""
    names = [f"{c}:{s}-{e}" for c, s, e in frame[["chrom", "start", "end"]].itertuples(index=False, name=None)]
    return len(frame) > 0 and [str(i) for i in frame.index] == names


def frame_convention(frame: pd.DataFrame, coordinates: str | None) -> str:
    """``"0-based"`` or ``"1-based"``: how a chrom / start / end table counts, as `coordinates` or its attrs say."""
    stated = frame.attrs.get("coordinates")
    if stated is not None and stated not in COORDINATES:
        msg = f"The regions table has `attrs['coordinates'] = {stated!r}`; it must be '0-based' or '1-based'."
        raise ValueError(msg)
    if coordinates is not None and stated is not None and coordinates != stated:
        msg = f"`coordinates={coordinates!r}` contradicts the regions table's `attrs['coordinates'] = {stated!r}`."
        raise ValueError(msg)
    convention = coordinates or stated
    if convention is None and _self_named(frame):
        convention = "1-based"  # bins epiformer made (e.g. the `var` of a prediction), named chrom:start-end
    if convention is None:
        msg = (
            "A regions table of chrom / start / end does not say how its coordinates count. Pass "
            "`coordinates='0-based'` for 0-based, half-open starts as in BED files, bioframe and pyranges "
            "(chr22 0 128 = the first 128 bases), or `coordinates='1-based'` for 1-based, inclusive ones as in "
            "'chr22:1-128', VCF and GTF; or set `regions.attrs['coordinates']` to either."
        )
        raise ValueError(msg)
    return convention


def whole_positions(values: pd.Series, what: str) -> np.ndarray:
    """`values` as int64 positions; a fractional, missing, infinite or non-numeric one raises, naming `what`."""
    if pd.api.types.is_integer_dtype(values) and not values.hasnans:
        return values.to_numpy(np.int64)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    if not np.isfinite(numbers).all() or (numbers != np.round(numbers)).any():
        msg = f"{what} must hold whole positions, with none missing."
        raise ValueError(msg)
    return numbers.astype(np.int64)


def _require_columns(frame: pd.DataFrame, what: str) -> None:
    missing = [c for c in (Key.var.chrom, Key.var.start, Key.var.end) if c not in frame.columns]
    if missing:
        msg = f"{what} lacks columns {missing}; it needs chrom, start, end."
        raise ValueError(msg)


def bin_bounds(
    frame: pd.DataFrame, what: str, *, convention: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chromosome names (str), starts and ends (int64, 1-based, inclusive) of the regions in `frame`, checked.

    `what` names `frame` in the messages (``"`data.var`"``). `convention` is how a user's table counts
    (``"0-based"`` starts are shifted to 1-based); `None` for bins epiformer made, which are 1-based. Missing
    columns, positions that are not whole numbers, and regions that are empty or start before position 1 raise a
    :class:`ValueError`.
    """
    _require_columns(frame, what)
    starts, ends = (whole_positions(frame[c], f"`{c}` of {what}") for c in (Key.var.start, Key.var.end))
    if convention == "0-based":
        starts = starts + 1
    chroms = frame[Key.var.chrom].astype(str).to_numpy()
    bad = (starts < 1) | (ends < starts)
    if bad.any():
        shown = [f"{c}:{s}-{e}" for c, s, e in zip(chroms[bad], starts[bad], ends[bad], strict=True)]
        msg = f"{int(bad.sum())} regions of {what} are empty or start before position 1: {first_items(shown)}"
        if convention is not None:
            msg += f" (read as {convention}; pass `coordinates=` if the table counts the other way)"
        raise ValueError(msg + ".")
    return chroms, starts, ends


def region_table(table: pd.DataFrame, coordinates: str | None) -> tuple[pd.DataFrame, str]:
    """A checked copy of a chrom / start / end table in 1-based, inclusive coordinates, and how it counted.

    The convention is `coordinates` or the table's ``attrs["coordinates"]`` (see :func:`frame_convention`); the
    positions are checked by :func:`bin_bounds`.
    """
    _require_columns(table, "The regions table")
    convention = frame_convention(table, coordinates)
    chroms, starts, ends = bin_bounds(table, "the regions table", convention=convention)
    out = table.reset_index(drop=True)
    out[Key.var.chrom], out[Key.var.start], out[Key.var.end] = chroms, starts, ends
    return out, convention


def parse_regions(regions, *, coordinates: str | None = None) -> list[tuple[str, int, int]]:
    """``(chrom, start, end)`` triples (1-based, inclusive) from region strings, triples, tables or a BED file.

    The coordinate convention of each input is fixed, never guessed:

    - ``"chr22:20,000,001-20,500,000"`` strings and ``(chrom, start, end)`` tuples (or a list of either) are
      1-based, inclusive;
    - a BED file path (``.bed`` or ``.bed.gz``; ``#``, ``track`` and ``browser`` lines skipped) and a
      pyranges object are 0-based, half-open;
    - a DataFrame with `chrom`, `start`, `end` columns counts as `coordinates` (``"0-based"`` half-open or
      ``"1-based"`` inclusive) or, failing that, as its ``attrs["coordinates"]``; tables epiformer made
      (bins named ``chrom:start-end``, as in the `var` of a prediction) are 1-based. Any other table is
      refused, so pass ``coordinates="0-based"`` for bioframe frames.

    `coordinates` that contradicts a fixed convention raises a :class:`ValueError`.
    """
    check_choice(coordinates, (*COORDINATES, None), name="coordinates")
    shift = 0
    if _is_bed_path(regions):
        path = Path(regions.strip() if isinstance(regions, str) else regions)
        if not str(path).lower().endswith(BED_SUFFIXES):
            msg = f"Region files must be BED files named .bed or .bed.gz, got {path}."
            raise ValueError(msg)
        _fixed_convention(coordinates, "0-based", "BED files")
        if not path.is_file():
            msg = f"No such BED file: {path}"
            raise FileNotFoundError(msg)
        items = list(read_bed(path)[[Key.var.chrom, Key.var.start, Key.var.end]].itertuples(index=False, name=None))
    elif _is_pyranges(regions):
        _fixed_convention(coordinates, "0-based", "pyranges objects")
        frame = regions if isinstance(regions, pd.DataFrame) else regions.df
        items = list(frame[["Chromosome", "Start", "End"]].itertuples(index=False, name=None))
        shift = 1
    elif isinstance(regions, pd.DataFrame):
        table, _ = region_table(regions, coordinates)
        items = list(table[[Key.var.chrom, Key.var.start, Key.var.end]].itertuples(index=False, name=None))
    else:
        _fixed_convention(coordinates, "1-based", "Region strings and (chrom, start, end) tuples")
        if isinstance(regions, str) or (
            isinstance(regions, tuple) and len(regions) == 3 and isinstance(regions[1], int | np.integer)
        ):
            items = [regions]
        else:
            items = list(regions)
    out = []
    for item in items:
        if isinstance(item, str):
            match = REGION.match(item.strip())
            if match is None:
                msg = (
                    f"Region {item!r} must look like 'chr22:20000001-20500000' (1-based, inclusive), or be a BED "
                    "file named .bed or .bed.gz."
                )
                raise ValueError(msg)
            chrom, start, end = match["chrom"], int(match["start"].replace(",", "")), int(match["end"].replace(",", ""))
        else:
            chrom, start, end = str(item[0]), int(item[1]) + shift, int(item[2])
        if start < 1 or end < start:
            written = f"{chrom}:{start - shift}-{end}" + (" (0-based, half-open)" if shift else "")
            msg = f"Region {written} is empty or starts before position 1."
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
    frame = pd.DataFrame(
        {Key.var.chrom: chrom, Key.var.start: starts.astype(np.int64), Key.var.end: ends.astype(np.int64)},
        index=index,
    )
    frame.attrs["coordinates"] = "1-based"
    return frame
