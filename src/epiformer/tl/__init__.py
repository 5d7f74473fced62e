"""Tools: the model-driven analyses users call on AnnData / MuData."""

from ._attention import attention
from ._baseline import BaselinePredictor, fit_baseline
from ._dilution import dilution_curve
from ._embed import embed
from ._evaluate_epigenome import evaluate_epigenome
from ._evaluate_methylation import evaluate_methylation
from ._finetune import finetune
from ._fit_epigept import fit_epigept
from ._fit_expression_predictor import fit_expression_predictor
from ._impute import impute
from ._metrics import evaluate
from ._predict_epigenome import predict_epigenome
from ._predict_methylation import predict_methylation
from ._predictor import predict
from ._pretrain import pretrain
from ._variant_effect import variant_effect

__all__ = [
    "BaselinePredictor",
    "attention",
    "dilution_curve",
    "embed",
    "evaluate",
    "evaluate_epigenome",
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


#: Names moved to :mod:`epiformer.models`, kept here for one release.
_MOVED = {"Predictor": "Predictor", "MethylGPTPredictor": "MethylGPTPredictor"}


def __getattr__(name: str):
    if name in _MOVED:
        from epiformer import models
        from epiformer._logging import warn

        warn(
            f"`ef.tl.{name}` moved to `ef.models.{_MOVED[name]}`; the old name will be removed in the next release.",
            FutureWarning,
        )
        return getattr(models, _MOVED[name])
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
