"""One Lightning run for every trainer: seeding, quiet start-up, early stopping, best weights, time budget, history."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pandas as pd
import torch

from epiformer._files import atomic_path
from epiformer._logging import logger

with warnings.catch_warnings():
    # Lightning imports torchmetrics, which imports transformers where installed, which imports tqdm.auto: in a
    # notebook without ipywidgets that warns "IProgress not found", about none of epiformer's progress bars.
    warnings.filterwarnings("ignore", message="IProgress not found")
    import lightning.pytorch as L
from lightning.pytorch.plugins import TorchCheckpointIO

#: The loggers of Lightning's info messages (``rank_zero_info``), set to WARNING while :func:`fit` runs.
LIGHTNING_LOGGERS = (
    "lightning.pytorch",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric",
    "lightning.fabric.utilities.rank_zero",
    "pytorch_lightning",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Keep what a user cannot act on out of the output while Lightning trains; everything is restored afterwards.

    Lightning's start-up banners ("GPU available: ...", "TPU available", "HPU available"), its tips (LitLogger,
    litmodels), its Tensor Cores hint (`fit` already picks bf16 on CUDA) and its few-workers hints, and the
    deprecation torch raises inside Lightning's own code (``isinstance(treespec, LeafSpec)``).
    """
    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def mark_trained(module: L.LightningModule) -> None:
    """Record ``weights_source = "trained"`` on every model inside `module` that keeps its weights' provenance.

    Those are the models with a ``weights_source`` attribute (``epiformer.models``' ``WeightsProvenance`` mixin);
    the tools warn when a model's weights were never loaded nor trained.
    """
    for sub in module.modules():
        if hasattr(sub, "weights_source"):
            sub.weights_source = "trained"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each checkpoint to a temporary name and renaming it when complete.

    A run killed while saving leaves the previous ``last.ckpt`` whole, so it can always be resumed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write `checkpoint` to `path` through a temporary file in the same folder."""
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class HistoryCallback(L.Callback):
    """Collects the epoch-level losses into a list of dicts (``epoch``, ``train_loss``, ``val_loss``, ``lr``).

    ``lr`` is the learning rate of the first optimiser's first parameter group at the end of the epoch.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch}
        for key in ("train_loss", "val_loss"):
            if key in metrics:
                row[key] = float(metrics[key])
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        logger.debug("epoch %d: %s", trainer.current_epoch, row)


class BestWeights(L.Callback):
    """Keeps a CPU copy of the weights of the epoch with the lowest `val_loss` and restores them when training ends."""

    def __init__(self) -> None:
        self.best = float("inf")
        self.state: dict | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val_loss")
        if loss is not None and float(loss) < self.best and not trainer.sanity_checking:
            self.best = float(loss)
            self.state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


def training_progress(trainer: L.Trainer) -> float:
    """How much of its run `trainer` has done, in [0, 1]: the larger of its share of steps and of `max_time`.

    The step share counts against ``trainer.estimated_stepping_batches`` (none without an epoch or step limit);
    the time share against the :class:`~lightning.pytorch.callbacks.Timer` that ``Trainer(max_time=...)`` installs,
    whose elapsed time a resumed run restores from its checkpoint.
    """
    from lightning.pytorch.callbacks import Timer

    shares = [0.0]
    total = trainer.estimated_stepping_batches
    if math.isfinite(total) and total > 0:
        shares.append(trainer.global_step / total)
    for timer in (c for c in trainer.callbacks if isinstance(c, Timer)):
        elapsed = timer.time_elapsed("train")
        budget = elapsed + (timer.time_remaining("train") or 0.0)
        if budget > 0:
            shares.append(elapsed / budget)
    return min(1.0, max(shares))


