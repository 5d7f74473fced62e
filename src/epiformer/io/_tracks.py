"""Signal tracks out and in: bigWig and bedGraph files of binned signals (EpiGePT predictions, measured assays).

Coordinates: epiformer's bins are 1-based and inclusive (`var` `start` / `end`); bigWig and bedGraph intervals are
0-based and half-open, so the bin ``[start, end]`` is written as ``(start - 1, end)``. pyBigWig is imported only
inside the functions that need it (the ``genome`` extra).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._files import atomic_path
from epiformer._logging import timed, warn
from epiformer._sequence import bin_bounds, bin_frame, bin_range, normalize_chrom, parse_regions
from epiformer._utils import get_matrix, layer_names, record_params, to_dense_float
from epiformer._validation import check_choice, first_items

PathLike = str | os.PathLike
Stat = Literal["mean", "sum", "max", "min"]
#: First four bytes of a bigWig file, as written on little- and big-endian machines.
_BIGWIG_MAGIC = (bytes.fromhex("26fc8f88"), bytes.fromhex("888ffc26"))
_BIGBED_MAGIC = (bytes.fromhex("ebf28987"), bytes.fromhex("8789f2eb"))
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")
#: Bases read from a bigWig at a time (1 Mb: 4 MB of float32 values).
_BLOCK_BASES = 1 << 20


def _pybigwig():
    try:
        import pyBigWig
    except ImportError:  # pragma: no cover - depends on the environment
        msg = "bigWig files need pyBigWig: `pip install 'epiformer[genome]'` (or `pip install pyBigWig`)."
        raise ImportError(msg) from None
    return pyBigWig


# --------------------------------------------------------------------------------------------------- writing


def _chrom_order(name: str) -> tuple[int, int, str]:
    """Sort key: 1..22 numerically, then X, Y, M, then any other name alphabetically."""
    bare = normalize_chrom(name)
    if bare.isdigit():
        return (0, int(bare), "")
    return (1, {"X": 0, "Y": 1, "M": 2}.get(bare.upper(), 3), bare)


def _read_chrom_sizes(chrom_sizes: Mapping[str, int] | PathLike) -> dict[str, int]:
    """Chromosome lengths from a mapping or a two-column file (``.fai`` or UCSC ``chrom.sizes``), in file order."""
    if isinstance(chrom_sizes, Mapping):
        return {str(k): int(v) for k, v in chrom_sizes.items()}
    path = Path(chrom_sizes)
    if not path.is_file():
        msg = f"No such chromosome sizes file: {path}"
        raise FileNotFoundError(msg)
    sizes: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split("\t") if "\t" in line else line.split()
            if not line.strip() or line.startswith("#"):
                continue
            try:
                sizes[fields[0].strip()] = int(fields[1])
            except (IndexError, ValueError):
                msg = f"{path}, line {number}: expected `name<TAB>length` (a .fai or chrom.sizes file), got {line!r}."
                raise ValueError(msg) from None
    if not sizes:
        msg = f"{path} lists no chromosome."
        raise ValueError(msg)
    return sizes


class _Layout:
    """The bins of `data` in file order: chromosome names as written, 0-based starts, ends, and the header."""

    def __init__(self, var: pd.DataFrame, chrom_sizes: Mapping[str, int] | PathLike | None) -> None:
        chroms, starts, ends = bin_bounds(var, "`data.var`")
        if chrom_sizes is None:
            names = sorted(pd.unique(chroms), key=_chrom_order)
            sizes = {c: int(ends[chroms == c].max()) for c in names}
            written = chroms
        else:
            sizes = _read_chrom_sizes(chrom_sizes)
            by_bare = {normalize_chrom(c): c for c in sizes}
            rename = {}
            for c in pd.unique(chroms):
                target = c if c in sizes else by_bare.get(normalize_chrom(c))
                if target is None:
                    msg = (
                        f"Chromosome {c!r} of the bins is not in `chrom_sizes` (which has {first_items(list(sizes))})."
                    )
                    raise ValueError(msg)
                rename[c] = target
            written = np.array([rename[c] for c in chroms], dtype=object) if len(chroms) else chroms
            for c, target in rename.items():
                longest = int(ends[chroms == c].max())
                if longest > sizes[target]:
                    msg = (
                        f"Bins of {c!r} end at {longest}, past the {sizes[target]:,} bp `chrom_sizes` gives {target!r}."
                    )
                    raise ValueError(msg)
        rank = {c: i for i, c in enumerate(sizes)}
        order = np.lexsort((starts, np.array([rank[c] for c in written], dtype=np.int64)))
        self.order = order
        self.chroms = np.asarray(written, dtype=object)[order]
        self.starts0 = starts[order] - 1
        self.ends = ends[order]
        same = self.chroms[1:] == self.chroms[:-1]
        overlap = np.flatnonzero(same & (self.starts0[1:] < self.ends[:-1]))
        if len(overlap):
            i = overlap[0]
            a, b = var.index[order[i]], var.index[order[i + 1]]
            msg = (
                f"Bins overlap ({a!r} and {b!r}, {len(overlap)} overlaps in all); a track holds one value per base. "
                "Write overlapping predictions to separate files."
            )
            raise ValueError(msg)
        self.header = list(sizes.items())


def _select(data: AnnData, contexts: Sequence[str] | None, signals: Sequence[str] | None) -> tuple[list, list]:
    if not isinstance(data, AnnData):
        msg = "`data` must be an AnnData of contexts x bins with one layer per signal (`ef.tl.predict_epigenome`)."
        raise TypeError(msg)
    if signals is None:
        signals = layer_names(data)
        if not signals:
            msg = "`data` has no layers; one layer per signal is written (`ef.tl.predict_epigenome` output)."
            raise ValueError(msg)
    signals = [signals] if isinstance(signals, str) else list(signals)
    for signal in signals:
        get_matrix(data, signal)  # KeyError naming an absent layer
    contexts = list(data.obs_names) if contexts is None else ([contexts] if isinstance(contexts, str) else contexts)
    absent = [c for c in contexts if c not in data.obs_names]
    if absent:
        msg = f"Contexts {first_items(absent)} are not in `data.obs_names`."
        raise KeyError(msg)
    return list(contexts), signals


def _file_names(folder: Path, contexts: list, signals: list, suffix: str) -> list[tuple[str, str, Path]]:
    jobs, seen = [], {}
    for context in contexts:
        for signal in signals:
            name = f"{_UNSAFE.sub('_', str(context))}.{_UNSAFE.sub('_', str(signal))}{suffix}"
            if name in seen:
                msg = f"Contexts / signals {seen[name]} and {(context, signal)} both map to the file name {name!r}."
                raise ValueError(msg)
            seen[name] = (context, signal)
            jobs.append((context, signal, folder / name))
    return jobs


def _values(data: AnnData, signal: str, rows: np.ndarray, layout: _Layout, transform: str | None) -> np.ndarray:
    """Values of `signal` for the context rows, in file order, on the scale written (float64)."""
    values = to_dense_float(get_matrix(data, signal)[rows], dtype=np.float64)[:, layout.order]
    if np.isinf(values).any():
        msg = f"Layer {signal!r} has infinite values; a track cannot hold them (NaN bins are left out)."
        raise ValueError(msg)
    return np.expm1(values) if transform == "expm1" else values


def _tracks(data, folder, contexts, signals, transform, chrom_sizes, suffix) -> Iterator[_Track]:
    """Every file to write: its context, signal, path, the bins' layout, their values and which are not NaN.

    Everything is checked before the first file is yielded; each signal's layer is read once.
    """
    contexts, signals = _select(data, contexts, signals)
    if transform not in ("expm1", None):
        msg = f"`transform` must be 'expm1' (write counts) or None (write the layers as they are), got {transform!r}."
        raise ValueError(msg)
    layout = _Layout(data.var, chrom_sizes)
    rows = np.array([data.obs_names.get_loc(c) for c in contexts])
    values = {signal: _values(data, signal, rows, layout, transform) for signal in signals}  # checked, all of them
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for context, signal, path in _file_names(folder, contexts, signals, suffix):
        row = values[signal][contexts.index(context)]
        yield _Track(context, signal, path, layout, row, ~np.isnan(row))


class _Track(NamedTuple):
    context: str
    signal: str
    path: Path
    layout: _Layout
    values: np.ndarray
    keep: np.ndarray


def _add_entries(bw, layout: _Layout, values: np.ndarray, keep: np.ndarray) -> None:
    """Add the kept bins: adjacent equal-width runs as fixed-step blocks, scattered bins bedGraph-style.

    Fixed-step blocks are about 25x faster to add and a third smaller; with more than one run per 8 bins a single
    bedGraph-style call is cheaper.
    """
    chroms, starts, ends, values = layout.chroms[keep], layout.starts0[keep], layout.ends[keep], values[keep]
    widths = ends - starts
    breaks = np.flatnonzero((chroms[1:] != chroms[:-1]) | (starts[1:] != ends[:-1]) | (widths[1:] != widths[:-1])) + 1
    if len(breaks) > len(values) // 8:
        bw.addEntries(list(chroms), starts, ends=ends, values=values)
        return
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(values)], strict=True):
        width = int(widths[lo])
        bw.addEntries(str(chroms[lo]), int(starts[lo]), values=values[lo:hi], span=width, step=width)


def write_bigwig(
    data: AnnData,
    folder: PathLike,
    *,
    contexts: Sequence[str] | None = None,
    signals: Sequence[str] | None = None,
    transform: Literal["expm1"] | None = "expm1",
    chrom_sizes: Mapping[str, int] | PathLike | None = None,
) -> list[Path]:
    """Write one bigWig per context and signal of binned tracks (e.g. :func:`epiformer.tl.predict_epigenome`).

    Each bin ``[start, end]`` of `data.var` (1-based, inclusive) becomes the bigWig interval
    ``(start - 1, end)`` (0-based, half-open), so the bin ``chr22:20000001-20000128`` is the interval
    ``(20000000, 20000128)``. Bins are written sorted by chromosome (1..22, X, Y, M, then others; or the order of
    `chrom_sizes`) and start; NaN bins are left out (no data). Each file is written under a temporary name and
    renamed when complete, so an interrupted call leaves only whole files.

    Parameters
    ----------
    data
        Contexts x bins: `var` with `chrom`, `start`, `end` (1-based, inclusive, not overlapping), one layer per
        signal (as :func:`epiformer.tl.predict_epigenome` writes, values ``log(count + 1)``).
    folder
        Folder for the files (created if missing); files are named ``{context}.{signal}.bw``, with every
        character other than letters, digits and ``_ . + -`` replaced by ``_``. Existing files are replaced.
    contexts
        `obs_names` to write; `None` writes every context.
    signals
        Layers to write; `None` writes every layer.
    transform
        ``"expm1"`` (default) writes ``exp(value) - 1``, i.e. counts on the linear scale that measured tracks and
        genome browsers use; :func:`read_bigwig`'s default ``transform="log1p"`` reads them back to the layers'
        values. `None` writes the layer values unchanged (``log(count + 1)`` for predictions).
    chrom_sizes
        Chromosome lengths for the header: a mapping or a ``.fai`` / UCSC ``chrom.sizes`` file. The header then
        lists every chromosome of it, in its order, and bins take its chromosome names (``22`` matches
        ``chr22``). `None` gives each chromosome of the bins the length of its last bin's end.

    Returns
    -------
    The paths written, context by context, signal by signal within a context.
    """
    pyBigWig = _pybigwig()
    with timed("ef.io.write_bigwig") as written:
        paths = []
        for track in _tracks(data, folder, contexts, signals, transform, chrom_sizes, ".bw"):
            with atomic_path(track.path) as tmp:
                bw = pyBigWig.open(str(tmp), "w")
                try:
                    bw.addHeader(track.layout.header, maxZooms=10)
                    if track.keep.any():
                        _add_entries(bw, track.layout, track.values, track.keep)
                finally:
                    bw.close()
            paths.append(track.path)
        written.append(f"{len(paths)} bigWig files in {folder}")
    return paths


def write_bedgraph(
    data: AnnData,
    folder: PathLike,
    *,
    contexts: Sequence[str] | None = None,
    signals: Sequence[str] | None = None,
    transform: Literal["expm1"] | None = "expm1",
    chrom_sizes: Mapping[str, int] | PathLike | None = None,
    track_line: bool = False,
) -> list[Path]:
    """Write one bedGraph text file per context and signal of binned tracks, as :func:`write_bigwig` does.

    Lines are ``chrom<TAB>start<TAB>end<TAB>value`` with 0-based, half-open coordinates (the bin
    ``chr22:20000001-20000128`` is ``chr22 20000000 20000128``), values with 7 significant digits, sorted by
    chromosome and start; NaN bins are left out. Written under a temporary name, then renamed.

    Parameters
    ----------
    data
        Contexts x bins with `chrom`, `start`, `end` (1-based, inclusive) and one layer per signal.
    folder
        Folder for the files (created if missing), named ``{context}.{signal}.bedGraph`` (sanitised as in
        :func:`write_bigwig`).
    contexts
        `obs_names` to write; `None` writes every context.
    signals
        Layers to write; `None` writes every layer.
    transform
        ``"expm1"`` (default) writes counts, ``exp(value) - 1``; `None` writes the layer values unchanged.
    chrom_sizes
        Chromosome lengths (mapping or ``.fai`` / ``chrom.sizes`` file): bins are checked against them, ordered
        as they are listed and take their chromosome names. `None` keeps the bins' names.
    track_line
        Start each file with a UCSC ``track type=bedGraph name="{context} {signal}"`` line (genome browsers
        want it; bedtools and most tools do not).

    Returns
    -------
    The paths written, context by context, signal by signal within a context.
    """
    with timed("ef.io.write_bedgraph") as written:
        paths = []
        for track in _tracks(data, folder, contexts, signals, transform, chrom_sizes, ".bedGraph"):
            layout, keep = track.layout, track.keep
            table = pd.DataFrame(
                {
                    "chrom": layout.chroms[keep],
                    "start": layout.starts0[keep],
                    "end": layout.ends[keep],
                    "v": track.values[keep],
                }
            )
            with atomic_path(track.path) as tmp:
                with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
                    if track_line:
                        name = f"{track.context} {track.signal}".replace('"', "'")
                        handle.write(f'track type=bedGraph name="{name}"\n')
                    table.to_csv(handle, sep="\t", header=False, index=False, float_format="%.7g", lineterminator="\n")
            paths.append(track.path)
        written.append(f"{len(paths)} bedGraph files in {folder}")
    return paths


# --------------------------------------------------------------------------------------------------- reading


def _track_entries(files: Any) -> tuple[list[tuple[str, str | None, Path]], bool]:
    """``(obs name, signal or None, path)`` of every file, and whether the files are laid out per signal."""
    if isinstance(files, Mapping):
        nested = [isinstance(v, Mapping) for v in files.values()]
        if any(nested) and not all(nested):
            msg = "`files` must map every context to a path, or every context to a {signal: path} mapping, not a mix."
            raise TypeError(msg)
        if files and all(nested):
            entries = [(str(c), str(s), Path(p)) for c, sig in files.items() for s, p in sig.items()]
            return entries, True
        return [(str(c), None, Path(p)) for c, p in files.items()], False
    items = [files] if isinstance(files, str | os.PathLike) else list(files)
    entries = [(_stem(Path(p)), None, Path(p)) for p in items]
    names = [e[0] for e in entries]
    if len(set(names)) < len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        msg = f"Files {first_items(dups)} share a name; pass a mapping {{name: path}} to name the rows."
        raise ValueError(msg)
    return entries, False


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".bigWig", ".bigwig", ".bw"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_bigwig(path: Path) -> None:
    if not path.is_file():
        msg = f"No such bigWig file: {path}"
        raise FileNotFoundError(msg)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic in _BIGBED_MAGIC:
        msg = f"{path} is a bigBed file, not a bigWig; tracks of values per base are read from bigWig files."
        raise ValueError(msg)
    if magic not in _BIGWIG_MAGIC:
        msg = f"{path} is not a bigWig file (it does not start with the bigWig magic number); convert it first."
        raise ValueError(msg)


def _bin_stat(values: np.ndarray, stat: str) -> np.ndarray:
    """Per-row `stat` over the covered (non-NaN) bases of ``(n_bins, bin_size)`` values (overwritten); NaN if none."""
    gaps = np.isnan(values)
    if not gaps.any():  # the common case: every base has data
        if stat == "mean":
            return values.mean(axis=1, dtype=np.float64)
        if stat == "sum":
            return values.sum(axis=1, dtype=np.float64)
        return values.max(axis=1) if stat == "max" else values.min(axis=1)
    count = values.shape[1] - gaps.sum(axis=1)
    if stat in ("mean", "sum"):
        values[gaps] = 0.0
        out = values.sum(axis=1, dtype=np.float64)
        if stat == "mean":
            out /= np.maximum(count, 1)
    elif stat == "max":
        values[gaps] = -np.inf
        out = values.max(axis=1)
    else:
        values[gaps] = np.inf
        out = values.min(axis=1)
    return np.where(count > 0, out, np.nan)


def _read_one(bw, spans: list, bin_size: int, stat: str, fill: float | None) -> tuple[np.ndarray, list]:
    """Binned values of one open bigWig over the regions' bins, and the region chromosomes it lacks."""
    lengths = bw.chroms() or {}
    by_bare = {normalize_chrom(c): c for c in lengths}
    out, absent = [], []
    block = max(1, _BLOCK_BASES // bin_size)
    for chrom, first, n in spans:
        name = chrom if chrom in lengths else by_bare.get(normalize_chrom(chrom))
        values = np.full(n, np.nan)
        if name is None:
            absent.append(chrom)
            if fill is not None:
                values[:] = fill
            out.append(values)
            continue
        length = lengths[name]
        for lo in range(0, n, block):
            m = min(block, n - lo)
            start0 = (first + lo) * bin_size
            stop = min(start0 + m * bin_size, length)
            got = bw.values(name, start0, stop, numpy=True) if stop > start0 else None
            if got is not None and len(got) == m * bin_size:
                bases = np.asarray(got, dtype=np.float32)
            else:  # past the chromosome's end, or an empty file (which returns no values)
                bases = np.full(m * bin_size, np.nan, dtype=np.float32)
                if got is not None and len(got) == stop - start0:
                    bases[: stop - start0] = got
            if fill is not None:
                bases[np.isnan(bases)] = fill
            values[lo : lo + m] = _bin_stat(bases.reshape(m, bin_size), stat)
        out.append(values)
    return np.concatenate(out), absent


def read_bigwig(
    files: PathLike | Sequence[PathLike] | Mapping[str, PathLike] | Mapping[str, Mapping[str, PathLike]],
    *,
    regions: Any,
    bin_size: int = 128,
    stat: Stat = "mean",
    transform: Literal["log1p"] | None = "log1p",
    fill: float | None = None,
    coordinates: Literal["0-based", "1-based"] | None = None,
) -> AnnData:
    """Read bigWig tracks binned on epiformer's grid, as targets for :func:`epiformer.tl.fit_epigept` or truth.

    Regions are widened to whole bins: bin k holds the 1-based positions ``bin_size k + 1 .. bin_size (k + 1)``,
    the grid :func:`epiformer.tl.predict_epigenome` predicts on, i.e. the bigWig bases ``[bin_size k,
    bin_size (k + 1))``. Each bin's value is `stat` over its bases that have data, computed from the file's
    base-level values (not its zoom levels).

    **No data.** A base without data (outside every interval of the file, past the chromosome's end, or on a
    chromosome the file lacks) is ignored by `stat`; a bin with no such base at all is NaN, which
    :func:`epiformer.tl.fit_epigept` treats as unmeasured (masked out of the loss). The number of NaN bins per
    file is recorded in ``uns['tracks']['files']`` and, when any, a warning says how many. Files that leave
    zero-signal stretches out (common for coverage bigWigs) mean 0 there: pass ``fill=0.0`` to read bases without
    data as 0 instead.

    Parameters
    ----------
    files
        The bigWig files: one path or a list of them (one row each, named by the file name without
        ``.bw`` / ``.bigWig``; values in `X`), a mapping ``{name: path}`` (rows named by it; values in `X`), or a
        mapping ``{context: {signal: path}}`` (rows = contexts, one layer per signal, NaN where a context has no
        file for a signal: the layout :func:`epiformer.tl.fit_epigept` takes). Chromosome names match with or
        without ``chr``.
    regions
        ``"chr22:20000001-20500000"`` (1-based, inclusive), a list of them or of ``(chrom, start, end)`` tuples
        (1-based, inclusive), a BED file path or pyranges object (0-based, half-open), or a DataFrame with
        `chrom`, `start`, `end` (see `coordinates`), as :func:`epiformer.tl.predict_epigenome` takes them; must
        not overlap.
    bin_size
        Bin width in bp (128 for EpiGePT).
    stat
        ``"mean"`` (default: the mean signal over the bin's covered bases), ``"sum"`` (for per-base read
        coverage tracks, the bin's read-base count), ``"max"`` or ``"min"``.
    transform
        ``"log1p"`` (default) returns ``log(value + 1)``, the scale EpiGePT predicts and trains on (files with
        negative values are refused); `None` returns the values as they are.
    fill
        Value for bases without data before `stat` is taken; `None` (default) leaves them out (NaN bins).
    coordinates
        How a `regions` DataFrame counts: ``"0-based"`` (half-open, as BED) or ``"1-based"`` (inclusive); `None`
        takes ``regions.attrs["coordinates"]`` (see :func:`epiformer.tl.predict_epigenome`).

    Returns
    -------
    AnnData of files (or contexts) x bins: `var` with `chrom`, `start`, `end` (1-based, inclusive) and `region`,
    as :func:`epiformer.tl.predict_epigenome` writes; values (float32) in `X` or one layer per signal;
    ``uns['tracks']`` with `params` and `files`, a table of `obs`, `signal`, `path` and `n_missing` (NaN bins).
    """
    pyBigWig = _pybigwig()
    with timed("ef.io.read_bigwig") as written:
        check_choice(stat, ("mean", "sum", "max", "min"), name="stat")
        check_choice(transform, ("log1p", None), name="transform")
        if int(bin_size) != bin_size or bin_size < 1:
            msg = f"`bin_size` must be a positive integer, got {bin_size!r}."
            raise ValueError(msg)
        bin_size = int(bin_size)
        entries, per_signal = _track_entries(files)
        if not entries:
            msg = "No bigWig files given."
            raise ValueError(msg)
        for _, _, path in entries:
            _check_bigwig(path)
        spans, frames = [], []
        for chrom, start, end in parse_regions(regions, coordinates=coordinates):
            first, n = bin_range(start, end, bin_size)
            spans.append((chrom, first, n))
            frames.append(bin_frame(chrom, first, n, bin_size).assign(**{Key.var.region: f"{chrom}:{start}-{end}"}))
        var = pd.concat(frames)
        if var.index.has_duplicates:
            msg = (
                f"The regions overlap (bins {first_items(list(var.index[var.index.duplicated()]))} repeat); merge them."
            )
            raise ValueError(msg)

        obs_names = list(dict.fromkeys(e[0] for e in entries))
        signals = list(dict.fromkeys(e[1] for e in entries)) if per_signal else [None]
        matrices = {s: np.full((len(obs_names), len(var)), np.nan, dtype=np.float32) for s in signals}
        report, absent_chroms = [], set()
        for name, signal, path in entries:
            try:
                bw = pyBigWig.open(str(path))
            except RuntimeError:
                bw = None
            if bw is None or not bw.isBigWig():
                msg = f"{path} could not be opened as a bigWig file (truncated or corrupt?)."
                raise ValueError(msg)
            try:
                values, absent = _read_one(bw, spans, bin_size, stat, fill)
            except RuntimeError as err:  # libBigWig's failures on a damaged file
                msg = f"{path} could not be read as a bigWig file ({err}); it looks truncated or corrupt."
                raise ValueError(msg) from err
            finally:
                bw.close()
            absent_chroms.update(absent)
            if transform == "log1p":
                if (values < 0).any():
                    msg = (
                        f"{path} has negative values (min {np.nanmin(values):g}); `transform='log1p'` needs counts >= 0. "
                        "Pass `transform=None` to read the values as they are."
                    )
                    raise ValueError(msg)
                values = np.log1p(values)
            n_missing = int(np.isnan(values).sum())
            matrices[signal][obs_names.index(name)] = values
            report.append({"obs": name, "signal": signal or "", "path": str(path), "n_missing": n_missing})

        table = pd.DataFrame(report)
        out = AnnData(obs=pd.DataFrame(index=pd.Index(obs_names)), var=var)
        if per_signal:
            for signal, matrix in matrices.items():
                out.layers[signal] = matrix
        else:
            out.X = matrices[None]
        record_params(
            out,
            Key.uns.tracks,
            {
                "bin_size": bin_size,
                "stat": stat,
                "transform": transform or "none",
                "fill": "none" if fill is None else fill,
            },
            files=table,
            n_missing=int(table["n_missing"].sum()),
        )
        missing = table[table["n_missing"] > 0]
        if len(missing):
            where = (
                f"; chromosomes {first_items(sorted(absent_chroms))} are missing from some files"
                if absent_chroms
                else ""
            )
            warn(
                f"{int(missing['n_missing'].sum()):,} of {len(table) * len(var):,} bins have no data in "
                f"{len(missing)} of {len(table)} bigWig files{where}; they are NaN (unmeasured: `ef.tl.fit_epigept` "
                "masks them out). Counts per file: `uns['tracks']['files']`. Pass `fill=0.0` if no data means 0."
            )
        written += ["X" if not per_signal else f"layers {signals}", f"uns[{Key.uns.tracks!r}]"]
    return out
