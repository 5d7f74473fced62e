"""Shared by the Lightning-based training tools: quiet start-up and the per-epoch loss history."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as L


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Keep Lightning's start-up banners (GPU/TPU available, ...) and the few-workers hint out of the output."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class HistoryCallback(L.Callback):
    """Collects the epoch-level losses into a list of dicts (``epoch``, ``train_loss``, ``val_loss``)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch}
        for key in ("train_loss", "val_loss"):
            if key in metrics:
                row[key] = float(metrics[key])
        self.rows.append(row)


def make_trainer(
    *,
    accelerator: str,
    precision: str | None = None,
    progress: bool,
    callbacks: list[L.Callback],
    enable_checkpointing: bool = False,
    **options: Any,
) -> L.Trainer:
    """A Lightning :class:`~lightning.pytorch.Trainer` as epiformer's training tools use it.

    No logger, no model summary, no sanity validation; `precision` `None` means ``"bf16-mixed"`` where the
    accelerator resolves to CUDA and 32-bit elsewhere. Other `options` (`max_epochs`, `devices`, `strategy`,
    ...) are passed on.
    """
    import torch

    if precision is None:
        cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        precision = "bf16-mixed" if cuda else "32-true"
    return L.Trainer(
        accelerator=accelerator,
        precision=precision,
        logger=False,
        enable_checkpointing=enable_checkpointing,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **options,
    )
