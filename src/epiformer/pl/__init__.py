"""Plots: each takes `ax=` and returns the Axes (or Figure) it drew."""

from ._attention import attention
from ._dilution import dilution_curve
from ._evaluation import imputation, methylation_prediction, variant_effects, vocab_coverage
from ._prediction import prediction, training_history
from ._qc import beta_distribution, missingness
from ._tracks import tracks

__all__ = [
    "attention",
    "beta_distribution",
    "dilution_curve",
    "imputation",
    "methylation_prediction",
    "missingness",
    "prediction",
    "tracks",
    "training_history",
    "variant_effects",
    "vocab_coverage",
]
