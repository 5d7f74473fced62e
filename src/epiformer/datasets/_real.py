"""Real data bundled with the package (see ``data/README.md`` for sources and licences)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer import _hg19
from epiformer._constants import Key
from epiformer._sites import counts_anndata
from epiformer.io import GenomeSegment, read_geo_series_matrix, read_methylation_matrix

DATA = Path(__file__).parent / "data"


def geo_series_matrix_example() -> Path:
    """Path of a real GEO series matrix file (GSE41169, 5 samples x 37 CpGs) to try the reader on.

    Returns
    -------
    The path of the bundled ``GSE41169_series_matrix_excerpt.txt``.
    """
    return DATA / "GSE41169_series_matrix_excerpt.txt"


def blood_gse41169() -> AnnData:
    """Whole-blood Illumina 450k methylation of 10 people (GEO GSE41169), 20,000 CpGs.

    Normalised beta values from Horvath et al. (2012), as shipped in ``biolearn`` (BSD-3-Clause). The
    age, sex and disease status come from the study's series matrix and are known for the first 5 samples
    (NaN for the others).

    Returns
    -------
    AnnData of 10 samples x 20,000 CpGs (float32 betas) with `obs` columns `age` (years), `sex`,
    `disease` (``"control"`` or ``"schizophrenia"``) and `tissue`.
    """
    adata = read_methylation_matrix(DATA / "GSE41169_blood_betas_20k.parquet", orientation="cpgs_in_rows")
    meta = read_geo_series_matrix(geo_series_matrix_example()).obs
    disease_code = meta["diseasestatus (1=control, 2=scz patient)"].map({1: "control", 2: "schizophrenia"})
    adata.obs["age"] = meta["age"].reindex(adata.obs_names).astype(float)
    adata.obs["sex"] = pd.Categorical(meta["gender"].reindex(adata.obs_names).astype(object).str.lower())
    adata.obs["disease"] = pd.Categorical(disease_code.reindex(adata.obs_names))
    adata.obs["tissue"] = pd.Categorical(["whole blood"] * adata.n_obs)
    adata.uns["dataset"] = {"name": "GSE41169", "source": "GEO GSE41169 via biolearn 0.9.1 (BSD-3-Clause)"}
    return adata


def hg19_genes() -> pd.DataFrame:
    """GENCODE (v19 era) gene annotation on hg19.

    Returns
    -------
    DataFrame of 57,820 genes with columns `gene_name`, `chrom` (``chr1`` ...), `start`, `end` (1-based,
    inclusive), `strand` and `gene_type`.
    """
    return _hg19.genes()


def hg19_cpg_islands() -> pd.DataFrame:
    """UCSC CpG islands on hg19.

    Returns
    -------
    DataFrame of 30,344 islands with columns `chrom`, `start`, `end`, 1-based and inclusive (UCSC's 0-based
    starts plus one: each island begins with the C of a CpG and ends with its G).
    """
    return _hg19.cpg_islands()


def imr90_wgbs_chr22(*, beta: bool = False) -> AnnData:
    """Real whole-genome bisulfite sequencing of IMR90 fibroblasts: 12,914 CpGs of hg19 chr22:20-21 Mb.

    Two replicates from Lister et al. (2009), as shipped in the Bioconductor ``bsseq`` package's ``BS.chr22``
    example (Artistic-2.0), lifted to hg19 so the sites sit on the CpGs of :func:`hg19_chr22_segment`
    (at least 99 % of them). Strands are combined; the median coverage is 7-8 reads.

    Parameters
    ----------
    beta
        Also write ``.X``: methylated / total reads, NaN where a replicate does not cover a site.

    Returns
    -------
    AnnData of 2 replicates (``r1``, ``r2``) x 12,914 sites named ``chr22:pos``, with `var` columns
    `chrom`, `pos` (1-based position of the C on the + strand), `strand` (``"."``: strands combined) and
    `context21` (21 bp around the C), and sparse integer layers `mc` (methylated reads) and `cov` (reads).
    """
    table = pd.read_csv(DATA / "IMR90_WGBS_chr22_hg19.tsv.gz", sep="\t")
    var = pd.DataFrame(
        {
            Key.var.chrom: table["chrom"].astype(str).to_numpy(),
            Key.var.pos: table["pos_hg19"].to_numpy(np.int64),
            Key.var.strand: ".",
            "context21": table["context21"].to_numpy(),
        },
        index=pd.Index(table["chrom"] + ":" + table["pos_hg19"].astype(str)),
    )
    mc = table[["M_r1", "M_r2"]].to_numpy(np.int32).T
    cov = table[["Cov_r1", "Cov_r2"]].to_numpy(np.int32).T
    adata = counts_anndata(mc, cov, obs=pd.DataFrame(index=pd.Index(["r1", "r2"])), var=var, beta=beta)
    adata.uns["dataset"] = {
        "name": "IMR90_WGBS_chr22",
        "source": "Lister et al. 2009 via bsseq BS.chr22 (Artistic-2.0)",
    }
    return adata


def hg19_chr22_segment() -> GenomeSegment:
    """A real 1 Mb piece of the hg19 reference: chromosome 22, 20,000,001-21,000,000.

    The FASTA holds one record, ``22:20000001-21000000``, indexed for :mod:`pyfaidx`; it contains one 100 kb
    block of N and about 19,900 CpGs. Tools that take a FASTA covering only a region need its offset:
    base ``i`` (0-based) of the record is position ``20_000_001 + i`` of chromosome 22.

    Returns
    -------
    The FASTA path, record name, chromosome, 1-based start and end, and genome build.
    """
    return GenomeSegment(
        fasta=DATA / "hg19_chr22_20000001-21000000.fa",
        record="22:20000001-21000000",
        chrom="22",
        start=20_000_001,
        end=21_000_000,
        build="hg19",
    )


def annotate_gene_coordinates(adata: AnnData, genes: pd.DataFrame) -> None:
    """Add `chrom`, `start`, `end`, `strand` to `adata.var` from a gene table matched on `var_names`."""
    table = genes.drop_duplicates("gene_name").set_index("gene_name")
    found = table.reindex(adata.var_names)
    for col in (Key.var.chrom, Key.var.start, Key.var.end, Key.var.strand):
        adata.var[col] = found[col].to_numpy()


def pbmc_small() -> AnnData:
    """Real 10x PBMC single-cell RNA-seq: 80 cells x 230 genes of UMI counts.

    The PBMC3k subset shipped as ``pbmc_small`` in the R package SeuratObject (MIT; data 10x Genomics,
    CC BY 4.0), with its cluster labels.

    Returns
    -------
    AnnData with UMI counts (CSR float32) in `.X` and `layers['counts']`, the Seurat annotations in `obs`
    (clusters in `RNA_snn_res.1`) and hg19 gene coordinates in `var` (`chrom`, `start`, `end`, `strand`).
    """
    import anndata as ad

    adata = ad.read_h5ad(DATA / "pbmc_small_counts.h5ad")
    adata.layers[Key.layers.counts] = adata.X.copy()
    annotate_gene_coordinates(adata, hg19_genes())
    adata.uns["dataset"] = {"name": "pbmc_small", "source": "10x PBMC3k via SeuratObject 4.1.3 (CC BY 4.0 / MIT)"}
    return adata


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image read as floats in [0, 1] (matplotlib's PNG reader) back to the PNG's uint8, a quarter of the bytes."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def visium_small() -> AnnData:
    """A real 10x Visium sample cut to 100 spots x 100 genes (Ensembl IDs, GRCh38).

    As shipped in the squidpy test data (BSD-3-Clause; data 10x Genomics, CC BY 4.0). Read with
    :func:`scanpy.read_visium`, so :func:`scanpy.pl.spatial` draws it on the tissue image.

    Returns
    -------
    AnnData with integer counts (CSR) in `.X` and `layers['counts']`, spot coordinates in
    `obsm['spatial']` and the images (uint8, as in the PNG files) and scale factors in `uns['spatial']`.
    """
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scanpy points to squidpy.read.visium
        adata = sc.read_visium(DATA / "visium_small")
    adata.var_names_make_unique()
    for library in adata.uns["spatial"].values():
        library["images"] = {name: to_uint8(image) for name, image in library["images"].items()}
    adata.obsm[Key.obsm.spatial] = np.asarray(adata.obsm[Key.obsm.spatial], dtype=np.float64)
    adata.layers[Key.layers.counts] = adata.X.copy()
    adata.uns["dataset"] = {"name": "visium_small", "source": "10x Visium via squidpy 1.8.2 test data (CC BY 4.0)"}
    return adata
