"""The published layouts of per-CpG methylation call files, how each is recognised, and how one file is parsed.

Each format is read into the same columns: `chrom`, `pos` (1-based position of the C on its own strand),
`strand` (``+``, ``-``, ``.`` when the file already combines the two C of a CpG at the + position, ``*`` when
the file does not say), `mc` (methylated reads) and `cov` (reads).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from epiformer._files import is_gzip, open_text, readable

#: Rows read at once from one file, so a whole-genome file never sits in memory as text-derived objects.
CHUNK_ROWS = 2_000_000
_SNIFF_ROWS = 200


@dataclass(frozen=True)
class CallFormat:
    """One tool's file layout."""

    name: str
    tool: str
    n_columns: int
    coordinates: str
    """``"1-based"`` or ``"0-based"`` (BED-style half-open start), as the tool documents it."""
    parse: Callable[[pd.DataFrame], pd.DataFrame]
    usecols: tuple[int, ...]
    """The columns `parse` reads (the others are skipped while parsing)."""


def _frame(chrom, pos, strand, mc, cov) -> pd.DataFrame:
    return pd.DataFrame({"chrom": chrom, "pos": pos, "strand": strand, "mc": mc, "cov": cov})


def where_values(column: pd.Series, keep: Callable[[str], bool]) -> np.ndarray:
    """Rows whose value passes `keep`, testing each distinct value once (contexts and codes repeat a lot)."""
    codes, uniques = pd.factorize(column)
    passes = np.array([keep(str(u)) for u in uniques] + [False])
    return passes[codes]


def _strand_from_span(span: pd.Series) -> np.ndarray:
    """``.`` for a 2-bp interval (a CpG with strands merged by the tool), ``*`` for a single C of unstated strand."""
    return np.where(span.to_numpy() == 2, ".", "*")


def _bismark_cov(raw: pd.DataFrame) -> pd.DataFrame:
    # chrom, start, end (1-based inclusive; end = start for one C, start + 1 for `--merge_CpG`), %, meth, unmeth
    return _frame(raw[0], raw[1], _strand_from_span(raw[2] - raw[1] + 1), raw[4], raw[4] + raw[5])


def _cpg_report(raw: pd.DataFrame) -> pd.DataFrame:
    # chrom, pos (1-based C), strand, meth, unmeth, C context (CG/CHG/CHH), trinucleotide context
    raw = raw[where_values(raw[5], lambda c: c == "CG")]
    return _frame(raw[0], raw[1], raw[2], raw[3], raw[3] + raw[4])


def _methyldackel(raw: pd.DataFrame) -> pd.DataFrame:
    # chrom, start (0-based), end, %, nMethylated, nUnmethylated; `--mergeContext` writes 2-bp CpG intervals
    return _frame(raw[0], raw[1] + 1, _strand_from_span(raw[2] - raw[1]), raw[4], raw[4] + raw[5])


