"""Preprocessing: beta / M-values, probe harmonisation, vocabulary alignment, quality control."""

from ._beta import to_beta, to_mvalue
from ._motifs import jaspar_motifs, motif_scores
from ._probes import align_to_vocab, harmonize_probes
from ._qc import qc_metrics
from ._split_samples import split_samples
from ._tf_context import tf_context

__all__ = [
    "align_to_vocab",
    "harmonize_probes",
    "jaspar_motifs",
    "motif_scores",
    "qc_metrics",
    "split_samples",
    "tf_context",
    "to_beta",
    "to_mvalue",
]
