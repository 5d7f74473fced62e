"""The models: one sub-package per model (config, network, checkpoints, engine, training, predictor).

They import torch and Lightning, so they load on first access (``ef.models.MethylGPT``, ``ef.models.EpiGePT``,
``ef.models.ExpressionPredictor``) and ``import epiformer`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._base import Predictor
    from ._registry import fetch, list_pretrained
    from .epigept import EpiGePT, EpiGePTConfig
    from .expression_predictor import ExpressionPredictor
    from .methylgpt import MethylGPT, MethylGPTPredictor, MethylGPTVocab

#: Public name -> sub-package that defines it.
_LAZY = {
    "Predictor": "._base",
    "EpiGePT": ".epigept",
    "EpiGePTConfig": ".epigept",
    "ExpressionPredictor": ".expression_predictor",
    "MethylGPT": ".methylgpt",
    "MethylGPTPredictor": ".methylgpt",
    "MethylGPTVocab": ".methylgpt",
    "fetch": "._registry",
    "list_pretrained": "._registry",
}

__all__: list[str] = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
