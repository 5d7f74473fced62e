"""Seeded synthetic paired expression + methylation with a planted sequence-plus-expression rule, and a spatial grid."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scipy.special import expit

from epiformer._cache import cache_dir as resolve_cache_dir
from epiformer._constants import Key
from epiformer._files import atomic_path
from epiformer._utils import as_generator
from epiformer._validation import check_unique

#: Oriented promoter window around a TSS (bp upstream, bp downstream) inside which a CpG can be expression-driven.
PROMOTER_WINDOW = (1000, 500)
#: Half-width of the CpG island laid over a CpG-island promoter.
ISLAND_HALF_WIDTH = 600
#: Half-width of the window in which the CpG density of the sequence rule is counted.
DENSITY_HALF_WIDTH = 100

RULE = (
    "logit(beta[s, c]) = base(density_c) + offset_c + driven_c * (-1.5 - w_c * z[s, driver_c]) + eps[s, c]; "
    "base(n) = clip(2.5 - 0.35 * (n - 2), -4, 3) with n the number of CpGs within +-100 bp of c (itself included); "
    "a CpG is expression-driven when it lies 1,000 bp upstream to 500 bp downstream of the TSS of a gene whose "
    "promoter is not a CpG island, and outside every island; its driver is the nearest such gene; z is that gene's "
    "log expression standardised over samples; w_c ~ U(1.5, 2.5), offset_c ~ N(0, 0.3^2), eps ~ N(0, noise^2)."
)

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_BACKGROUND = [0.29, 0.21, 0.21, 0.29]
_GC_RICH = [0.15, 0.35, 0.35, 0.15]


def _cpg_starts(codes: np.ndarray) -> np.ndarray:
    """0-based indices of the C of every CG dinucleotide."""
    return np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))


def _in_intervals(pos: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each position lies in any of the (1-based, inclusive) intervals."""
    inside = np.zeros(len(pos), dtype=bool)
    order = np.argsort(pos)
    sorted_pos = pos[order]
    for s, e in zip(starts, ends, strict=True):
        lo, hi = np.searchsorted(sorted_pos, [s, e + 1])
        inside[order[lo:hi]] = True
    return inside


def _write_fasta(records: dict[str, np.ndarray], folder: Path, *, width: int = 60) -> Path:
    """Write the sequences (base codes) to a FASTA named by their content hash; reuse an existing one."""
    digest = hashlib.sha1()
    for name, codes in records.items():
        digest.update(name.encode())
        digest.update(codes.tobytes())
    path = folder / f"synthetic_multiome_{digest.hexdigest()[:16]}.fa"
    if not path.is_file():
        lines = []
        for name, codes in records.items():
            text = _BASES[codes].tobytes()
            lines.append(f">{name}\n".encode())
            lines.extend(text[i : i + width] + b"\n" for i in range(0, len(text), width))
        with atomic_path(path) as tmp:  # concurrent callers never see half a file
            tmp.write_bytes(b"".join(lines))
    return path


