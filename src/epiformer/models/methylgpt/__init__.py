"""MethylGPT (Ying et al. 2024): the network, its CpG vocabulary and its checkpoints."""

from ._module import MASK_VALUE, MISSING_VALUE, MethylGPT
from ._vocab import MethylGPTVocab

__all__ = ["MASK_VALUE", "MISSING_VALUE", "MethylGPT", "MethylGPTVocab"]