def warmup_cosine(module: L.LightningModule, optimizer: Any, *, warmup: float, floor: float = 0.01) -> dict:
    """A learning-rate schedule fitted to `module`'s run: linear warm-up, then cosine decay to `floor` x the rate.

    The rate is set every step from the share of the run done (:func:`training_progress` of the module's
    trainer; 0 before one is attached), so the schedule spans the run whether an epoch count or a wall-clock
    budget ends it: a rise from `floor` over the first `warmup` of the run, then the decay over the rest.
    Returns Lightning's ``configure_optimizers`` dict.
    """

    def factor(step: int) -> float:
        try:
            done = training_progress(module.trainer)
        except RuntimeError:  # not attached to a trainer
            done = 0.0
        if done < warmup:
            return floor + (1 - floor) * done / warmup
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (done - warmup) / (1 - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def fit(
    module: L.LightningModule,
    *,
    train: Any = None,
    val: Any = None,
    max_epochs: int,
    random_state: int | None,
    progress: bool,
    accelerator: str = "auto",
    devices: int | str | Sequence[int] = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str | None = None,
    early_stopping_patience: int | None = None,
    restore_best: bool = False,
    max_time: float | timedelta | None = None,
    callbacks: Sequence[L.Callback] = (),
    ckpt_path: str | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Train `module` with a Lightning :class:`~lightning.pytorch.Trainer`; return the per-epoch loss history.

    Parameters
    ----------
    module
        Logs ``train_loss`` (and ``val_loss`` when it validates) once per epoch.
    train, val
        Training and validation dataloaders; `None` when the module provides its own loaders.
    max_epochs
        Longest run.
    random_state
        Seed of everything random (``lightning.seed_everything``); `None` leaves the generators as they are.
    progress
        Show Lightning's progress bar.
    accelerator, devices, strategy, num_nodes
        Where to train (Lightning's options; DDP / FSDP through `strategy`).
    precision
        `None` means ``"bf16-mixed"`` where the accelerator resolves to CUDA and 32-bit elsewhere.
    early_stopping_patience
        Stop after this many epochs without a lower ``val_loss``; `None` never stops early.
    restore_best
        End with the weights of the epoch with the lowest ``val_loss``.
    max_time
        Wall-clock budget in seconds (or a :class:`~datetime.timedelta`); training stops when it is spent.
    callbacks
        More callbacks (checkpointing, ...).
    ckpt_path
        A Lightning checkpoint to resume from.
    **options
        Other :class:`~lightning.pytorch.Trainer` options (``gradient_clip_val``, ...).

    Returns
    -------
    One row per epoch: ``epoch``, ``train_loss``, with validation ``val_loss``, and the learning rate ``lr``
    at the epoch's end. The module ends on the device
    it started on, in evaluation mode.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    if precision is None:
        cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        precision = "bf16-mixed" if cuda else "32-true"
    history = HistoryCallback()
    run_callbacks: list[L.Callback] = [history, *callbacks]
    validates = val is not None or train is None  # without loaders, the module's own include validation
    if validates and early_stopping_patience is not None:
        run_callbacks.append(EarlyStopping(monitor="val_loss", patience=early_stopping_patience, mode="min"))
    if validates and restore_best:
        run_callbacks.append(BestWeights())
    if max_time is not None and not isinstance(max_time, timedelta):
        max_time = timedelta(seconds=float(max_time))
    options.setdefault("enable_checkpointing", any(isinstance(c, ModelCheckpoint) for c in callbacks))
    home = next(module.parameters()).device
    with quiet_lightning():
        if random_state is not None:
            L.seed_everything(random_state, verbose=False)
        trainer = L.Trainer(
            max_epochs=max_epochs,
            max_time=max_time,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            precision=precision,
            logger=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            num_sanity_val_steps=0,
            callbacks=run_callbacks,
            plugins=[AtomicCheckpointIO()],
            **options,
        )
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path)
    module.to(home).eval()
    mark_trained(module)
    logger.info("trained %d epochs on %d process(es)", trainer.current_epoch, trainer.world_size)
    return pd.DataFrame(history.rows)
