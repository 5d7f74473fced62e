"""Preprocessing: beta / M-values, probe harmonisation, vocabulary alignment, quality control."""

from ._beta import to_beta, to_mvalue
from ._probes import align_to_vocab, harmonize_probes
from ._qc import qc_metrics
from ._split_samples import split_samples

__all__ = ["align_to_vocab", "harmonize_probes", "qc_metrics", "split_samples", "to_beta", "to_mvalue"]
