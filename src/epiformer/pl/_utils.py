"""The helpers every plot shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def axes_or_new(ax: Axes | None, figsize: tuple[float, float] = (5, 3.5)) -> Axes:
    """`ax`, or the Axes of a new figure whose layout makes room for its colourbar and labels."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")[1]


def row_of_axes(
    axes: Axes | Sequence[Axes] | None, n: int, *, panel_size: tuple[float, float], what: str
) -> list[Axes]:
    """`n` Axes in a row: those given (checked to be `n`), or those of a new figure of `panel_size` panels.

    `what` names one panel in the error, e.g. ``"one per variant"``.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        width, height = panel_size
        grid = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, layout="constrained")[1]
        return list(grid[0])
    given = [axes] if not isinstance(axes, Sequence | np.ndarray) else list(np.ravel(axes))
    if len(given) != n:
        msg = f"`axes` holds {len(given)} Axes for {n} panels; give {what}."
        raise ValueError(msg)
    return given
