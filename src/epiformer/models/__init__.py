"""The networks: one sub-package per model, each with its module, checkpoint loader and training module.

Models import torch, Lightning and scvi-tools, so they load on first access (``ef.models.ExpressionPredictor``)
and ``import epiformer`` stays light.
"""

from importlib import import_module
from typing import Any

#: Public name -> sub-package that defines it.
_LAZY = {"ExpressionPredictor": "expression_predictor"}

__all__ = ["ExpressionPredictor"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
