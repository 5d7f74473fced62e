"""Plots: each takes `ax=` and returns the Axes (or Figure) it drew."""

from ._dilution import dilution_curve
from ._prediction import prediction, training_history
from ._qc import beta_distribution, missingness
from ._tracks import tracks

__all__ = ["beta_distribution", "dilution_curve", "missingness", "prediction", "tracks", "training_history"]
