"""EpiGePT (Gao et al. 2024): configuration, network, checkpoints, inference engine and Lightning training.

`EpiGePT` and `EpiGePTConfig` are the user-facing classes (also in :mod:`epiformer.models`); the functions are
what :mod:`epiformer.tl` runs.
"""

from ._config import EpiGePTConfig
from ._engine import (
    check_epigept,
    checkpoint_sha256,
    context_matrix,
    motif_source,
    predict_tiles,
    score_variants,
    tile_regions,
    variant_table,
)
from ._module import EpiGePT
from ._training import masked_mse, train, training_data

__all__ = [
    "EpiGePT",
    "EpiGePTConfig",
    "check_epigept",
    "checkpoint_sha256",
    "context_matrix",
    "masked_mse",
    "motif_source",
    "predict_tiles",
    "score_variants",
    "tile_regions",
    "train",
    "training_data",
]
