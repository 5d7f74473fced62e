"""MethylGPT (Ying et al. 2024): the network, its CpG vocabulary, checkpoints, and the engine the tools call.

`MethylGPT`, `MethylGPTVocab` and `MethylGPTPredictor` are the user-facing classes (also in
:mod:`epiformer.models`); the functions are what :mod:`epiformer.tl` runs on AnnData rows.
"""

from ._config import MASK_VALUE, MISSING_VALUE, check_missing_mode
from ._engine import (
    attention,
    check_methylgpt,
    checked_inputs,
    embed,
    impute,
    prepare_inputs,
    provenance,
    received_attention,
)
from ._finetuning import finetune
from ._heads import HEADS, READOUTS
from ._module import MethylGPT
from ._predictor import MethylGPTPredictor
from ._pretraining import column_sd, most_variable, new_model, open_data, pretrain
from ._vocab import MethylGPTVocab

__all__ = [
    "HEADS",
    "READOUTS",
    "MASK_VALUE",
    "MISSING_VALUE",
    "MethylGPT",
    "MethylGPTPredictor",
    "MethylGPTVocab",
    "attention",
    "check_methylgpt",
    "checked_inputs",
    "check_missing_mode",
    "embed",
    "finetune",
    "impute",
    "column_sd",
    "most_variable",
    "new_model",
    "open_data",
    "prepare_inputs",
    "pretrain",
    "provenance",
    "received_attention",
]
