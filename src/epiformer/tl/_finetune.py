"""`ef.tl.finetune`: a pretrained MethylGPT plus a head, trained on a sample trait."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_data, doc_layer, doc_mod_methyl, doc_params, doc_random_state
from epiformer._logging import timed
from epiformer._targets import Task, resolve_target
from epiformer._utils import renamed_options, select_modality, split_rows

if TYPE_CHECKING:
    from epiformer.models import MethylGPT, MethylGPTPredictor


def _split(
    adata: AnnData, rows: np.ndarray, *, split_key: str, val_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows: the ``train`` / ``val`` labels of `split_key` if present, else a random split."""
    if split_key in adata.obs:
        labels = adata.obs[split_key].iloc[rows].to_numpy()
        train, val = rows[labels == "train"], rows[labels == "val"]
        if len(val) == 0:  # no validation samples labelled: take some of the training ones
            train, val = split_rows(train, val_size=val_size, random_state=random_state)
    else:
        train, val = split_rows(rows, val_size=val_size, random_state=random_state)
    if len(train) < 2:
        msg = f"Only {len(train)} training samples with a target value; fine-tuning needs at least 2."
        raise ValueError(msg)
    return train, val


@doc_params(data=doc_data, layer=doc_layer, random_state=doc_random_state, mod=doc_mod_methyl)
@renamed_options(adata="data")
def finetune(
    data: AnnData | MuData,
    model: MethylGPT,
    *,
    target: str,
    task: Task | Literal["auto"] = "auto",
    head: Literal["linear", "mlp", "resnet1d"] = "mlp",
    layer: str | None = None,
    var_key: str | None = None,
    mod: str | None = None,
    split_key: str = Key.obs.split,
    val_size: float = 0.2,
    missing: Literal["mask", "legacy"] = "mask",
    max_epochs: int = 30,
    batch_size: int = 16,
    lr_backbone: float = 1e-4,
    lr_head: float = 1e-3,
    weight_decay: float = 0.0,
    early_stopping_patience: int | None = 10,
    freeze_backbone: bool = False,
    accelerator: str = "auto",
    devices: int | str = 1,
    precision: str | None = None,
    max_time: float | None = None,
    random_state: int = 0,
    progress: bool = True,
) -> MethylGPTPredictor:
    """Fine-tune a pretrained MethylGPT with a prediction head on a sample trait (age, disease, tissue).

    Follows the authors' fine-tuning: a regression target is min-max scaled to [0, 1] on the training samples
    and predicted through a sigmoid with an MSE loss (classification: cross-entropy); Adam with one learning
    rate for the backbone and another for the head; gradients clipped at 1.0; the weights of the epoch with the
    lowest validation loss are kept (early stopping on it). Training goes through a Lightning
    :class:`~lightning.pytorch.Trainer` (bf16 mixed precision on CUDA by default). `model` is left unchanged:
    the predictor trains a copy.

    Parameters
    ----------
    {data}
    model
        A pretrained :class:`~epiformer.models.MethylGPT`.
    target
        `obs` column to predict; samples without a value are left out (with a warning that counts them).
    task
        ``"regression"``, ``"classification"`` or ``"auto"`` (numeric columns are regression).
    head
        ``"linear"`` or ``"mlp"`` on the ``<cls>`` embedding, or ``"resnet1d"``, the authors' age head over the
        per-CpG outputs.
    {layer}
    var_key
        `var` column holding the probe IDs, if not `var_names`.
    {mod}
    split_key
        `obs` column from :func:`epiformer.pp.split_samples`: trains on ``"train"``, stops on ``"val"`` and never
        sees ``"test"``. Without it, `val_size` of the samples are held out for validation.
    val_size
        Validation fraction when no validation samples are labelled.
    missing
        How missing CpGs enter the backbone: ``"mask"`` (not attended) or ``"legacy"`` (value -2, attended).
    max_epochs, batch_size
        Training length and samples per step (the authors used 16).
    lr_backbone, lr_head
        Adam learning rates of the backbone and of the head (published: 1e-4 and 1e-3).
    weight_decay
        Adam weight decay (published: 0).
    early_stopping_patience
        Epochs without a lower validation loss before stopping; `None` trains `max_epochs`.
    freeze_backbone
        Train the head only.
    accelerator, devices, precision
        Passed to :class:`lightning.pytorch.Trainer`; `precision` `None` means ``"bf16-mixed"`` on CUDA, else 32-bit.
    max_time
        Wall-clock budget in seconds; training stops when it is spent.
    {random_state}
    progress
        Show Lightning's progress bar.

    Returns
    -------
    A :class:`~epiformer.models.MethylGPTPredictor` (on the model's device, in evaluation mode) with its loss `history`.
    """
    from epiformer.models import methylgpt

    with timed("ef.tl.finetune"):
        methylgpt.check_methylgpt(model, batch_size)
        methylgpt.check_missing_mode(missing)
        if head not in methylgpt.HEADS:
            msg = f"`head` must be one of {methylgpt.HEADS}, got {head!r}."
            raise ValueError(msg)
        if not 0 < val_size < 1:
            msg = f"`val_size` must be in (0, 1), got {val_size!r}."
            raise ValueError(msg)
        adata = select_modality(data, mod, default=Key.mod.methyl)
        spec = resolve_target(adata, target, task=task)
        inputs = methylgpt.prepare_inputs(adata, model, layer=layer, var_key=var_key)
        train, val = _split(adata, spec.rows, split_key=split_key, val_size=val_size, random_state=random_state)
        return methylgpt.finetune(
            model,
            inputs,
            spec,
            train=train,
            val=val,
            head=head,
            missing=missing,
            freeze_backbone=freeze_backbone,
            batch_size=batch_size,
            lr_backbone=lr_backbone,
            lr_head=lr_head,
            weight_decay=weight_decay,
            random_state=random_state,
            max_epochs=max_epochs,
            early_stopping_patience=early_stopping_patience,
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            max_time=max_time,
            progress=progress,
        )
