"""The helpers every plot shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def axes_or_new(ax: Axes | None, figsize: tuple[float, float] = (5, 3.5)) -> Axes:
    """`ax`, or the Axes of a new figure whose layout makes room for its colourbar and labels."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")[1]
