"""Reader for Illumina and InfiniumAnnotation methylation-array manifests: probe IDs with genomic coordinates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from epiformer._constants import Key
from epiformer._files import is_gzip, open_text, readable
from epiformer._sequence import normalize_chrom
from epiformer._validation import check_choice, first_items

from ._common import check_path

Build = Literal["hg19", "hg38"]

#: What `read_manifest` accepts, as its error messages say it.
LAYOUTS = (
    "an Illumina manifest CSV (a '[Heading]' block, an '[Assay]' line, then a header "
    "'IlmnID,Name,...,CHR,MAPINFO,...') or an InfiniumAnnotation / SeSAMe manifest TSV (header "
    "'CpG_chrm  CpG_beg  CpG_end ... Probe_ID ...')"
)
_HEAD_LINES = 50
_INFINIUM_COORDS = ("CpG_chrm", "CpG_beg", "CpG_end")
_INFINIUM_IDS = ("Probe_ID", "probeID")  # current layout; the 2017 release's files
_ILLUMINA_COLUMNS = (
    "IlmnID",
    "Genome_Build",
    "CHR",
    "MAPINFO",
    "Strand",
    "Strand_FR",
    "CHR_hg38",
    "Start_hg38",
    "Strand_hg38",
    "CHR_37",
    "MAPINFO_37",
)
_BUILD_IN_NAME = re.compile(r"(?:^|[._-])(hg19|hg38|grch37|grch38|mm10|mm39)(?:[._-]|$)", re.IGNORECASE)
_BUILD_ALIASES = {"37": "hg19", "grch37": "hg19", "hg19": "hg19", "38": "hg38", "grch38": "hg38", "hg38": "hg38"}
_STRANDS = {"F": "+", "R": "-", "+": "+", "-": "-"}


@dataclass(frozen=True)
class _Coordinates:
    """Where one build's coordinates sit in an Illumina manifest: columns, and the shift to a 1-based C."""

    chrom: str
    pos: str
    offset: int
    strand: str | None


@dataclass(frozen=True)
class _Assay:
    """The ``[Assay]`` section of an Illumina manifest: its header line, its number of rows, the announced count."""

    header: int
    n_rows: int
    loci_count: int | None


def _head(path: Path) -> list[str]:
    lines = []
    with open_text(path) as handle:
        for line in handle:
            lines.append(line.rstrip("\r\n"))
            if len(lines) == _HEAD_LINES:
                break
    return lines


def _first_cell(line: str, sep: str) -> str:
    return line.split(sep, 1)[0].strip().strip('"').strip()


def _layout(path: Path, head: list[str]) -> str:
    """``"illumina"`` or ``"infinium"`` from the header alone; anything else is refused."""
    lines = [line for line in head if line.strip()]
    if not lines:
        msg = f"{path} holds no text lines. Expected {LAYOUTS}."
        raise ValueError(msg)
    columns = {c.strip().strip('"') for c in lines[0].split("\t")}
    if set(_INFINIUM_COORDS) <= columns and columns & set(_INFINIUM_IDS):
        return "infinium"
    firsts = [_first_cell(line, ",") for line in lines]
    if firsts[0] == "IlmnID" or "[Heading]" in firsts:
        return "illumina"
    msg = f"{path} is not a manifest this reader knows: it starts with {lines[0][:80]!r}. Expected {LAYOUTS}."
    raise ValueError(msg)


def _stated_build(labels: pd.Series | list[str]) -> str | None:
    """The build a manifest states (``"hg19"``, ``"hg38"`` or its own label, e.g. ``"mm10"``), or `None`."""
    values = pd.Series(labels, dtype=object).dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return None
    label = values.mode().iloc[0]
    return _BUILD_ALIASES.get(label.lower(), label)


def _check_build(path: Path, build: str | None, stated: str | None, where: str) -> None:
    if build is not None and stated is not None and build != stated:
        msg = (
            f"{path} holds {stated} coordinates ({where}), but `build={build!r}` was asked for. Use a manifest "
            f"for {build}, or pass `build={stated!r}` (or `build=None`) for this one."
        )
        raise ValueError(msg)