def modkit_parser(modification: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Parser of modkit pileup rows: chrom, start (0-based), end, code, score, strand, ..., 9: Nvalid_cov, 11: Nmod."""

    def parse(raw: pd.DataFrame) -> pd.DataFrame:
        raw = raw[where_values(raw[3], lambda c: c.split(",")[0] == modification)]
        return _frame(raw[0], raw[1] + 1, raw[5], raw[11], raw[9])

    return parse


def _encode(raw: pd.DataFrame) -> pd.DataFrame:
    # chrom, start (0-based), end, name, score, strand, thickStart, thickEnd, rgb, read count, % methylated
    return _frame(raw[0], raw[1] + 1, raw[5], np.rint(raw[9] * raw[10] / 100.0), raw[9])


def _allc(raw: pd.DataFrame) -> pd.DataFrame:
    # chrom, pos (1-based C), strand, context (of the C on its strand), mc, cov, methylated flag
    raw = raw[where_values(raw[3], lambda c: c[:2].upper() == "CG")]
    return _frame(raw[0], raw[1], raw[2], raw[4], raw[5])


def formats(modification: str = "m") -> dict[str, CallFormat]:
    """Every supported layout by name; `modification` is the modkit code kept (``m`` = 5mC, ``h`` = 5hmC)."""
    table = [
        CallFormat("bismark_cov", "Bismark coverage (.cov)", 6, "1-based", _bismark_cov, (0, 1, 2, 4, 5)),
        CallFormat("bismark_cpg_report", "Bismark CpG_report", 7, "1-based", _cpg_report, (0, 1, 2, 3, 4, 5)),
        CallFormat("methyldackel", "MethylDackel bedGraph", 6, "0-based", _methyldackel, (0, 1, 2, 4, 5)),
        CallFormat("modkit", "modkit bedMethyl", 18, "0-based", modkit_parser(modification), (0, 1, 3, 5, 9, 11)),
        CallFormat("encode", "ENCODE bedMethyl", 11, "0-based", _encode, (0, 1, 5, 9, 10)),
        CallFormat("allc", "ALLCools allc", 7, "1-based", _allc, (0, 1, 2, 3, 4, 5)),
    ]
    return {f.name: f for f in table}


@dataclass(frozen=True)
class FileHead:
    """What the first lines of a file say: header lines, their text, and a sample of data rows split on whitespace."""

    n_header: int
    header: list[str]
    rows: list[list[str]]


def read_head(path: Path) -> FileHead:
    """Header lines (track / browser / ``#`` lines, or a first line whose position field is not a number) and rows."""
    header: list[str] = []
    rows: list[list[str]] = []
    try:
        with open_text(path) as handle:
            for line in handle:
                fields = line.split()
                if rows and not fields:
                    continue  # a blank line among the data, as pandas skips it
                is_header = not fields or line.startswith(("track", "browser", "#"))
                is_header = is_header or (not rows and len(fields) > 1 and not fields[1].isdigit())
                if is_header and not rows:
                    header.append(line.rstrip("\n"))
                    continue
                rows.append(fields)
                if len(rows) >= _SNIFF_ROWS:
                    break
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:
        msg = f"{path}: could not read it as text ({err}); the file may be truncated, corrupt or not a call file."
        raise ValueError(msg) from err
    if not rows:
        msg = f"{path} holds no methylation calls (only {len(header)} header lines)."
        raise ValueError(msg)
    return FileHead(len(header), header, rows)


def _numeric(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _touching(rows: list[list[str]]) -> bool:
    """Whether an interval starts where the one before it ends.

    The + and - C of one CpG in 0-based half-open coordinates (``[p-1, p)``, ``[p, p+1)``) do so; 1-based
    inclusive CpG intervals (Bismark ``--merge_CpG``: ``[p, p+1]``, the next CpG from ``p+2``) never do.
    """
    return any(
        a[0] == b[0] and a[2] == b[1] for a, b in zip(rows, rows[1:], strict=False) if a[2].isdigit() and b[1].isdigit()
    )


def candidates(head: FileHead, table: dict[str, CallFormat]) -> list[str]:
    """The formats consistent with the file's first lines, from evidence only one format has."""
    n_cols = {len(r) for r in head.rows}
    if len(n_cols) != 1:
        return []
    n = n_cols.pop()
    bedgraph_track = any(h.startswith("track") and "bedGraph" in h for h in head.header)
    if n == 6:
        if bedgraph_track:
            return ["methyldackel"]
        spans = {int(r[2]) - int(r[1]) for r in head.rows if r[1].isdigit() and r[2].isdigit()}
        if spans == {0}:
            return ["bismark_cov"]
        return ["methyldackel"] if spans == {1} and _touching(head.rows) else ["bismark_cov", "methyldackel"]
    if n == 7:
        col = [[r[i] for r in head.rows] for i in range(n)]
        if _numeric(col[3]) and set(col[5]) <= {"CG", "CHG", "CHH"}:
            return ["bismark_cpg_report"]
        if not _numeric(col[3]) and _numeric(col[4]) and _numeric(col[5]):
            return ["allc"]
        return []
    return [f.name for f in table.values() if f.n_columns == n and f.name in ("modkit", "encode")]


def check_layout(path: Path, head: FileHead, fmt: CallFormat) -> None:
    """Raise a :class:`ValueError` when the file's first lines contradict the format the caller named."""
    n_cols = sorted({len(r) for r in head.rows})
    if n_cols != [fmt.n_columns]:
        msg = f"{path}: rows of {n_cols} columns, but a {fmt.tool} file (`format={fmt.name!r}`) has {fmt.n_columns}."
        raise ValueError(msg)
    found = candidates(head, formats())
    if found and fmt.name not in found:
        msg = (
            f"{path} does not look like a {fmt.tool} file (`format={fmt.name!r}`): its header and columns fit "
            f"{found}. Pass the format that wrote it."
        )
        raise ValueError(msg)
    if fmt.name in ("bismark_cov", "methyldackel"):
        lo, hi = (0, 1) if fmt.name == "bismark_cov" else (1, 2)
        spans = {int(r[2]) - int(r[1]) for r in head.rows if r[1].isdigit() and r[2].isdigit()}
        if not spans <= {lo, hi}:
            convention = "0-based half-open" if fmt.name == "methyldackel" else "1-based inclusive"
            msg = (
                f"{path}: intervals with end - start = {sorted(spans)}; a {fmt.tool} file is {convention} "
                f"(end - start in {{{lo}, {hi}}}). The file was written by another tool: pass its `format=`."
            )
            raise ValueError(msg)


def iter_chunks(path: Path, fmt: CallFormat, n_header: int) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks, parsed into the common columns (counts as read, checked by the caller).

    Text such as ``NA`` stays text (no value is turned into a missing one), so a bad value is reported, not skipped.
    """
    with readable(path, what=f"a {fmt.tool} file"):
        reader = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            skiprows=n_header,
            usecols=list(fmt.usecols),
            dtype={0: str},
            na_filter=False,
            encoding_errors="replace",
            compression="gzip" if is_gzip(path) else None,
            chunksize=CHUNK_ROWS,
            low_memory=False,
        )
        for raw in reader:
            try:
                yield fmt.parse(raw)
            except TypeError as err:  # text where the layout has a number (a start, an end, a percentage)
                msg = f"{path}: text in a numeric column of a {fmt.tool} file ({err}); check the file and `format=`."
                raise ValueError(msg) from err
