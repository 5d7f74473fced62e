"""Tools: the model-driven analyses users call on AnnData / MuData."""

from ._baseline import BaselinePredictor, fit_baseline
from ._embed import embed
from ._impute import impute
from ._metrics import evaluate
from ._predictor import Predictor, predict

__all__ = ["BaselinePredictor", "Predictor", "embed", "evaluate", "fit_baseline", "impute", "predict"]
