"""Reader for per-CpG methylation calls from sequencing: one file per sample or cell, sparse counts out."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._sequence import normalize_chrom
from epiformer._sites import check_min_coverage, counts_anndata
from epiformer._utils import progress_bar
from epiformer._validation import check_unique, first_items

from ._call_formats import CallFormat, FileHead, candidates, check_layout, formats, iter_chunks, read_head
from ._common import check_path
from ._cpg_check import COMBINED, MINUS, PLUS, UNSTATED, check_cpgs
from ._genome import Genome, GenomeSegment

logger = logging.getLogger("epiformer")

Format = Literal["auto", "bismark_cov", "bismark_cpg_report", "methyldackel", "modkit", "encode", "allc"]
_STRAND_CODES = {".": COMBINED, "+": PLUS, "-": MINUS, "*": UNSTATED}
_STRAND_NAMES = np.array([".", "+", "-", "*"])
_POS_BITS, _STRAND_BITS = 32, 2
_LOW = (1 << (_POS_BITS + _STRAND_BITS)) - 1
#: Files whose site keys are merged into the union at once.
_UNION_BATCH = 64


def _choose_format(path: Path, head: FileHead, format: str, table: dict[str, CallFormat]) -> CallFormat:
    if format != "auto":
        if format not in table:
            msg = f"`format={format!r}` is not known; choose one of {['auto', *table]}."
            raise ValueError(msg)
        check_layout(path, head, table[format])
        return table[format]
    found = candidates(head, table)
    if len(found) == 1:
        return table[found[0]]
    if not found:
        msg = (
            f"{path}: rows of {sorted({len(r) for r in head.rows})} columns fit none of the known layouts "
            f"({', '.join(f'{f.name}: {f.n_columns}' for f in table.values())} columns)."
        )
    else:
        msg = (
            f"{path}: the first lines fit {found} alike (no header or column that only one of them has); "
            "pass `format=` to say which tool wrote it."
        )
    raise ValueError(msg)


class _Chromosomes:
    """Chromosome names met so far, each with an integer id (the order met); ``chr1`` and ``1`` are one."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids: dict[str, int] = {}

    def _id(self, name: str) -> int:
        key = normalize_chrom(name)
        if key not in self._ids:
            self._ids[key] = len(self.names)
            self.names.append(name)  # the first spelling met names the chromosome in the output
        return self._ids[key]

    def ids(self, chrom: pd.Series, path: Path) -> np.ndarray:
        codes, uniques = pd.factorize(chrom)
        if (codes < 0).any():
            msg = f"{path}: data row {int(np.argmax(codes < 0)) + 1} has no chromosome name."
            raise ValueError(msg)
        return np.array([self._id(str(u)) for u in uniques], dtype=np.int64)[codes]