def _positions(values: pd.Series, ids: pd.Index, *, column: str, path: Path) -> pd.Series:
    """A coordinate column as numbers (NaN where empty), refusing text that is not a number."""
    numbers = pd.to_numeric(values, errors="coerce")
    text = values.notna() & (values.astype(str).str.strip() != "")
    bad = (numbers.isna() & text) | (numbers.notna() & (numbers % 1 != 0))
    if bad.any():
        shown = ", ".join(f"{i} = {v!r}" for i, v in zip(ids[bad.to_numpy()][:5], values[bad][:5], strict=True))
        msg = f"{path}: column {column!r} holds values that are not positions ({shown}); fix or re-download it."
        raise ValueError(msg)
    return numbers


def _ids(values: pd.Series, *, path: Path, column: str) -> pd.Index:
    stripped = values.astype("string").str.strip()
    missing = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        msg = f"{path}: data row {row + 1} has no probe ID in column {column!r}; the file looks truncated or edited."
        raise ValueError(msg)
    ids = pd.Index(stripped.to_list())
    if ids.has_duplicates:
        msg = f"{path}: probe IDs listed more than once: {first_items(list(ids[ids.duplicated()].unique()))}."
        raise ValueError(msg)
    return ids


def _strands(values: pd.Series | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    return values.astype("string").str.strip().map(_STRANDS, na_action="ignore").to_numpy(dtype=object)


def _table(ids: pd.Index, chrom: pd.Series, pos: pd.Series, strand: np.ndarray, **attrs: object) -> pd.DataFrame:
    """The reader's result; probes without a usable position (no chromosome, chromosome 0, position <= 0) are NA."""
    names = pd.Series(pd.array(chrom.to_numpy(dtype=object), dtype="string")).str.strip()
    zero = [c for c in names.dropna().unique() if c == "" or normalize_chrom(c) == "0"]
    positions = pd.Series(pd.to_numeric(pos, errors="coerce").to_numpy(dtype=np.float64))
    unmapped = names.isna() | names.isin(zero) | positions.isna() | (positions.fillna(0) <= 0)
    table = pd.DataFrame(
        {
            Key.var.chrom: pd.array(names.mask(unmapped), dtype="string"),
            Key.var.pos: pd.array(positions.mask(unmapped), dtype="Int64"),
            Key.var.strand: pd.array(pd.Series(pd.array(strand, dtype="string")).mask(unmapped), dtype="string"),
        },
        index=ids,
    )
    table.attrs.update(attrs)
    return table


# ------------------------------------------------------------------------------------------- InfiniumAnnotation


def _read_text_columns(path: Path, wanted: set[str] | tuple[str, ...], **layout) -> pd.DataFrame:
    """The `wanted` columns of a manifest table as text, with their names stripped of spaces."""
    raw = pd.read_csv(
        path,
        dtype=str,
        usecols=lambda c: c.strip() in wanted,
        compression="gzip" if is_gzip(path) else None,
        encoding="utf-8",
        encoding_errors="replace",
        **layout,
    )
    raw.columns = [c.strip() for c in raw.columns]
    return raw


def _read_infinium(path: Path, build: str | None) -> pd.DataFrame:
    raw = _read_text_columns(path, {*_INFINIUM_COORDS, *_INFINIUM_IDS, "probe_strand", "mapFlag_A"}, sep="\t")
    id_column = next(c for c in _INFINIUM_IDS if c in raw.columns)
    ids = _ids(raw[id_column], path=path, column=id_column)
    beg = _positions(raw["CpG_beg"], ids, column="CpG_beg", path=path)
    end = _positions(raw["CpG_end"], ids, column="CpG_end", path=path)
    placed = beg.notna() & end.notna()
    if (end[placed] <= beg[placed]).any():
        msg = f"{path}: some rows end before they begin (CpG_end <= CpG_beg); this is not an InfiniumAnnotation file."
        raise ValueError(msg)
    if "probe_strand" in raw.columns:  # 2017 layout: '+', '-', '*' (unmapped)
        strand = _strands(raw["probe_strand"], len(raw))
    elif "mapFlag_A" in raw.columns:  # current layout: SAM flag of the A-allele probe, 16 = reverse strand
        flags = pd.to_numeric(raw["mapFlag_A"], errors="coerce")
        strand = np.where(flags.isna(), None, np.where((flags.fillna(0).astype(np.int64) & 16) > 0, "-", "+"))
    else:
        strand = _strands(None, len(raw))
    found = _BUILD_IN_NAME.search(path.name)
    stated = _BUILD_ALIASES.get(found.group(1).lower(), found.group(1)) if found else None
    _check_build(path, build, stated, f"its file name {path.name!r} says so")
    return _table(
        ids,
        raw["CpG_chrm"],
        beg + 1,
        strand,
        source=str(path),
        format="infinium_annotation",
        build=build or stated,
        coordinates="CpG_beg + 1",
    )


# ------------------------------------------------------------------------------------------------------ Illumina


def _assay_section(path: Path) -> _Assay:
    """Locate the column header and the rows of the ``[Assay]`` section (up to ``[Controls]`` or the end)."""
    header, loci_count, n_rows = None, None, 0
    heading = assay = False
    with open_text(path) as handle:
        for i, line in enumerate(handle):
            first = _first_cell(line, ",")
            if header is None:
                if first == "[Heading]":
                    heading = True
                elif first == "[Assay]":
                    assay = True
                elif first.lower().startswith("loci count") and "," in line:
                    count = _first_cell(line.split(",", 1)[1], ",")
                    loci_count = int(count) if count.isdigit() else None
                elif first == "IlmnID" and (assay or not heading):
                    header = i
                elif i >= _HEAD_LINES:
                    break
                continue
            if first.startswith("[") and first.endswith("]"):
                break  # [Controls] (or any later section) ends the probes
            if line.strip():
                n_rows += 1
    if header is None:
        what = "'[Assay]' line" if heading and not assay else "'IlmnID,...' column header"
        msg = (
            f"{path}: an Illumina manifest needs a {what} within its first {_HEAD_LINES} lines; none was found, "
            "so the file looks truncated or edited. Download it again."
        )
        raise ValueError(msg)
    return _Assay(header=header, n_rows=n_rows, loci_count=loci_count)


def _illumina_builds(columns: pd.Index, stated: str | None) -> dict[str | None, _Coordinates]:
    """Every set of coordinates the manifest offers, keyed by build (the main CHR / MAPINFO pair first)."""
    strand = "Strand_FR" if "Strand_FR" in columns else ("Strand" if "Strand" in columns else None)
    builds = {stated: _Coordinates("CHR", "MAPINFO", 0, strand)}
    if {"CHR_hg38", "Start_hg38"} <= set(columns):  # EPIC v1 (b5): BED-style, 0-based start of the CG
        builds.setdefault("hg38", _Coordinates("CHR_hg38", "Start_hg38", 1, "Strand_hg38"))
    if {"CHR_37", "MAPINFO_37"} <= set(columns):  # EPIC v2 (A2): hg19 coordinates, 1-based like MAPINFO
        builds.setdefault("hg19", _Coordinates("CHR_37", "MAPINFO_37", 0, strand))
    return builds


def _read_illumina(path: Path, build: str | None) -> pd.DataFrame:
    assay = _assay_section(path)
    raw = _read_text_columns(path, _ILLUMINA_COLUMNS, skiprows=assay.header, nrows=assay.n_rows)
    missing = [c for c in ("CHR", "MAPINFO") if c not in raw.columns]
    if missing:
        msg = f"{path}: the Illumina manifest has no {missing} column; it needs IlmnID, CHR and MAPINFO."
        raise ValueError(msg)
    raw = raw[raw.notna().any(axis=1)]  # lines of commas only
    ids = _ids(raw["IlmnID"], path=path, column="IlmnID")
    if assay.loci_count is not None and len(ids) < assay.loci_count:
        msg = (
            f"{path}: the header announces {assay.loci_count:,} loci but only {len(ids):,} probe rows were found; "
            "the file looks truncated. Download it again."
        )
        raise ValueError(msg)
    stated = _stated_build(raw["Genome_Build"]) if "Genome_Build" in raw.columns else None
    builds = _illumina_builds(raw.columns, stated)
    if build is None or build == stated:
        chosen = stated
    elif build in builds or stated is None:  # a second set of columns, or a file that does not say: trust the caller
        chosen = build if build in builds else None
    else:
        offered = sorted(b for b in builds if b is not None)
        msg = (
            f"{path} holds {stated} coordinates (Genome_Build) and offers {offered}, not `build={build!r}`. Use a "
            f"manifest for {build}, or pass `build={stated!r}` (or `build=None`) for this one."
        )
        raise ValueError(msg)
    where = builds[chosen]
    pos = _positions(raw[where.pos], ids, column=where.pos, path=path) + where.offset
    strand = _strands(raw[where.strand] if where.strand in raw.columns else None, len(raw))
    coordinates = f"{where.pos} + {where.offset}" if where.offset else where.pos
    return _table(
        ids,
        raw[where.chrom],
        pos,
        strand,
        source=str(path),
        format="illumina",
        build=build if chosen is None else chosen,
        coordinates=coordinates,
    )


def read_manifest(path: str | Path, *, build: Build | None = None) -> pd.DataFrame:
    """Read a methylation-array manifest: the genomic position of every probe's CpG.

    Two layouts are recognised from their header, plain or gzipped, and anything else is refused:

    **Illumina manifest CSV** (``HumanMethylation450_15017482_v1-2.csv``,
    ``infinium-methylationepic-v-1-0-b5-manifest-file.csv``, ``EPIC-8v2-0_A1.csv`` / ``_A2.csv``): a ``[Heading]``
    block (``Loci Count`` checked against the rows found), an ``[Assay]`` line, the header ``IlmnID,Name,...``,
    one row per probe, then a ``[Controls]`` section that is ignored. ``CHR`` / ``MAPINFO`` are the build named in
    ``Genome_Build`` (``37`` = hg19 for 450k and EPIC; ``GRCh38`` = hg38 for EPICv2); ``MAPINFO`` is the 1-based
    position of the C of the CpG on the + strand (``Forward_Sequence``, the + strand, shows the target as
    ``[CG]``, and ``MAPINFO`` equals InfiniumAnnotation's ``CpG_beg + 1``: cg00000029 is chr16:53468112 in both);
    ``CHR`` / ``MAPINFO`` of 0 or empty mark a probe without a unique mapping. EPIC v1 b5 adds hg38 columns
    ``CHR_hg38``, ``Start_hg38``, ``End_hg38``, ``Strand_hg38`` in BED style: ``Start_hg38`` is 0-based and
    ``End_hg38`` is ``Start_hg38 + 2``, so the C is at ``Start_hg38 + 1``. EPICv2 A2 adds hg19 columns ``CHR_37`` /
    ``MAPINFO_37``. The strand is ``Strand`` (``Strand_FR`` for EPICv2; ``Strand_hg38`` for the EPIC v1 hg38
    columns), F / R meaning the design strand is the genomic + / - strand.

    **InfiniumAnnotation manifest TSV** (Zhou et al. 2017, the SeSAMe manifests ``HM450.hg19.manifest.tsv.gz``,
    ``EPIC.hg38.manifest.tsv.gz``, ``EPICv2.hg38.manifest.tsv.gz``): tab-separated with ``CpG_chrm``,
    ``CpG_beg``, ``CpG_end`` (BED style: ``CpG_beg`` 0-based, ``CpG_end = CpG_beg + 2`` for a CpG, ``+ 1`` for a
    CpH or SNP target), so the C is at ``CpG_beg + 1``. The probe ID is ``Probe_ID`` (``probeID`` in the 2017
    files) and the strand the probe maps to is ``probe_strand`` in the 2017 layout or, in the current one,
    ``mapFlag_A`` (SAM flag 0 = +, 16 = -), as SeSAMe reads it. Rows with ``NA`` coordinates are probes that do
    not map to the genome. The build is read from the file name (``*.hg38.*``).

    Parameters
    ----------
    path
        The manifest file, plain or gzipped.
    build
        The genome build wanted. It picks the coordinate columns of a manifest that carries two builds (EPIC v1:
        hg19 ``MAPINFO`` or hg38 ``Start_hg38``; EPICv2 A2: hg38 ``MAPINFO`` or hg19 ``MAPINFO_37``) and must agree
        with the build a file states; `None` takes the main coordinates.

    Returns
    -------
    A DataFrame indexed by probe ID as the file writes it (EPICv2 keeps the suffixed IlmnID, ``cg00000029_TC21``),
    in file order, with columns `chrom` (as in the file, ``chr22`` or ``22``), `pos` (nullable ``Int64``: 1-based
    position of the C of the CpG on the + strand) and `strand` (``"+"`` / ``"-"``). Probes without coordinates
    (unmapped: no chromosome, chromosome 0 or position 0) are kept with missing `chrom`, `pos` and `strand`.
    ``DataFrame.attrs`` records `source`, `format`, `build` and `coordinates` (the column the positions came from).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is empty, in neither layout, truncated or corrupt, lists a probe twice, or holds another build
        than `build`.
    """
    path = check_path(path)
    check_choice(build, ("hg19", "hg38", None), name="build")
    with readable(path, what="a manifest", hint=f" Accepted layouts: {LAYOUTS}."):
        if _layout(path, _head(path)) == "infinium":
            return _read_infinium(path, build)
        return _read_illumina(path, build)
