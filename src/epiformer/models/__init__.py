"""The networks: one sub-package per model, each with its module, checkpoint loader and training module.

They need torch, so they are imported on first use (``ef.models.EpiGePT``, ``ef.models.MethylGPT``) and
``import epiformer`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .epigept import EpiGePT, EpiGePTConfig
    from .methylgpt import MethylGPT, MethylGPTVocab

_LAZY = {
    "EpiGePT": ".epigept",
    "EpiGePTConfig": ".epigept",
    "MethylGPT": ".methylgpt",
    "MethylGPTVocab": ".methylgpt",
}

__all__: list[str] = ["EpiGePT", "EpiGePTConfig", "MethylGPT", "MethylGPTVocab"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
