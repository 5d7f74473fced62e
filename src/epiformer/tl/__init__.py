"""Tools: the model-driven analyses users call on AnnData / MuData."""

from ._baseline import BaselinePredictor, fit_baseline
from ._metrics import evaluate
from ._predictor import Predictor, predict

__all__ = ["BaselinePredictor", "Predictor", "evaluate", "fit_baseline", "predict"]
