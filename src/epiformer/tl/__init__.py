"""Tools: the model-driven analyses users call on AnnData / MuData."""

from ._baseline import BaselinePredictor, fit_baseline
from ._embed import embed
from ._epigenome import predict_epigenome
from ._fit_epigept import fit_epigept
from ._impute import impute
from ._metrics import evaluate
from ._predictor import Predictor, predict
from ._variant_effect import variant_effect

__all__ = [
    "BaselinePredictor",
    "Predictor",
    "embed",
    "evaluate",
    "fit_baseline",
    "fit_epigept",
    "impute",
    "predict",
    "predict_epigenome",
    "variant_effect",
]
