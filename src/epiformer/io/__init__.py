"""Readers: methylation matrices, GEO series matrices and sequencing methylation calls, as AnnData."""

from ._bedmethyl import read_bedmethyl
from ._genome import Genome, GenomeSegment
from ._geo import read_geo_series_matrix
from ._matrix import read_methylation_matrix

__all__ = ["Genome", "GenomeSegment", "read_bedmethyl", "read_geo_series_matrix", "read_methylation_matrix"]
