"""Probe coordinates from Illumina / InfiniumAnnotation manifests, and sequencing sites mapped to probe IDs."""

from __future__ import annotations

import copy as _copy
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._constants import Key
from epiformer._logging import logger, timed, warn
from epiformer._probe_ids import collapse_suffixes
from epiformer._sequence import normalize_chrom
from epiformer._sites import check_min_coverage, count_layers, counts_anndata, cpg_positions, locus_keys
from epiformer._utils import copy_data
from epiformer._validation import check_cpg_positions, first_items, warn_all_missing_rows
from epiformer.io import read_manifest

Build = Literal["hg19", "hg38"]
_COLUMNS = (Key.var.chrom, Key.var.pos, Key.var.strand)
#: A shifted reading of the positions is taken as evidence of an off-by-one error when it places at least this many
#: sites on probe CpGs, and at least twice as many as the positions as given.
_MIN_SHIFTED = 5


def _manifest_table(manifest: str | Path | pd.DataFrame, build: str | None) -> tuple[pd.DataFrame, str, str | None]:
    """The manifest as :func:`epiformer.io.read_manifest` returns it, where it came from, and its build."""
    if isinstance(manifest, str | Path):
        table = read_manifest(manifest, build=build)
        return table, str(manifest), table.attrs.get("build")
    if not isinstance(manifest, pd.DataFrame):
        msg = f"`manifest` must be a path or the DataFrame of `ef.io.read_manifest`, got {type(manifest).__name__}."
        raise ValueError(msg)
    missing = [c for c in _COLUMNS if c not in manifest.columns]
    if missing:
        msg = (
            f"The manifest table lacks columns {missing}; it needs `chrom`, `pos` (1-based C) and `strand`, indexed "
            "by probe ID, as `ef.io.read_manifest` returns it."
        )
        raise KeyError(msg)
    if manifest.index.has_duplicates:
        dups = list(manifest.index[manifest.index.duplicated()].unique())
        msg = f"The manifest table lists probe IDs more than once: {first_items(dups)}."
        raise ValueError(msg)
    stated = manifest.attrs.get("build")
    if build is not None and stated is not None and build != stated:
        msg = f"The manifest table holds {stated} coordinates, but `build={build!r}` was passed; read the {build} one."
        raise ValueError(msg)
    return manifest, str(manifest.attrs.get("source", "(a DataFrame)")), build or stated


# ------------------------------------------------------------------------------------------------ annotate_probes


