"""Tools: the model-driven analyses users call on AnnData / MuData."""

__all__: list[str] = []
