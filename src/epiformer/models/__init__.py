"""The networks: one sub-package per model, each with its module, checkpoint loader and training module.

The models import torch, so they are loaded on first use (``ef.models.MethylGPT``) and ``import epiformer``
stays light.
"""

from importlib import import_module
from typing import Any

_LAZY = {"MethylGPT": ".methylgpt", "MethylGPTVocab": ".methylgpt"}

__all__: list[str] = ["MethylGPT", "MethylGPTVocab"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