def _lookup_probes(names: pd.Index, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Manifest row of every name (-1: absent), whether its strand is ambiguous, and the number of ambiguous names.

    An exact ID match comes first; otherwise the ID without its EPICv2 suffix (``cg00000029_TC21`` ->
    ``cg00000029``) is matched to the manifest's IDs without theirs, accepted when every candidate probe sits on
    the same CpG (their strands may differ: the design strand of ``_TC`` and ``_BC`` replicates).
    """
    index = pd.Index(table.index.astype(str))
    rows = index.get_indexer(names)
    ambiguous_strand = np.zeros(len(names), dtype=bool)
    todo = np.flatnonzero(rows < 0)
    if not todo.size:
        return rows, ambiguous_strand, 0
    text = {c: table[c].astype("string").fillna("") for c in _COLUMNS}
    candidates = pd.DataFrame(
        {
            "bare": collapse_suffixes(index),
            "row": np.arange(len(index)),
            "locus": (text[Key.var.chrom] + ":" + text[Key.var.pos]).to_numpy(dtype=object),
            "strand": text[Key.var.strand].to_numpy(dtype=object),
        }
    ).groupby("bare", sort=False)
    first, n_loci, n_strands = candidates["row"].first(), candidates["locus"].nunique(), candidates["strand"].nunique()
    bare = collapse_suffixes(names[todo])
    at = first.index.get_indexer(bare)
    known = at >= 0
    unique = np.zeros(len(todo), dtype=bool)
    unique[known] = n_loci.to_numpy()[at[known]] == 1
    rows[todo[unique]] = first.to_numpy()[at[unique]]
    ambiguous_strand[todo[unique]] = n_strands.to_numpy()[at[unique]] > 1
    return rows, ambiguous_strand, int((known & ~unique).sum())


def annotate_probes(
    adata: AnnData,
    *,
    manifest: str | Path | pd.DataFrame,
    build: Build | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Annotate array probes with their genomic coordinates from a manifest.

    Probe IDs (`var_names`) are matched to the manifest exactly first; the rest by the ID without its EPICv2
    suffix, so ``cg00000029`` finds ``cg00000029_TC21`` in an EPICv2 manifest and ``cg00000029_TC21`` finds
    ``cg00000029`` in a 450k / EPIC one, when every candidate probe sits on the same CpG (`strand` is then
    missing if the candidates' strands differ). Probes absent from the manifest, or matched ambiguously, get
    missing values and a warning with their number.

    Parameters
    ----------
    adata
        Array data: samples x probes, probe IDs in `var_names`.
    manifest
        A manifest file (read with :func:`epiformer.io.read_manifest`) or the DataFrame it returns.
    build
        ``"hg19"`` or ``"hg38"``: which coordinates to read from a manifest that has both, checked against the
        build a manifest states; `None` takes the manifest's main coordinates.
    copy
        Return a modified copy instead of writing to `adata` in place.

    Returns
    -------
    `None`, or with ``copy=True`` the modified copy. Writes `var['chrom']`, `var['pos']` (nullable ``Int64``,
    1-based position of the C on the + strand) and `var['strand']`, and `uns['annotate_probes']` with `manifest`,
    `build`, `n_annotated` (probes found in the manifest), `n_unmapped` (found, but without coordinates there),
    `n_missing` (not found) and `n_ambiguous` (of those missing, the ones whose suffix-free ID names probes on
    different CpGs). Nothing is written if it raises.

    Raises
    ------
    ValueError
        If no probe ID is in the manifest, or the manifest's build is not `build`.
    """
    table, source, used_build = _manifest_table(manifest, build)
    names = pd.Index(adata.var_names.astype(str))
    rows, ambiguous_strand, n_ambiguous = _lookup_probes(names, table)
    found = rows >= 0
    if not found.any():
        msg = (
            f"None of the {len(names):,} probe IDs of `adata` ({first_items(names)}) is in the manifest {source} "
            f"({first_items(table.index)}): the probe IDs do not look like this manifest's. Pass the manifest of "
            "the array these data come from (450k, EPIC or EPICv2)."
        )
        raise ValueError(msg)
    picked = table.iloc[np.where(found, rows, 0)]
    values = {
        column: pd.Series(picked[column].to_numpy(), index=adata.var_names, dtype=picked[column].dtype).mask(~found)
        for column in _COLUMNS
    }
    values[Key.var.strand] = values[Key.var.strand].mask(ambiguous_strand)
    n_missing = int((~found).sum())
    n_unmapped = int((found & values[Key.var.pos].isna().to_numpy()).sum())

    adata = copy_data(adata) if copy else adata
    for column, series in values.items():
        adata.var[column] = series
    adata.uns[Key.uns.annotate_probes] = {
        "manifest": source,
        "build": used_build,
        "n_annotated": int(found.sum()),
        "n_unmapped": n_unmapped,
        "n_missing": n_missing,
        "n_ambiguous": n_ambiguous,
    }
    if n_missing:
        ambiguous = f" ({n_ambiguous:,} of them match probes on different CpGs once suffixes are dropped)"
        warn(
            f"{n_missing:,} of {len(names):,} probes are not in the manifest {source}"
            f"{ambiguous if n_ambiguous else ''}: {first_items(list(names[~found]))}. Their `var['chrom']`, "
            "`var['pos']` and `var['strand']` are missing.",
            UserWarning,
        )
    return adata if copy else None


# ------------------------------------------------------------------------------------------------- loci_to_probes


def _chrom_codes(data: pd.Series, probes: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Integer codes shared by both chromosome columns after dropping ``chr`` prefixes, and both sets of names."""
    data_codes, data_names = pd.factorize(data.astype(str), sort=False)
    probe_codes, probe_names = pd.factorize(probes.astype(str), sort=False)
    normal = pd.Index(pd.unique(np.array([normalize_chrom(c) for c in [*data_names, *probe_names]], dtype=object)))

    def to_code(names: pd.Index) -> np.ndarray:
        return normal.get_indexer([normalize_chrom(c) for c in names])

    return to_code(data_names)[data_codes], to_code(probe_names)[probe_codes], list(data_names), list(probe_names)


def _locate(var: pd.DataFrame, probes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[int, int], tuple]:
    """Where sites and probes meet: the CpG of every site (-1: none) and probe, and the number of sites on one.

    The counts are for the positions as given (key 0) and shifted by +1 / -1 base; the chromosome names of the
    data and the probes come last.
    """
    site_codes, probe_codes, data_chroms, probe_chroms = _chrom_codes(var[Key.var.chrom], probes[Key.var.chrom])
    site_keys = locus_keys(site_codes, cpg_positions(var))
    loci, probe_locus = np.unique(locus_keys(probe_codes, probes[Key.var.pos].to_numpy(np.int64)), return_inverse=True)
    index = pd.Index(loci)  # unique keys: a hash lookup
    site_locus = index.get_indexer(site_keys)
    counts = {0: int((site_locus >= 0).sum())}
    counts |= {d: int((index.get_indexer(site_keys + d) >= 0).sum()) for d in (1, -1)}
    return site_locus, probe_locus.ravel(), counts, (data_chroms, probe_chroms)


def _check_alignment(
    counts: dict[int, int], n_sites: int, source: str, build: str | None, chroms: tuple[list[str], list[str]]
) -> None:
    """Refuse positions that hit probe CpGs only when shifted by one base, or that hit none at all."""
    exact = counts[0]
    shift, shifted = max(((d, counts[d]) for d in (1, -1)), key=lambda item: item[1])
    if shifted >= _MIN_SHIFTED and shifted >= 2 * exact:
        cause = "0-based starts read as 1-based positions" if shift > 0 else "1-based positions read as 0-based starts"
        msg = (
            f"Only {exact:,} of the {n_sites:,} sites lie on probe CpGs of the manifest {source}, but {shifted:,} do "
            f"when shifted by {shift:+d} base: the positions look off by one. They are probably {cause}; read the "
            "calls again with the right `format=` of `ef.io.read_bedmethyl`, or fix `var['pos']` (the 1-based C; for "
            "'-' sites the C on the minus strand)."
        )
        raise ValueError(msg)
    if exact == 0:
        data, probes = chroms
        common = {normalize_chrom(c) for c in data} & {normalize_chrom(c) for c in probes}
        if not common:
            reason = (
                f"the data's chromosomes ({first_items(data)}) and the manifest's ({first_items(probes)}) have none "
                "in common, even without 'chr' prefixes"
            )
        else:
            reason = (
                f"both cover chromosomes {first_items(sorted(common))}, so the data are probably aligned to another "
                f"genome build than the manifest's ({build or 'build not stated'}); pass the manifest (or `build=`) "
                "of the genome the reads were aligned to"
            )
        msg = f"No site of the data lies on a probe CpG of the manifest {source}: {reason}."
        raise ValueError(msg)
    if shifted >= _MIN_SHIFTED and 2 * shifted >= exact:
        warn(
            f"{shifted:,} sites lie one base {'before' if shift > 0 else 'after'} a probe CpG (against {exact:,} on "
            "one): are minus-strand calls labelled '+' or '.'? Set `var['strand']` to '-' for them.",
            UserWarning,
        )


def _site_to_probe(site_locus: np.ndarray, probe_locus: np.ndarray, n_loci: int) -> sparse.csr_matrix:
    """Sites x probes indicator: 1 where a site lies on the CpG of a probe (several probes may share a CpG).

    `site_locus` and `probe_locus` give the CpG (an index below `n_loci`) of every site (-1: none) and probe.
    """
    on = np.flatnonzero(site_locus >= 0)
    sites = sparse.csr_matrix((np.ones(on.size, dtype=np.int64), (on, site_locus[on])), shape=(len(site_locus), n_loci))
    probes = sparse.csr_matrix(
        (np.ones(len(probe_locus), dtype=np.int64), (probe_locus, np.arange(len(probe_locus)))),
        shape=(n_loci, len(probe_locus)),
    )
    return (sites @ probes).tocsr()


def _drop_low(mc: sparse.csr_matrix, cov: sparse.csr_matrix, min_coverage: int) -> tuple[sparse.csr_matrix, ...]:
    """Remove the entries of both matrices where `cov` is below `min_coverage`."""
    keep = cov.copy()
    keep.data = (keep.data >= min_coverage).astype(np.int64)
    keep.eliminate_zeros()
    return mc.multiply(keep).tocsr(), cov.multiply(keep).tocsr()


def _probe_anndata(adata: AnnData, probes: pd.DataFrame, mc: sparse.csr_matrix, cov: sparse.csr_matrix) -> AnnData:
    """The samples of `adata` (obs, obsm and uns copied) over the covered probes, with beta values in ``.X``."""
    var = probes[list(_COLUMNS)].copy()
    var.attrs = {}
    var[Key.var.pos] = var[Key.var.pos].astype(np.int64)
    obs = adata.obs.copy()
    obs[Key.obs.n_probes_covered] = cov.getnnz(axis=1).astype(np.int64)
    out = counts_anndata(mc, cov, obs=obs, var=var, beta=True)
    for name, value in adata.obsm.items():
        out.obsm[name] = value.copy()
    out.uns = _copy.deepcopy(dict(adata.uns))
    return out


def loci_to_probes(
    adata: AnnData,
    *,
    manifest: str | Path | pd.DataFrame,
    build: Build | None = None,
    min_coverage: int = 1,
) -> AnnData:
    """Turn sequencing sites into array probes: read counts summed over the CpG of every manifest probe.

    A site lies on a probe when its CpG is the probe's: a ``+`` or ``.`` (strands combined) site at the probe's
    position, a ``-`` site one base after it (the C opposite the G). Chromosome names match with or without the
    ``chr`` prefix. Both strands of a CpG are summed; entries under `min_coverage` reads are then dropped. The
    result goes straight into :func:`epiformer.tl.embed` or :func:`epiformer.tl.impute`.

    Before counting, the positions are checked against shifted readings: if moving every site by one base places at
    least twice as many (and at least 5) sites on probe CpGs, the positions are off by one and the call is refused
    (correct positions never match fewer probes than a shifted reading, since the neighbour of a CpG's C is its G).

    Parameters
    ----------
    adata
        Sequencing data as :func:`epiformer.io.read_bedmethyl` returns it: samples x sites, `var['chrom']`,
        `var['pos']` (1-based C) and optionally `var['strand']` (``"."``, ``"+"``, ``"-"``; absent means
        ``"."``), integer layers `mc` (methylated reads) and `cov` (reads). `.X` is not read.
    manifest
        A manifest file (read with :func:`epiformer.io.read_manifest`) or the DataFrame it returns.
    build
        ``"hg19"`` or ``"hg38"``, the build the reads were aligned to: picks the coordinates of a manifest that
        has both and is checked against the build a manifest states; `None` takes the manifest's main ones.
    min_coverage
        Fewest reads (both strands together) for a sample's probe value to be kept.

    Returns
    -------
    A new AnnData: obs = the samples (a copy, plus `obs['n_probes_covered']`), var = the manifest's probes that at
    least one sample covers, in manifest order, with `chrom`, `pos`, `strand` from the manifest; CSR int32 layers
    `mc` and `cov`; `.X` the float32 beta value (mc / cov, NaN where uncovered); `obsm` and `uns` copied, and
    `uns['loci_to_probes']` with `manifest`, `build`, `min_coverage`, `n_probes` (in the manifest),
    `n_probes_mapped` (with coordinates), `n_probes_covered`, `n_sites` and `n_sites_on_probes`. `adata` is not
    modified.

    Raises
    ------
    KeyError
        If `adata` lacks the `mc` / `cov` layers or `var['chrom']` / `var['pos']`.
    ValueError
        If the positions look off by one, no site lies on a probe CpG (chromosome names or genome build differ),
        no sample has `min_coverage` reads on any probe, the counts or strands are invalid, or `min_coverage` is
        below 1.
    """
    check_min_coverage(min_coverage)
    with timed("ef.pp.loci_to_probes") as written:
        mc, cov = count_layers(adata, what="`adata`")
        check_cpg_positions(adata)
        table, source, used_build = _manifest_table(manifest, build)
        mapped = np.flatnonzero(table[Key.var.pos].notna().to_numpy())
        if not mapped.size:
            msg = f"The manifest {source} has no probe with coordinates."
            raise ValueError(msg)
        probes = table.iloc[mapped]
        site_locus, probe_locus, counts, chroms = _locate(adata.var, probes)
        _check_alignment(counts, adata.n_vars, source, used_build, chroms)

        to_probe = _site_to_probe(site_locus, probe_locus, int(probe_locus.max()) + 1)
        probe_mc, probe_cov = _drop_low((mc @ to_probe).tocsr(), (cov @ to_probe).tocsr(), min_coverage)
        covered = np.flatnonzero(probe_cov.getnnz(axis=0) > 0)
        if not covered.size:
            msg = (
                f"{counts[0]:,} sites lie on probe CpGs of the manifest {source}, but no sample has {min_coverage} or "
                "more reads on any probe; lower `min_coverage`."
            )
            raise ValueError(msg)
        out = _probe_anndata(adata, probes.iloc[covered], probe_mc[:, covered], probe_cov[:, covered])
        summary = {
            "manifest": source,
            "build": used_build,
            "min_coverage": int(min_coverage),
            "n_probes": int(len(table)),
            "n_probes_mapped": int(mapped.size),
            "n_probes_covered": int(covered.size),
            "n_sites": int(adata.n_vars),
            "n_sites_on_probes": counts[0],
        }
        out.uns[Key.uns.loci_to_probes] = summary
        logger.info(
            "ef.pp.loci_to_probes: %d of %d sites lie on probe CpGs; %d of the manifest's %d probes covered "
            "(at least %d reads in a sample)",
            counts[0],
            adata.n_vars,
            covered.size,
            len(table),
            min_coverage,
        )
        warn_all_missing_rows(out.X, list(out.obs_names))
        written += ["a new AnnData", f"obs[{Key.obs.n_probes_covered!r}]", f"uns[{Key.uns.loci_to_probes!r}]"]
    return out
