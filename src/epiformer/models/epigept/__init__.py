"""EpiGePT (Gao et al. 2024): configuration, network, checkpoints, inference engine and Lightning training."""

from ._config import EpiGePTConfig
from ._engine import (
    PrecomputedMotifs,
    Tiling,
    check_epigept,
    checkpoint_sha256,
    context_matrix,
    motif_source,
    predict_tiles,
    predict_window,
    score_variants,
    tile_regions,
    variant_table,
)
from ._module import EpiGePT
from ._training import EpiGePTModule, WindowContextDataset, masked_mse, track_windows, train, training_data

__all__ = [
    "EpiGePT",
    "EpiGePTConfig",
    "EpiGePTModule",
    "PrecomputedMotifs",
    "Tiling",
    "WindowContextDataset",
    "check_epigept",
    "checkpoint_sha256",
    "context_matrix",
    "masked_mse",
    "motif_source",
    "predict_tiles",
    "predict_window",
    "score_variants",
    "tile_regions",
    "train",
    "track_windows",
    "training_data",
]
