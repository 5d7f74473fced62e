"""EpiGePT (Gao et al. 2024): the network, its checkpoint loader and its Lightning training module."""

from ._module import EpiGePT, EpiGePTConfig

__all__ = ["EpiGePT", "EpiGePTConfig"]
