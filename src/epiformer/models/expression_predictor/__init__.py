"""Methylation from expression + sequence (Levy-Jurgenson et al. 2019): the model, its networks and its engine.

The engine's helpers (expression in the model's gene order, predictions laid out for AnnData / MuData, split
blocks, scores and baselines) are what :mod:`epiformer.tl` calls around the model.
"""

from ._engine import (
    aligned_expression,
    baselines,
    check_predictor,
    columnwise_spearman,
    cpg_positions,
    in_model_order,
    log_normalize,
    predict_expression_only,
    predict_paired,
    score_table,
    scores,
    sequence_features,
    split_block,
)
from ._model import ExpressionPredictor, network_options
from ._networks import FactorizedNet, LevyJurgensonNet

__all__ = [
    "ExpressionPredictor",
    "FactorizedNet",
    "LevyJurgensonNet",
    "aligned_expression",
    "baselines",
    "check_predictor",
    "columnwise_spearman",
    "cpg_positions",
    "in_model_order",
    "log_normalize",
    "network_options",
    "predict_expression_only",
    "predict_paired",
    "score_table",
    "scores",
    "sequence_features",
    "split_block",
]