def _checked_counts(path: Path, chunk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions, strand codes, methylated and total reads of one parsed chunk, after checking every value."""
    out = []
    for col in ("pos", "mc", "cov"):
        values = pd.to_numeric(chunk[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            row = chunk.index[int(np.argmax(bad))] + 1
            msg = (
                f"{path}: the {col} column must hold non-negative whole numbers; data row {row} holds "
                f"'{chunk[col].iloc[int(np.argmax(bad))]}'."
            )
            raise ValueError(msg)
        out.append(values.astype(np.int64))
    pos, mc, cov = out
    if (mc > cov).any():
        row = chunk.index[int(np.argmax(mc > cov))] + 1
        msg = (
            f"{path}: data row {row} has more methylated reads than reads covering the site (in a file of "
            "methylated and unmethylated counts: a negative unmethylated count)."
        )
        raise ValueError(msg)
    if (pos < 1).any() or (pos >= 1 << _POS_BITS).any():
        msg = f"{path}: positions must lie in 1..{(1 << _POS_BITS) - 1} (1-based)."
        raise ValueError(msg)
    codes, uniques = pd.factorize(chunk["strand"], use_na_sentinel=False)
    unknown = [str(u) for u in uniques if str(u) not in _STRAND_CODES]
    if unknown:
        msg = f"{path}: strand values {first_items(unknown)}; expected +, - or '.'."
        raise ValueError(msg)
    strand = np.array([_STRAND_CODES[str(u)] for u in uniques], dtype=np.int64)[codes]
    return pos, strand, mc, cov


def _keys(chrom_id: np.ndarray, pos: np.ndarray, strand: np.ndarray) -> np.ndarray:
    return (chrom_id << (_POS_BITS + _STRAND_BITS)) | (pos << _STRAND_BITS) | strand


class _FileSites:
    """The sites of one file as sorted int64 keys (chromosome id, position, strand code) with their counts."""

    def __init__(self, keys: np.ndarray, mc: np.ndarray, cov: np.ndarray, *, n_off_cpg: int, n_low: int) -> None:
        self.keys, self.mc, self.cov = keys, mc, cov
        self.n_off_cpg, self.n_low = n_off_cpg, n_low


def _read_file(
    path: Path,
    fmt: CallFormat,
    head: FileHead,
    chromosomes: _Chromosomes,
    *,
    genome: Genome | None,
    combine_strands: bool,
    min_coverage: int,
) -> _FileSites:
    parts = []
    with closing(iter_chunks(path, fmt, head.n_header)) as chunks:  # the file is closed when a check raises
        for chunk in chunks:
            pos, strand, mc, cov = _checked_counts(path, chunk)
            parts.append((chromosomes.ids(chunk["chrom"], path), pos, strand, mc, cov))
    chrom_id, pos, strand, mc, cov = (np.concatenate(col) for col in zip(*parts, strict=True))
    if not len(pos):
        kept = "rows of the `modification=` code" if fmt.name == "modkit" else "rows of the CpG context"
        msg = f"{path} holds no call of the kind read (from a {fmt.tool} file, {kept} only)."
        raise ValueError(msg)
    if (strand == COMBINED).any() and ((strand == PLUS) | (strand == MINUS)).any():
        msg = f"{path} mixes rows of combined strands ('.') with rows of one strand ('+' / '-'); read them apart."
        raise ValueError(msg)
    n_off_cpg = 0
    if genome is not None:
        check = check_cpgs(path, genome, chromosomes.names, chrom_id, pos, strand, coordinates=fmt.coordinates)
        keep, n_off_cpg = check.keep, check.n_off_cpg
        chrom_id, pos, strand, mc, cov = chrom_id[keep], pos[keep], check.strand[keep], mc[keep], cov[keep]
    keys = _keys(chrom_id, pos, strand)
    order = np.argsort(keys, kind="stable")
    keys, mc, cov = keys[order], mc[order], cov[order]
    repeated = keys[1:] == keys[:-1]
    if repeated.any():
        key = int(keys[1:][repeated][0])
        msg = f"{path}: site {chromosomes.names[key >> (_POS_BITS + _STRAND_BITS)]}:{(key & _LOW) >> _STRAND_BITS} is listed more than once."
        raise ValueError(msg)
    if combine_strands:
        if (strand == UNSTATED).any():
            msg = (
                f"{path}: a {fmt.tool} file does not say on which strand each C lies, so the two C of a CpG cannot "
                "be combined. Pass `fasta=` (the reference the calls were made on), or `combine_strands=False`."
            )
            raise ValueError(msg)
        strand_of = keys & ((1 << _STRAND_BITS) - 1)
        pos_of = (keys & _LOW) >> _STRAND_BITS
        if ((strand_of == MINUS) & (pos_of == 1)).any():
            msg = f"{path}: a '-' strand C at position 1 has no CpG (its G would be at position 0)."
            raise ValueError(msg)
        merged = _keys(keys >> (_POS_BITS + _STRAND_BITS), pos_of - (strand_of == MINUS), np.zeros_like(keys))
        order = np.argsort(merged, kind="stable")
        merged, mc, cov = merged[order], mc[order], cov[order]
        keys, start = np.unique(merged, return_index=True)
        if len(start):
            mc, cov = np.add.reduceat(mc, start), np.add.reduceat(cov, start)
    keep = cov >= min_coverage
    return _FileSites(
        keys[keep], mc[keep].astype(np.int32), cov[keep].astype(np.int32), n_off_cpg=n_off_cpg, n_low=int((~keep).sum())
    )


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def _natural(chrom: str) -> tuple:
    name = re.sub(r"^chr", "", chrom, flags=re.IGNORECASE)
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _assemble(files: list[_FileSites], chroms: list[str]) -> tuple[sparse.csr_matrix, sparse.csr_matrix, pd.DataFrame]:
    """Sparse samples x sites `mc` and `cov` over the union of sites, in genome order, and the sites' table."""
    rank = np.empty(len(chroms), dtype=np.int64)
    rank[sorted(range(len(chroms)), key=lambda i: _natural(chroms[i]))] = np.arange(len(chroms))
    shift = _POS_BITS + _STRAND_BITS
    for f in files:  # chromosome ids (order met) -> genome-order ranks, each file's sites sorted once
        ranked = (rank[f.keys >> shift] << shift) | (f.keys & _LOW)
        order = np.argsort(ranked)
        f.keys, f.mc, f.cov = ranked[order], f.mc[order], f.cov[order]
    union = np.empty(0, dtype=np.int64)
    for start in range(0, len(files), _UNION_BATCH):
        union = _sorted_unique(np.concatenate([union, *(f.keys for f in files[start : start + _UNION_BATCH])]))
    indices = [np.searchsorted(union, f.keys).astype(np.int32) for f in files]
    mc, cov = [f.mc for f in files], [f.cov for f in files]
    indptr = np.concatenate([[0], np.cumsum([len(i) for i in indices])]).astype(np.int64)
    shape = (len(files), len(union))
    layers = [sparse.csr_matrix((np.concatenate(d), np.concatenate(indices), indptr), shape=shape) for d in (mc, cov)]
    names = np.array(sorted(chroms, key=_natural), dtype=object)
    chrom = names[union >> (_POS_BITS + _STRAND_BITS)]
    pos = (union & _LOW) >> _STRAND_BITS
    strand = _STRAND_NAMES[union & ((1 << _STRAND_BITS) - 1)]
    index = pd.Series(chrom, dtype=str) + ":" + pd.Series(pos).astype(str)
    located = union >> _STRAND_BITS  # one position listed with two strand labels needs the label in its name
    if len(located) > 1 and (located[1:] == located[:-1]).any():
        index = index + ":" + pd.Series(strand, dtype=str)
    index = pd.Index(index)
    var = pd.DataFrame({Key.var.chrom: chrom.astype(str), Key.var.pos: pos, Key.var.strand: strand}, index=index)
    return layers[0], layers[1], var


def read_bedmethyl(
    paths: str | Path | Sequence[str | Path],
    *,
    format: Format = "auto",
    sample_names: Sequence[str] | None = None,
    combine_strands: bool = True,
    min_coverage: int = 1,
    fasta: str | Path | Genome | GenomeSegment | None = None,
    modification: str = "m",
    beta: bool = False,
    progress: bool | None = None,
) -> AnnData:
    """Read per-CpG methylation calls from sequencing, one file per sample or cell, into sparse count layers.

    Each supported format is read with the coordinate convention its tool documents, and every position in the
    result is the 1-based position of a C:

    ============================  =====================================================  ==========  =========
    `format`                      tool and file                                          start       strand
    ============================  =====================================================  ==========  =========
    ``"bismark_cov"``             Bismark ``*.bismark.cov(.gz)`` (6 columns)             1-based     not given
    ``"bismark_cpg_report"``      Bismark ``coverage2cytosine`` ``*.CpG_report.txt``     1-based     column 3
    ``"methyldackel"``            MethylDackel ``extract`` ``*_CpG.bedGraph``            0-based     not given
    ``"modkit"``                  modkit ``pileup`` bedMethyl (18 columns)               0-based     column 6
    ``"encode"``                  ENCODE WGBS bedMethyl (11 columns)                     0-based     column 6
    ``"allc"``                    ALLCools / methylpy ``allc`` (7 columns)               1-based     column 3
    ============================  =====================================================  ==========  =========

    CpG calls are read: rows of other contexts are skipped in CpG_report and allc files, which name the context,
    and only rows of `modification` in modkit files. The other formats do not name the context, so run the tool
    for CpGs only (modkit ``--cpg``, Bismark without ``--CX``), or pass `fasta` to drop calls off CpGs. 2-bp intervals of Bismark ``--merge_CpG`` and MethylDackel ``--mergeContext`` files
    are CpGs whose strands the tool already combined. ENCODE files give a rounded percentage, so their
    methylated counts are rebuilt as ``round(reads * percent / 100)``, exact below 50 reads. Plain text,
    gzip and bgzip files are read, in chunks of rows, one file at a time.

    Parameters
    ----------
    paths
        One file per sample (or per cell).
    format
        The tool that wrote the files (table above). ``"auto"`` decides from evidence only one format has
        (MethylDackel's bedGraph track line, a column count, a context column) and logs what it chose; a
        file that fits several formats is refused with their names.
    sample_names
        Names of the samples, in the order of `paths`; default: the file names up to the first dot.
    combine_strands
        Add the reads of the C on the - strand of each CpG to those of the C on the + strand, giving one site
        per CpG at the + position. Formats without a strand column need `fasta` for this.
    min_coverage
        Drop a sample's call at a site with fewer reads (after strands are combined).
    fasta
        The reference genome the calls were made on (a FASTA path, :class:`~epiformer.io.Genome` or
        :class:`~epiformer.io.GenomeSegment`). Every site is checked to be the C of a CpG: most sites off CpGs
        raise an error naming the likely cause (positions one base off, another genome build); a few are
        dropped with a warning. It also tells the strand of each C in formats without a strand column.
    modification
        For modkit files, the modification code to keep (``"m"`` = 5mC, ``"h"`` = 5hmC).
    beta
        Also write ``.X`` = methylated / total reads as a dense float32 samples x sites matrix, NaN where a
        sample does not cover a site. Leave it off for single cells or many sites.
    progress
        Show a progress bar over the files; default: when there are more than 10.

    Returns
    -------
    AnnData with obs = samples (`n_observed`: sites covered) and var = sites named ``chrom:pos`` in genome order,
    with columns `chrom`, `pos` (1-based position of the C; the + strand C when strands are combined) and
    `strand` (``"."`` when combined, else ``"+"`` / ``"-"``, or ``"*"`` when the file does not say). Layers
    `mc` (methylated reads) and `cov` (reads) are sparse int32 matrices: a site a sample does not cover is an
    implicit 0 in `cov`. `uns['epiformer_read']` records the files, format, options and what was dropped.

    Examples
    --------
    >>> import epiformer as ef
    >>> cells = ef.io.read_bedmethyl(["cell1.allc.tsv.gz", "cell2.allc.tsv.gz"], format="allc")  # doctest: +SKIP
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        msg = "`paths` is empty: pass one file per sample."
        raise ValueError(msg)
    check_min_coverage(min_coverage)
    paths = [check_path(p) for p in paths]
    if sample_names is None:
        sample_names = [p.name.split(".")[0] for p in paths]
    if len(sample_names) != len(paths):
        msg = f"{len(sample_names)} sample names for {len(paths)} files."
        raise ValueError(msg)
    check_unique(list(sample_names), what="sample names")
    genome = None if fasta is None else Genome.open(fasta)
    table = formats(modification)

    chromosomes, files, chosen = _Chromosomes(), [], set()
    show = len(paths) > 10 if progress is None else progress
    for path in progress_bar(paths, desc="reading calls", unit="file", disable=not show):
        head = read_head(path)
        fmt = _choose_format(path, head, format, table)
        chosen.add(fmt.name)
        if len(chosen) > 1:
            msg = f"The files are of different formats ({sorted(chosen)}, at {path}); read each format in its own call."
            raise ValueError(msg)
        files.append(
            _read_file(
                path, fmt, head, chromosomes, genome=genome, combine_strands=combine_strands, min_coverage=min_coverage
            )
        )
    if format == "auto":
        logger.info("read_bedmethyl: format %r chosen from the files' layout", next(iter(chosen)))
    if not any(len(f.keys) for f in files):
        msg = f"No site is covered by at least {min_coverage} reads in any of the {len(paths)} files."
        raise ValueError(msg)
    mc, cov, var = _assemble(files, chromosomes.names)
    obs = pd.DataFrame({Key.obs.n_observed: np.diff(cov.indptr)}, index=pd.Index(sample_names, dtype=str))
    adata = counts_anndata(mc, cov, obs=obs, var=var, beta=beta)
    n_off_cpg = sum(f.n_off_cpg for f in files)
    if n_off_cpg:
        warn(f"{n_off_cpg} calls do not sit on a CpG of the FASTA and were dropped (recorded in uns).")
    empty = [name for name, n in zip(sample_names, obs[Key.obs.n_observed], strict=True) if n == 0]
    if empty:
        warn(f"{len(empty)} samples cover no site with at least {min_coverage} reads: {first_items(empty)}.")
    adata.uns[Key.uns.read] = {
        "source": [str(p) for p in paths],
        "format": fmt.name,
        "coordinates": fmt.coordinates,
        "values": "counts",
        "combine_strands": combine_strands,
        "min_coverage": min_coverage,
        "fasta": None if genome is None else str(genome.path),
        "n_off_cpg_dropped": n_off_cpg,
        "n_below_min_coverage": sum(f.n_low for f in files),
        "empty_samples": np.asarray(empty, str),
    }
    if "encode" in chosen:
        n_rounded = int((cov.data >= 50).sum())
        adata.uns[Key.uns.read]["n_rounded_counts"] = n_rounded
        if n_rounded:
            warn(
                f"{n_rounded} calls have 50 reads or more: their methylated counts, rebuilt from the ENCODE file's "
                "rounded percentage, may be one read off (count recorded in uns)."
            )
    return adata
