"""Methylated and total read counts summed over genomic regions (bins, promoters, genes, CpG islands, BED)."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from anndata import AnnData
from anndata.utils import make_index_unique
from mudata import MuData
from scipy import sparse

from epiformer import _hg19
from epiformer._constants import Key
from epiformer._logging import timed, warn
from epiformer._sequence import normalize_chrom, read_bed, region_table
from epiformer._sites import POS_LIMIT, count_layers, counts_anndata, cpg_positions, locus_keys
from epiformer._utils import record_params
from epiformer._validation import check_cpg_positions, first_items

NAMED_REGIONS = ("promoters", "genes", "cpg_islands")
_BIN_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>bp|kb|mb)\s*$", re.IGNORECASE)
_UNITS = {"bp": 1, "kb": 1_000, "mb": 1_000_000}
#: Above this fraction of sites in no region, a warning suggests a chromosome-name or genome-build mismatch.
_OUTSIDE_WARN = 0.99


def aggregate_regions(
    data: AnnData | MuData,
    *,
    regions: str | os.PathLike | int | pd.DataFrame,
    coordinates: Literal["0-based", "1-based"] | None = None,
    mod: str | Sequence[str] | None = None,
    promoter: tuple[int, int] = (2000, 500),
    min_sites: int = 1,
    fraction: bool = True,
) -> AnnData | MuData:
    """Sum methylated and total reads of sequencing sites over genomic regions.

    Every site (`var` row) is assigned to the regions that contain its position; the methylated reads (`mc`) and
    the total reads (`cov`) of each cell are summed over each region's sites, sparse throughout (through a sparse
    sites x regions indicator). A site inside several overlapping regions counts in each. Strands are not told
    apart: the sites of both strands of a CpG (``+`` / ``-`` in `var['strand']`) add up. Chromosomes are matched
    whether or not their names carry ``chr`` (``chr22`` and ``22`` are the same).

    `regions` is one of

    - a bin size, ``"100kb"``, ``"10kb"``, ``"1Mb"``, ``"5000bp"`` (or an int, in bp): fixed bins per chromosome,
      bin ``k`` holding positions ``k * size + 1`` to ``(k + 1) * size``; only bins holding a site are kept.
    - ``"promoters"``: a window around the transcription start site (TSS) of every gene of
      :func:`epiformer.datasets.hg19_genes` (the `start` of ``+`` strand genes, the `end` of ``-`` strand ones);
      see `promoter`.
    - ``"genes"``: gene bodies, `start` to `end`, of the same table.
    - ``"cpg_islands"``: the UCSC CpG islands of :func:`epiformer.datasets.hg19_cpg_islands` (1-based, inclusive).
    - the path of a BED file (plain or gzip): tab-separated `chrom`, `start` (0-based), `end` (exclusive), an
      optional `name`; ``track`` / ``browser`` / ``#`` lines and a column-name row at the top are skipped.
    - a DataFrame with columns `chrom`, `start`, `end` counted as `coordinates` says (or its
      ``attrs["coordinates"]``), and optionally `name`; its other columns are carried into the output `var`.

    The bundled gene and island tables are on hg19 (GRCh37) and only make sense for sites on hg19; for another
    build pass a BED file or a DataFrame of that build.

    Parameters
    ----------
    data
        Cells (or samples) x sites with integer layers `mc` and `cov` and `var['chrom']`, `var['pos']` (1-based),
        as :func:`epiformer.io.read_bedmethyl` writes them; or a :class:`~mudata.MuData` of such modalities
        (one per methylation context, e.g. ``mCG`` and ``mCH``).
    regions
        What to sum over: a bin size, ``"promoters"``, ``"genes"``, ``"cpg_islands"``, a BED path or a DataFrame
        (see above).
    coordinates
        How the `start` / `end` of a `regions` DataFrame count: ``"0-based"`` (half-open, as BED, bioframe and
        pyranges) or ``"1-based"`` (inclusive, as `var['pos']` and the bundled gene table). `None` takes
        ``regions.attrs["coordinates"]``; a table that says neither is refused (tables epiformer made, indexed
        ``chrom:start-end``, are 1-based).
    mod
        With a :class:`~mudata.MuData`, the modality (or modalities) to aggregate; `None` aggregates every
        modality. Ignored for an :class:`~anndata.AnnData`.
    promoter
        ``(upstream, downstream)`` bp of the promoter window: with ``"promoters"``, a ``+`` strand gene's
        promoter spans ``TSS - upstream`` to ``TSS + downstream``, a ``-`` strand gene's ``TSS - downstream`` to
        ``TSS + upstream`` (inclusive, so ``upstream + downstream + 1`` bp).
    min_sites
        Regions holding fewer input sites are dropped (regions holding none always are).
    fraction
        Also write ``.X``, the methylated fraction ``mc / cov`` of every region (dense float32, NaN where a cell
        has no read in a region). With `False`, ``.X`` is empty and only the count layers are written.

    Returns
    -------
    For an AnnData, a new AnnData of the same cells x regions; for a MuData, a new MuData with the same modality
    names (the aggregated ones), each such an AnnData, the layout scvi-tools' ``METHYLVI.setup_mudata`` reads
    (``mc_layer="mc"``, ``cov_layer="cov"``, one modality per methylation context). Each AnnData holds

    `obs`
        A copy of the input `obs`.
    `var`
        One row per region holding at least `min_sites` sites, in chromosome (input order), start and end order,
        indexed by gene name (made unique) for genes and promoters, by `name` where the regions carry one, else by
        ``chrom:start-end``; columns `chrom` (named as in the input `var`), `start`, `end` (1-based, inclusive),
        `n_sites` (input sites in the region), `name` where named, and the table's other columns (`strand`,
        `gene_type` for genes and promoters, and `tss` for promoters).
    `layers['mc']`, `layers['cov']`
        CSR int32 read counts summed over each region.
    `X`
        The methylated fraction, when `fraction`.
    `uns['aggregate_regions']`
        `params` (the regions, `promoter`, `min_sites`, `fraction`), `n_regions`, `n_sites_assigned` (sites in at
        least one kept region) and `n_sites_outside` (the others).

    The input is never modified. A warning is given when sites lie on chromosomes without any region, or when
    more than 99 % of the sites fall in no region.
    """
    spec = _resolve_regions(regions, promoter, coordinates)
    if isinstance(data, MuData):
        names = _modality_names(data, mod)
        with timed("aggregate_regions") as written:
            parts = {name: _aggregate_one(data.mod[name], spec, min_sites, fraction, name) for name in names}
            with warnings.catch_warnings():
                # contexts share their regions, so var_names intersect by design; mudata only notes it cannot join them
                warnings.filterwarnings(
                    "ignore", message="Cannot join columns with the same name", category=UserWarning
                )
                out = MuData(parts)
            _copy_global_obs(data, out)
            written.append(f"a MuData of {len(names)} modalities")
        return out
    with timed("aggregate_regions") as written:
        out = _aggregate_one(data, spec, min_sites, fraction, None)
        written.append(f"{out.n_vars} regions")
    return out


class _Regions(NamedTuple):
    """What to sum over: a bin size, or a region table (1-based, inclusive); with the parameters to record."""

    bin_size: int | None
    table: pd.DataFrame | None
    params: dict


def _resolve_regions(regions: object, promoter: tuple[int, int], coordinates: str | None) -> _Regions:
    """The bin size or the region table that `regions` names, checked before any data is read."""
    params = {"promoter": [int(promoter[0]), int(promoter[1])]}
    bin_size = _bin_size(regions)
    if bin_size is not None:
        return _Regions(bin_size, None, {"regions": f"bins of {bin_size} bp", **params})
    table, description = _region_table(regions, promoter, coordinates)
    return _Regions(None, table, {"regions": description, **params})


def _aggregate_one(adata: AnnData, spec: _Regions, min_sites: int, fraction: bool, modality: str | None) -> AnnData:
    """One AnnData of sites summed over the regions of `spec`."""
    what = "the data" if modality is None else f"modality {modality!r}"
    if min_sites < 1:
        msg = f"`min_sites` must be at least 1, got {min_sites}."
        raise ValueError(msg)
    mc, cov = count_layers(adata, what=what[0].upper() + what[1:])
    check_cpg_positions(adata)
    site_chroms = adata.var[Key.var.chrom].astype(str).to_numpy()
    pos = cpg_positions(adata.var, what=what)  # both strands of a CpG at its + C, in the same region
    chrom_names, site_codes = _chrom_codes(site_chroms)
    if spec.bin_size is not None:
        indicator, var = _bin_indicator(site_codes, pos, chrom_names, spec.bin_size)
    else:
        indicator, var = _interval_indicator(site_codes, pos, chrom_names, spec.table)
    n_sites = np.asarray(indicator.getnnz(axis=0), dtype=np.int64)
    keep = np.flatnonzero(n_sites >= min_sites)
    if not keep.size:
        _raise_no_region(what, chrom_names, spec, n_matched=len(var), min_sites=min_sites)
    with_region = {normalize_chrom(c) for c in var[Key.var.chrom]}
    indicator = indicator[:, keep]
    var = var.iloc[keep].copy()
    var.insert(3, "n_sites", n_sites[keep])
    assigned = int((indicator.getnnz(axis=1) > 0).sum())
    _warn_outside(what, adata.n_vars, assigned, site_codes, chrom_names, with_region)
    out = counts_anndata(
        _sum_into(mc, indicator), _sum_into(cov, indicator), obs=adata.obs.copy(), var=var, beta=fraction
    )
    record_params(
        out,
        Key.uns.aggregate_regions,
        {**spec.params, "min_sites": int(min_sites), "fraction": bool(fraction)},
        n_regions=int(out.n_vars),
        n_sites_assigned=assigned,
        n_sites_outside=int(adata.n_vars - assigned),
    )
    return out


def _sum_into(counts: sparse.csr_matrix, indicator: sparse.csr_matrix) -> sparse.csr_matrix:
    """``counts @ indicator``: cells x sites summed into cells x regions.

    When no site lies in two regions (bins, most annotations) each entry's column is relabelled to its region and
    duplicates are summed, which is several times faster than the sparse product; otherwise the product is taken.
    """
    if counts.nnz and counts.sum(axis=1, dtype=np.int64).max() >= np.iinfo(np.int32).max:
        counts = counts.astype(np.int64)  # a cell's reads could overflow int32 when summed; counts_anndata refuses
    per_site = np.diff(indicator.indptr)
    if per_site.size and per_site.max() > 1:
        return sparse.csr_matrix(counts @ indicator)
    region = np.full(indicator.shape[0], -1, dtype=np.int32 if indicator.shape[1] < 2**31 else np.int64)
    region[per_site == 1] = indicator.indices
    columns = region[counts.indices]
    inside = columns >= 0
    if inside.all():
        data, indptr = counts.data.copy(), counts.indptr.copy()  # sum_duplicates works in place
    else:
        data, columns = counts.data[inside], columns[inside]
        kept = np.concatenate([[0], np.cumsum(inside, dtype=np.int64)])
        indptr = kept[counts.indptr]
    out = sparse.csr_matrix((data, columns, indptr), shape=(counts.shape[0], indicator.shape[1]))
    out.sum_duplicates()
    return out


def _modality_names(mdata: MuData, mod: str | Sequence[str] | None) -> list[str]:
    """The modalities to aggregate, each checked to hold the count layers."""
    names = list(mdata.mod) if mod is None else [mod] if isinstance(mod, str) else list(mod)
    absent = [n for n in names if n not in mdata.mod]
    if absent:
        msg = f"Modality {absent[0]!r} not found in the MuData; available: {list(mdata.mod)}. Pass `mod=`."
        raise KeyError(msg)
    if not names:
        msg = "The MuData has no modality to aggregate."
        raise ValueError(msg)
    for name in names:
        layers = set(mdata.mod[name].layers.keys())
        if not {Key.layers.mc, Key.layers.cov} <= layers:
            msg = (
                f"Modality {name!r} has no layers {Key.layers.mc!r} and {Key.layers.cov!r} (methylated and total "
                "reads per site). Pass `mod=` to aggregate only the methylation modalities."
            )
            raise KeyError(msg)
    return names


def _copy_global_obs(source: MuData, target: MuData) -> None:
    """Copy the MuData-level `obs` columns of `source` (not those of its modalities) into `target`."""
    prefixes = tuple(f"{name}:" for name in source.mod)
    shared = [c for c in source.obs.columns if not str(c).startswith(prefixes)]
    if shared and source.obs_names.equals(target.obs_names):
        for column in shared:
            target.obs[column] = source.obs[column].to_numpy().copy()


def _chrom_codes(chroms: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Chromosome names (as first written in the data, in order of appearance) and each site's code into them."""
    raw_codes, raw_names = pd.factorize(pd.Series(chroms, dtype=object), sort=False)
    normal_codes, normal_names = pd.factorize(pd.Series([normalize_chrom(c) for c in raw_names], dtype=object))
    # the first raw spelling of each normalised name ("chr22" and "22" in one data set become one chromosome)
    first = pd.Series(np.arange(len(raw_names))).groupby(normal_codes, sort=True).first().to_numpy()
    names = [str(raw_names[i]) for i in first]
    return names, normal_codes[raw_codes].astype(np.int64)


