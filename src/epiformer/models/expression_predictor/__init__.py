"""Methylation from expression + sequence (Levy-Jurgenson et al. 2019): the model, its networks and its engine.

`ExpressionPredictor` is the user-facing class (also in :mod:`epiformer.models`); the functions are what
:mod:`epiformer.tl` calls around it (predictions laid out for AnnData / MuData, split blocks, scores, baselines,
the dilution curve).
"""

from ._engine import (
    baselines,
    check_predictor,
    columnwise_spearman,
    dilution_scores,
    predict_expression_only,
    predict_paired,
    score_table,
    split_block,
)
from ._model import ExpressionPredictor, network_options
from ._networks import FactorizedNet, LevyJurgensonNet

__all__ = [
    "ExpressionPredictor",
    "FactorizedNet",
    "LevyJurgensonNet",
    "baselines",
    "check_predictor",
    "columnwise_spearman",
    "dilution_scores",
    "network_options",
    "predict_expression_only",
    "predict_paired",
    "score_table",
    "split_block",
]