def synthetic_multiome(
    n_samples: int = 200,
    n_genes: int = 100,
    n_cpgs: int = 2000,
    *,
    gene_names: Sequence[str] | None = None,
    frac_driven: float = 0.2,
    frac_island_promoter: float = 0.15,
    n_chroms: int = 3,
    n_groups: int = 4,
    library_size: float = 1e5,
    noise: float = 0.3,
    missing_rate: float = 0.01,
    cache_dir: str | Path | None = None,
    random_state: int | np.random.Generator | None = 0,
):
    """Paired expression and methylation of the same samples, with a synthetic genome and a planted rule.

    A synthetic genome of `n_chroms` chromosomes is drawn (CpG-depleted background, CpG islands over half
    of the promoters and a few orphan islands) and written as an indexed FASTA to the cache folder, so the
    sequences around the CpGs can be read with :func:`epiformer.pp.cpg_sequences` as for a real genome.
    Genes lie along it every 8-25 kb. Expression comes from a few latent programs shared by groups of
    samples, drawn as Poisson counts. Methylation follows the planted rule

    ``logit(beta[s, c]) = base(density_c) + offset_c + driven_c (-1.5 - w_c z[s, driver_c]) + eps[s, c]``

    - sequence: ``base(n) = clip(2.5 - 0.35 (n - 2), -4, 3)``, `n` the number of CpGs within +-100 bp of
      the CpG (islands are unmethylated, CpG-poor DNA methylated);
    - expression: a CpG lying 1,000 bp upstream to 500 bp downstream of the TSS of a gene without a
      CpG-island promoter (and outside every island) is *expression-driven*: its driver is the nearest such
      gene, `z` that gene's log expression standardised over samples and ``w_c ~ U(1.5, 2.5)``, so
      methylation falls as the gene's expression rises;
    - ``offset_c ~ N(0, 0.3^2)`` per CpG and ``eps ~ N(0, noise^2)`` per value are not predictable.

    A fraction `frac_driven` of the CpGs is drawn among expression-driven positions, `frac_island_promoter`
    in CpG-island promoters and the rest anywhere in the genome.

    Parameters
    ----------
    n_samples
        Number of samples (shared by both modalities).
    n_genes
        Number of genes; ignored when `gene_names` is given.
    n_cpgs
        Number of CpGs.
    gene_names
        Names for the genes (for example the `var_names` of a real data set to predict on later).
    frac_driven
        Fraction of CpGs drawn among expression-driven positions (fewer when the genome has too few).
    frac_island_promoter
        Fraction of CpGs drawn inside CpG-island promoters.
    n_chroms
        Number of chromosomes (``chr1`` ...).
    n_groups
        Number of sample groups (each with its own expression programme), in `obs['group']`.
    library_size
        Typical number of RNA molecules per sample.
    noise
        Standard deviation of the per-value noise on the logit scale.
    missing_rate
        Probability that a beta value is missing (NaN).
    cache_dir
        Folder for the genome FASTA; default ``$EPIFORMER_CACHE``, else ``~/.cache/epiformer``. The file is
        named by a hash of its content and reused when present.
    random_state
        Seed or generator; the same seed gives the same data and the same FASTA.

    Returns
    -------
    :class:`~mudata.MuData` with shared `obs` (samples; `obs['group']`) and

    `mod['rna']`
        Counts in `layers['counts']` and `log1p(counts per 10,000)` in `.X`; `var` has `chrom`, `start`,
        `end`, `strand` (1-based), `tss` and `island_promoter`.
    `mod['methyl']`
        Float32 betas (NaN = missing); `var` has `chrom`, `pos` (1-based C of the CpG) and the ground truth:
        `cpg_density`, `in_island`, `base_logit`, `expression_driven`, `driver_gene` (``""`` when none),
        `driver_weight` (``w_c``, 0 when none) and `tss_offset` (oriented distance to the driver's TSS).
    `uns['synthetic']`
        `fasta` (path of the genome), `rule` (the formula above) and the generator's parameters.
    """
    import mudata as md

    if gene_names is not None:
        gene_names = [str(g) for g in gene_names]
        check_unique(gene_names, what="gene names")
        n_genes = len(gene_names)
    if n_samples < 2 or n_cpgs < 1 or n_genes < n_chroms or n_chroms < 1:
        msg = "Need `n_samples >= 2`, `n_cpgs >= 1`, `n_chroms >= 1` and at least one gene per chromosome."
        raise ValueError(msg)
    if not (0 <= frac_driven and 0 <= frac_island_promoter and frac_driven + frac_island_promoter <= 1):
        msg = "`frac_driven` and `frac_island_promoter` must be non-negative and sum to at most 1."
        raise ValueError(msg)
    rng = as_generator(random_state)
    names = gene_names or [f"gene{i:04d}" for i in range(n_genes)]

    # genes along the chromosomes
    gene_chrom = np.sort(np.arange(n_genes) % n_chroms)
    strand = rng.choice(np.array(["+", "-"]), n_genes)
    length = rng.integers(2_000, 30_000, n_genes)
    island_promoter = rng.random(n_genes) < 0.5
    gaps = rng.integers(8_000, 25_000, n_genes)
    tss = np.empty(n_genes, dtype=np.int64)
    for c in range(n_chroms):
        rows = np.flatnonzero(gene_chrom == c)
        tss[rows] = 40_000 + np.cumsum(gaps[rows])
    start = np.where(strand == "+", tss, tss - length + 1)
    end = np.where(strand == "+", tss + length - 1, tss)

    # the genome
    chrom_names = [f"chr{c + 1}" for c in range(n_chroms)]
    records, cpg_tables = {}, []
    for c, chrom in enumerate(chrom_names):
        rows = np.flatnonzero(gene_chrom == c)
        size = int(max(tss[rows].max(), end[rows].max()) + 40_000)
        codes = rng.choice(4, size, p=_BACKGROUND).astype(np.uint8)
        depletion = np.full(size, 0.8)
        for g in rows[~island_promoter[rows]]:  # weak-CpG promoters: less depleted
            up, down = PROMOTER_WINDOW
            lo, hi = (tss[g] - up, tss[g] + down) if strand[g] == "+" else (tss[g] - down, tss[g] + up)
            depletion[lo - 1 : hi] = 0.5
        isl_start = tss[rows][island_promoter[rows]] - ISLAND_HALF_WIDTH
        isl_end = tss[rows][island_promoter[rows]] + ISLAND_HALF_WIDTH
        n_promoter_islands = len(isl_start)
        n_orphan = size // 300_000 + 1
        orphan = rng.integers(20_000, size - 20_000, n_orphan)
        isl_start, isl_end = np.concatenate([isl_start, orphan]), np.concatenate([isl_end, orphan + 999])
        for s, e in zip(isl_start, isl_end, strict=True):
            codes[s - 1 : e] = rng.choice(4, e - s + 1, p=_GC_RICH)
            depletion[s - 1 : e] = 0.0
        cg = _cpg_starts(codes)
        drop = cg[rng.random(len(cg)) < depletion[cg]]
        to_t = rng.random(len(drop)) < 0.5
        codes[drop[to_t]] = 3  # CG -> TG
        codes[drop[~to_t] + 1] = 0  # CG -> CA
        records[chrom] = codes
        pos = _cpg_starts(codes) + 1  # 1-based C
        density = np.searchsorted(pos, pos + DENSITY_HALF_WIDTH, side="right") - np.searchsorted(
            pos, pos - DENSITY_HALF_WIDTH, side="left"
        )
        keep = (pos > 2_000) & (pos < size - 2_000)
        pos, density = pos[keep], density[keep]
        in_island = _in_intervals(pos, isl_start, isl_end)
        in_isl_promoter = _in_intervals(pos, isl_start[:n_promoter_islands], isl_end[:n_promoter_islands])
        driver = np.full(len(pos), -1)
        best = np.full(len(pos), np.inf)
        offset = np.full(len(pos), np.nan)
        for g in rows[~island_promoter[rows]]:
            oriented = (pos - tss[g]) * (1 if strand[g] == "+" else -1)
            hit = (oriented >= -PROMOTER_WINDOW[0]) & (oriented <= PROMOTER_WINDOW[1]) & ~in_island
            closer = hit & (np.abs(oriented) < best)
            driver[closer], best[closer], offset[closer] = g, np.abs(oriented[closer]), oriented[closer]
        cpg_tables.append(
            pd.DataFrame(
                {
                    "chrom": chrom,
                    "pos": pos,
                    "cpg_density": density,
                    "in_island": in_island,
                    "island_promoter_cpg": in_isl_promoter,
                    "driver": driver,
                    "tss_offset": offset,
                }
            )
        )
    fasta = _write_fasta(records, resolve_cache_dir(cache_dir))
    candidates = pd.concat(cpg_tables, ignore_index=True)

    # which CpGs are measured
    driven_pool = np.flatnonzero(candidates["driver"].to_numpy() >= 0)
    island_pool = np.flatnonzero(candidates["island_promoter_cpg"].to_numpy())
    other_pool = np.setdiff1d(np.arange(len(candidates)), np.union1d(driven_pool, island_pool))
    n_driven = min(round(frac_driven * n_cpgs), len(driven_pool))
    n_island = min(round(frac_island_promoter * n_cpgs), len(island_pool))
    n_other = n_cpgs - n_driven - n_island
    if n_other > len(other_pool):
        msg = f"The synthetic genome has only {len(candidates)} usable CpGs; ask for fewer `n_cpgs` or more genes."
        raise ValueError(msg)
    chosen = np.concatenate(
        [
            rng.choice(driven_pool, n_driven, replace=False),
            rng.choice(island_pool, n_island, replace=False),
            rng.choice(other_pool, n_other, replace=False),
        ]
    )
    cpgs = candidates.iloc[np.sort(chosen)].reset_index(drop=True)

    # expression
    n_programs = 4
    group = rng.integers(0, n_groups, n_samples)
    factors = rng.normal(0, 1, (n_groups, n_programs))[group] + rng.normal(0, 0.5, (n_samples, n_programs))
    log_mean = rng.normal(0, 1, n_genes)[None, :] + factors @ rng.normal(0, 0.6, (n_genes, n_programs)).T
    probs = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    lib = np.exp(rng.normal(np.log(library_size), 0.25, n_samples))
    counts = rng.poisson(lib[:, None] * probs).astype(np.float32)
    logexpr = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4).astype(np.float32)
    sd = logexpr.std(axis=0)
    z = (logexpr - logexpr.mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    # methylation
    density = cpgs["cpg_density"].to_numpy()
    base = np.clip(2.5 - 0.35 * (density - 2), -4.0, 3.0)
    driver = cpgs["driver"].to_numpy()
    driven = driver >= 0
    weight = np.where(driven, rng.uniform(1.5, 2.5, n_cpgs), 0.0)
    logit = (
        base[None, :]
        + rng.normal(0, 0.3, n_cpgs)[None, :]
        + driven[None, :] * (-1.5 - weight[None, :] * z[:, np.maximum(driver, 0)])
        + rng.normal(0, noise, (n_samples, n_cpgs))
    )
    betas = expit(logit).astype(np.float32)
    betas[rng.random(betas.shape) < missing_rate] = np.nan

    obs_names = pd.Index([f"sample{i:04d}" for i in range(n_samples)])
    rna = AnnData(
        X=logexpr,
        obs=pd.DataFrame(index=obs_names),
        var=pd.DataFrame(
            {
                Key.var.chrom: np.asarray(chrom_names)[gene_chrom],
                Key.var.start: start,
                Key.var.end: end,
                Key.var.strand: strand,
                "tss": tss,
                "island_promoter": island_promoter,
            },
            index=pd.Index(names),
        ),
        layers={Key.layers.counts: counts},
    )
    methyl_var = pd.DataFrame(
        {
            Key.var.chrom: cpgs["chrom"].to_numpy(),
            Key.var.pos: cpgs["pos"].to_numpy(),
            "cpg_density": density,
            "in_island": cpgs["in_island"].to_numpy(),
            "base_logit": base,
            "expression_driven": driven,
            "driver_gene": np.where(driven, np.asarray(names, dtype=object)[np.maximum(driver, 0)], ""),
            "driver_weight": weight,
            "tss_offset": cpgs["tss_offset"].to_numpy(),
        },
        index=pd.Index([f"{c}:{p}" for c, p in zip(cpgs["chrom"], cpgs["pos"], strict=True)]),
    )
    methyl = AnnData(X=betas, obs=pd.DataFrame(index=obs_names), var=methyl_var)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mudata announces a change of its update() default
        mdata = md.MuData({Key.mod.rna: rna, Key.mod.methyl: methyl})
    mdata.obs["group"] = pd.Categorical([f"group{g}" for g in group])
    mdata.uns["synthetic"] = {
        "generator": "synthetic_multiome",
        "fasta": str(fasta),
        "rule": RULE,
        "params": {
            "frac_driven": frac_driven,
            "frac_island_promoter": frac_island_promoter,
            "n_chroms": n_chroms,
            "n_groups": n_groups,
            "library_size": library_size,
            "noise": noise,
            "missing_rate": missing_rate,
        },
    }
    return mdata


def synthetic_spatial(
    n_rows: int = 30,
    n_cols: int = 30,
    n_genes: int = 200,
    *,
    gene_names: Sequence[str] | None = None,
    n_domains: int = 3,
    frac_markers: float = 0.1,
    library_size: float = 2000,
    random_state: int | np.random.Generator | None = 0,
) -> AnnData:
    """Spatial transcriptomics counts on a grid of spots with planted spatial domains.

    Domains are the Voronoi cells of `n_domains` random centres on the grid. Each domain raises the log
    expression of its own marker genes (a fraction `frac_markers` of the genes, by 1.5-3) over a shared
    baseline; counts are Poisson with log-normal spot library sizes around `library_size`.

    Parameters
    ----------
    n_rows, n_cols
        Grid size; there are ``n_rows * n_cols`` spots.
    n_genes
        Number of genes; ignored when `gene_names` is given.
    gene_names
        Names for the genes.
    n_domains
        Number of spatial domains.
    frac_markers
        Fraction of genes that mark each domain.
    library_size
        Typical number of molecules per spot.
    random_state
        Seed or generator.

    Returns
    -------
    AnnData of CSR float32 counts in `.X` and `layers['counts']`, spot coordinates in `obsm['spatial']`,
    the domain of each spot in `obs['domain']` and, in `var['marker_of']`, the domain each gene marks
    (``""`` for none).
    """
    if gene_names is not None:
        gene_names = [str(g) for g in gene_names]
        check_unique(gene_names, what="gene names")
        n_genes = len(gene_names)
    if min(n_rows, n_cols, n_genes, n_domains) < 1 or not 0 <= frac_markers * n_domains <= 1:
        msg = "Grid size, `n_genes` and `n_domains` must be positive and `frac_markers * n_domains` at most 1."
        raise ValueError(msg)
    rng = as_generator(random_state)
    yy, xx = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    coords = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float64)
    centres = coords[rng.choice(len(coords), n_domains, replace=False)]
    domain = np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    n_markers = int(round(frac_markers * n_genes))
    genes = rng.permutation(n_genes)
    marker_of = np.full(n_genes, -1)
    effect = np.zeros((n_domains, n_genes))
    for d in range(n_domains):
        marks = genes[d * n_markers : (d + 1) * n_markers]
        marker_of[marks] = d
        effect[d, marks] = rng.uniform(1.5, 3.0, len(marks))
    log_mean = rng.normal(0, 1, n_genes)[None, :] + effect[domain]
    probs = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    lib = np.exp(rng.normal(np.log(library_size), 0.3, len(coords)))
    counts = sparse.csr_matrix(rng.poisson(lib[:, None] * probs).astype(np.float32))
    labels = np.array([f"domain{d}" for d in range(n_domains)])
    adata = AnnData(
        X=counts,
        obs=pd.DataFrame(
            {"domain": pd.Categorical(labels[domain], categories=labels)},
            index=pd.Index([f"spot{i:05d}" for i in range(len(coords))]),
        ),
        var=pd.DataFrame(
            {"marker_of": np.where(marker_of >= 0, labels[np.maximum(marker_of, 0)], "")},
            index=pd.Index(gene_names or [f"gene{i:04d}" for i in range(n_genes)]),
        ),
    )
    adata.layers[Key.layers.counts] = counts.copy()
    adata.obsm[Key.obsm.spatial] = coords
    adata.uns["synthetic"] = {"generator": "synthetic_spatial", "params": {"n_domains": n_domains}}
    return adata
