"""MethylGPT's fixed settings: the values of masked and missing CpGs, how missing CpGs enter the model."""

from __future__ import annotations

from typing import Literal

#: Value given to a CpG whose beta value is hidden from the model and must be predicted (MLM).
MASK_VALUE = -1.0
#: Value given to a missing CpG (the authors' ``pad_value``).
MISSING_VALUE = -2.0
#: How missing CpGs enter the model: excluded as attention keys, or attended with value -2.
MissingMode = Literal["mask", "legacy"]
MISSING_MODES = ("mask", "legacy")


def check_missing_mode(missing: str) -> None:
    """Raise a :class:`ValueError` unless `missing` is ``"mask"`` or ``"legacy"``."""
    if missing not in MISSING_MODES:
        msg = (
            f"`missing` must be 'mask' (missing CpGs are not attended, as in pretraining) or 'legacy' (missing CpGs "
            f"are attended with value -2, as in the authors' tutorials), got {missing!r}."
        )
        raise ValueError(msg)


#: Published configurations all use 4 heads; used when no ``args.json`` / ``config.json`` / `n_heads` says.
DEFAULT_N_HEADS = 4
