"""Methylation from expression + sequence (Levy-Jurgenson et al. 2019): networks and the scvi-tools model."""

from ._model import ExpressionPredictor
from ._networks import FactorizedNet, LevyJurgensonNet

__all__ = ["ExpressionPredictor", "FactorizedNet", "LevyJurgensonNet"]
