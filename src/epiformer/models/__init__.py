"""The networks: one sub-package per model, each with its module, checkpoint loader and training module."""

__all__: list[str] = []
