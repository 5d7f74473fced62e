"""Readers: methylation matrices, GEO series matrices, sequencing methylation calls and array manifests."""

from ._bedmethyl import read_bedmethyl
from ._genome import Genome, GenomeSegment
from ._geo import read_geo_series_matrix
from ._homer import HomerMotif, read_homer_motifs, read_motif_to_tf
from ._manifest import read_manifest
from ._matrix import read_methylation_matrix
from ._tracks import read_bigwig, write_bedgraph, write_bigwig
from ._vcf import read_vcf

__all__ = [
    "Genome",
    "GenomeSegment",
    "HomerMotif",
    "read_bedmethyl",
    "read_bigwig",
    "read_geo_series_matrix",
    "read_homer_motifs",
    "read_manifest",
    "read_methylation_matrix",
    "read_motif_to_tf",
    "read_vcf",
    "write_bedgraph",
    "write_bigwig",
]