def _bin_size(regions: object) -> int | None:
    """The bin size in bp when `regions` names fixed bins, else `None`."""
    if isinstance(regions, bool):
        return None
    if isinstance(regions, int | np.integer):
        size = int(regions)
    elif isinstance(regions, str) and (match := _BIN_SIZE.match(regions)):
        value = float(match["number"]) * _UNITS[match["unit"].lower()]
        if value != round(value):
            msg = f"Bin size {regions!r} is not a whole number of bp."
            raise ValueError(msg)
        size = round(value)
    else:
        return None
    if size < 1:
        msg = f"The bin size must be at least 1 bp, got {regions!r}."
        raise ValueError(msg)
    return size


def _bin_indicator(
    site_codes: np.ndarray, pos: np.ndarray, chrom_names: list[str], bin_size: int
) -> tuple[sparse.csr_matrix, pd.DataFrame]:
    """Sites x occupied bins indicator, and the bins' `chrom`, `start`, `end`."""
    key = locus_keys(site_codes, (pos - 1) // bin_size)
    bins, column = np.unique(key, return_inverse=True)
    codes, index = bins >> 32, bins & (POS_LIMIT - 1)
    starts = index * bin_size + 1
    var = _frame(codes, starts, starts + bin_size - 1, chrom_names)
    n = len(key)
    indicator = sparse.csr_matrix(
        (np.ones(n, dtype=np.int32), column.astype(np.int64), np.arange(n + 1)), shape=(n, len(bins))
    )
    return indicator, var


def _interval_indicator(
    site_codes: np.ndarray, pos: np.ndarray, chrom_names: list[str], table: pd.DataFrame
) -> tuple[sparse.csr_matrix, pd.DataFrame]:
    """Sites x regions indicator (a site in overlapping regions is in each), and the regions' `var`."""
    lookup = {normalize_chrom(name): code for code, name in enumerate(chrom_names)}
    region_codes = np.array([lookup.get(normalize_chrom(c), -1) for c in table[Key.var.chrom]], dtype=np.int64)
    table = table.loc[region_codes >= 0]
    region_codes = region_codes[region_codes >= 0]
    starts = table[Key.var.start].to_numpy(np.int64)
    ends = table[Key.var.end].to_numpy(np.int64)
    order = np.lexsort((ends, starts, region_codes))
    table, region_codes, starts, ends = table.iloc[order], region_codes[order], starts[order], ends[order]
    site_keys = locus_keys(site_codes, pos)
    site_order = np.argsort(site_keys, kind="stable")
    sorted_keys = site_keys[site_order]
    lo = np.searchsorted(sorted_keys, locus_keys(region_codes, np.minimum(starts, POS_LIMIT - 1)), side="left")
    hi = np.searchsorted(sorted_keys, locus_keys(region_codes, np.minimum(ends, POS_LIMIT - 1)), side="right")
    counts = hi - lo
    first = np.cumsum(counts) - counts
    rows = site_order[np.arange(counts.sum()) + np.repeat(lo - first, counts)]
    cols = np.repeat(np.arange(len(table)), counts)
    indicator = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(len(site_keys), len(table))
    )
    var = _frame(region_codes, starts, ends, chrom_names, names=table.get("name"))
    for column in table.columns:
        if column not in (Key.var.chrom, Key.var.start, Key.var.end, "n_sites"):
            var[column] = table[column].to_numpy()
    return indicator, var


