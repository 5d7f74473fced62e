"""Preprocessing: beta / M-values, probe harmonisation, vocabulary alignment, quality control."""

from ._beta import to_beta, to_mvalue
from ._probes import align_to_vocab, harmonize_probes
from ._qc import qc_metrics

__all__ = ["align_to_vocab", "harmonize_probes", "qc_metrics", "to_beta", "to_mvalue"]
