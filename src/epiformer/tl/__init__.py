"""Tools: the model-driven analyses users call on AnnData / MuData."""

from ._attention import attention
from ._baseline import BaselinePredictor, fit_baseline
from ._dilution import dilution_curve
from ._embed import embed
from ._epigenome import predict_epigenome
from ._expression_predictor import evaluate_methylation, fit_expression_predictor, predict_methylation
from ._finetune import MethylGPTPredictor, finetune
from ._fit_epigept import fit_epigept
from ._impute import impute
from ._metrics import evaluate
from ._predictor import Predictor, predict
from ._pretrain import pretrain
from ._variant_effect import variant_effect

__all__ = [
    "BaselinePredictor",
    "MethylGPTPredictor",
    "Predictor",
    "attention",
    "dilution_curve",
    "embed",
    "evaluate",
    "evaluate_methylation",
    "finetune",
    "fit_baseline",
    "fit_epigept",
    "fit_expression_predictor",
    "impute",
    "predict",
    "predict_epigenome",
    "predict_methylation",
    "pretrain",
    "variant_effect",
]
