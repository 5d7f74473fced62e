"""Preprocessing: beta / M-values, probes, QC, splits, CpG sequences and gene distances, expression dilution."""

from ._beta import to_beta, to_mvalue
from ._dilute import dilute
from ._distances import cpg_gene_distances
from ._motifs import MotifScanner, jaspar_motifs, motif_scores
from ._probes import align_to_vocab, harmonize_probes
from ._qc import qc_metrics
from ._sequences import cpg_sequences
from ._split import split_pairs
from ._split_samples import split_samples
from ._tf_context import tf_context

__all__ = [
    "MotifScanner",
    "align_to_vocab",
    "cpg_gene_distances",
    "cpg_sequences",
    "dilute",
    "harmonize_probes",
    "jaspar_motifs",
    "motif_scores",
    "qc_metrics",
    "split_pairs",
    "split_samples",
    "tf_context",
    "to_beta",
    "to_mvalue",
]
