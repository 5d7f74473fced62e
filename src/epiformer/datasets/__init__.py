"""Datasets: real data bundled with the package and seeded synthetic generators with a known answer."""

# GenomeSegment lives in `ef.io`; `ef.datasets.GenomeSegment` keeps working for existing code.
from epiformer.io import GenomeSegment

from ._real import (
    blood_gse41169,
    geo_series_matrix_example,
    hg19_chr22_segment,
    hg19_cpg_islands,
    hg19_genes,
    imr90_wgbs_chr22,
    pbmc_small,
    visium_small,
)
from ._synthetic_methylome import synthetic_methylome
from ._synthetic_multiome import synthetic_multiome, synthetic_spatial
from ._synthetic_single_cells import synthetic_single_cell_methylation

__all__ = [
    "blood_gse41169",
    "geo_series_matrix_example",
    "hg19_chr22_segment",
    "hg19_cpg_islands",
    "hg19_genes",
    "imr90_wgbs_chr22",
    "pbmc_small",
    "synthetic_methylome",
    "synthetic_multiome",
    "synthetic_single_cell_methylation",
    "synthetic_spatial",
    "visium_small",
]