def _frame(
    codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, chrom_names: list[str], *, names: pd.Series | None = None
) -> pd.DataFrame:
    """Region `var`: chromosome named as in the data, 1-based inclusive bounds, index ``chrom:start-end`` or `names`."""
    chroms = np.asarray(chrom_names, dtype=object)[codes] if len(codes) else np.array([], dtype=object)
    labels = [f"{c}:{s}-{e}" for c, s, e in zip(chroms, starts, ends, strict=True)]
    if names is not None:
        given = names.astype(object).to_numpy()
        labels = [
            str(n) if not pd.isna(n) and str(n) not in ("", ".") else label
            for n, label in zip(given, labels, strict=True)
        ]
    var = pd.DataFrame(
        {Key.var.chrom: chroms.astype(str), Key.var.start: starts, Key.var.end: ends},
        index=make_index_unique(pd.Index(labels, dtype=object)),
    )
    return var


def _region_table(regions: object, promoter: tuple[int, int], coordinates: str | None) -> tuple[pd.DataFrame, str]:
    """The regions as `chrom`, `start`, `end` (1-based, inclusive), optional `name` and extras, with a description."""
    if isinstance(regions, pd.DataFrame):
        table, convention = region_table(regions, coordinates)
        return table, f"DataFrame of {len(regions)} regions ({convention})"
    if isinstance(regions, str) and regions in NAMED_REGIONS:
        if regions == "cpg_islands":
            return _hg19.cpg_islands(), "cpg_islands: UCSC CpG islands on hg19"
        genes = _genes()
        if regions == "genes":
            return genes, "genes: GENCODE gene bodies on hg19"
        return _promoters(genes, promoter), f"promoters: hg19 GENCODE TSS -{promoter[0]} / +{promoter[1]} bp"
    if isinstance(regions, os.PathLike | str):
        path = Path(regions)
        if path.is_file():
            return read_bed(path), f"BED file {path}"
        if isinstance(regions, os.PathLike) or "/" in str(regions) or re.search(r"\.(bed|gz|tsv|txt)$", str(regions)):
            msg = f"No such BED file: {path}. Pass an existing path, or a DataFrame with chrom, start, end."
            raise FileNotFoundError(msg)
    msg = (
        f"Unknown `regions={regions!r}`: pass a bin size ('100kb', '10kb', '1Mb', '5000bp'), one of "
        f"{list(NAMED_REGIONS)}, the path of a BED file, or a DataFrame with chrom, start, end (1-based, inclusive)."
    )
    raise ValueError(msg)


