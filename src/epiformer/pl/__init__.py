"""Plots: each takes `ax=` and returns the Axes (or Figure) it drew."""

from ._prediction import prediction, training_history
from ._qc import beta_distribution, missingness
from ._tracks import tracks

__all__ = ["beta_distribution", "missingness", "prediction", "tracks", "training_history"]
