"""Preprocessing: beta / M-values, probes and manifests, sequencing sites to probes and regions, QC, splits, CpG sequences and gene distances, expression dilution and pooling."""

from ._beta import to_beta, to_mvalue
from ._dilute import dilute
from ._distances import cpg_gene_distances
from ._manifest import annotate_probes, loci_to_probes
from ._motifs import MotifScanner, jaspar_motifs, motif_scores
from ._pool import pool_expression
from ._probes import align_to_vocab, harmonize_probes
from ._qc import qc_metrics
from ._regions import aggregate_regions
from ._sequences import cpg_sequences
from ._split import split_pairs
from ._split_samples import split_samples
from ._tf_context import tf_context
from ._vocab_coverage import vocab_coverage

__all__ = [
    "MotifScanner",
    "aggregate_regions",
    "align_to_vocab",
    "annotate_probes",
    "cpg_gene_distances",
    "cpg_sequences",
    "dilute",
    "harmonize_probes",
    "jaspar_motifs",
    "loci_to_probes",
    "motif_scores",
    "pool_expression",
    "qc_metrics",
    "split_pairs",
    "split_samples",
    "tf_context",
    "to_beta",
    "to_mvalue",
    "vocab_coverage",
]
