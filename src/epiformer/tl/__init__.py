"""Tools: the model-driven analyses users call on AnnData / MuData."""

from ._baseline import BaselinePredictor, fit_baseline
from ._dilution import dilution_curve
from ._expression_predictor import evaluate_methylation, fit_expression_predictor, predict_methylation
from ._metrics import evaluate
from ._predictor import Predictor, predict

__all__ = [
    "BaselinePredictor",
    "Predictor",
    "dilution_curve",
    "evaluate",
    "evaluate_methylation",
    "fit_baseline",
    "fit_expression_predictor",
    "predict",
    "predict_methylation",
]
