"""Beta values and M-values: the two conversions, shared by the readers and `pp`."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

#: Default offset alpha in ``M = log2((beta + alpha) / (1 - beta + alpha))``, which keeps 0 and 1 finite.
DEFAULT_OFFSET = 1e-6


def beta_to_mvalue(beta: np.ndarray, offset: float) -> np.ndarray:
    """``log2((beta + offset) / (1 - beta + offset))`` in float64."""
    beta = np.asarray(beta, dtype=np.float64)
    return np.log2((beta + offset) / (1.0 - beta + offset))


def mvalue_to_beta(m: np.ndarray, offset: float) -> np.ndarray:
    """The inverse of :func:`beta_to_mvalue` in float64 (not clipped to [0, 1])."""
    # (2^M (1 + a) - a) / (1 + 2^M) written with the logistic function, finite for any M including +-inf
    s = expit(np.asarray(m, dtype=np.float64) * np.log(2.0))
    return s + offset * (2.0 * s - 1.0)