def _genes() -> pd.DataFrame:
    """The bundled hg19 genes as a region table named by gene (1-based, inclusive)."""
    return _hg19.genes().rename(columns={"gene_name": "name"})


def _promoters(genes: pd.DataFrame, promoter: tuple[int, int]) -> pd.DataFrame:
    """Promoter windows of `genes` around each strand-aware TSS."""
    upstream, downstream = (int(x) for x in promoter)
    if upstream < 0 or downstream < 0:
        msg = f"`promoter` must be two non-negative distances (upstream, downstream), got {promoter!r}."
        raise ValueError(msg)
    minus = (genes[Key.var.strand] == "-").to_numpy()
    tss = np.where(minus, genes[Key.var.end].to_numpy(np.int64), genes[Key.var.start].to_numpy(np.int64))
    out = genes.copy()
    out[Key.var.start] = np.maximum(tss - np.where(minus, downstream, upstream), 1)
    out[Key.var.end] = tss + np.where(minus, upstream, downstream)
    out.insert(3, "tss", tss)
    return out


def _warn_outside(
    what: str, n_sites: int, assigned: int, site_codes: np.ndarray, chrom_names: list[str], with_region: set[str]
) -> None:
    """Warn when sites sit on chromosomes without any region, or when nearly all fall in no region."""
    lonely = [code for code, name in enumerate(chrom_names) if normalize_chrom(name) not in with_region]
    n_lonely = int(np.isin(site_codes, lonely).sum()) if lonely else 0
    outside = n_sites - assigned
    if n_lonely:
        warn(
            f"{outside} of {n_sites} sites of {what} fall in no region; {n_lonely} of them lie on chromosomes "
            f"without any region ({first_items([chrom_names[c] for c in lonely])}). Check the chromosome names and "
            "the genome build of the regions.",
            UserWarning,
        )
    elif outside > _OUTSIDE_WARN * n_sites:
        warn(
            f"{outside} of {n_sites} sites of {what} fall in no region. Check that the regions are on the same "
            "genome build as the sites (the bundled genes and islands are hg19).",
            UserWarning,
        )


def _raise_no_region(what: str, chrom_names: list[str], spec: _Regions, *, n_matched: int, min_sites: int) -> None:
    """Raise the error for an aggregation that leaves no region, naming the likely causes."""
    description = spec.params["regions"]
    if min_sites > 1 and n_matched:
        msg = f"No region of {description} holds {min_sites} or more sites of {what}; lower `min_sites`."
        raise ValueError(msg)
    theirs = (
        ""
        if spec.table is None
        else f" and the regions are on {first_items(list(pd.unique(spec.table[Key.var.chrom])))}"
    )
    msg = (
        f"No site of {what} falls in any region of {description}. Likely causes: chromosome names that do not "
        f"match (the data has {first_items(chrom_names)}{theirs}; names are matched with or without 'chr', so "
        "'chr22' and '22' are the same), a different genome build (the bundled genes and CpG islands are hg19), "
        "or 0-based starts in a DataFrame (a DataFrame is 1-based and inclusive; BED files are read as 0-based)."
    )
    raise ValueError(msg)
