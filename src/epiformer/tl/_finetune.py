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
from epiformer._validation import check_choice

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
    head: Literal["linear", "mlp", "resnet1d"] = "resnet1d",
    readout: Literal["cls", "mean", "cls+mean"] = "cls+mean",
    standardize: bool = True,
    layer: str | None = None,
    var_key: str | None = None,
    mod: str | None = None,
    split_key: str = Key.obs.split,
    val_size: float = 0.2,
    missing: Literal["mask", "legacy"] = "mask",
    head_epochs: int = 200,
    max_epochs: int = 30,
    cpgs_per_step: int | None = 128,
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

    As the authors, a regression target is min-max scaled to [0, 1] on the training samples and predicted
    through a sigmoid with an MSE loss (classification: cross-entropy). Training runs in two stages: the head
    alone on the features the frozen backbone computes once (`head_epochs`; cheap, so small cohorts get many
    epochs), then backbone and head together (`max_epochs`), with Adam at one learning rate for the backbone
    and another for the head, a warm-up and cosine decay, random CpG subsets per step (`cpgs_per_step`) and
    gradients clipped at 1.0. Each stage stops early on the validation loss, and the weights with the lowest
    one over both stages are kept. Training goes through a Lightning
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
        ``"linear"`` or ``"mlp"`` on a sample embedding (see `readout`), or ``"resnet1d"``, the authors' age head
        over the per-CpG outputs.
    readout
        What a ``linear`` or ``mlp`` head reads: the ``<cls>`` output (published), the mean output of the
        observed CpGs, or both side by side (``"cls+mean"``, twice the width).
    standardize
        A ``linear`` or ``mlp`` head first standardises its input with the mean and standard deviation of the
        pretrained backbone's embeddings of the training samples (the published heads: `False`).
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
    head_epochs
        First train the head alone, for up to this many epochs, on the features the frozen backbone computes
        once for every sample (each step then costs only the head); 0 skips this stage (published). The features
        are held in memory: ``resnet1d`` holds samples x CpGs x `d_model` floats, and above 4 GiB the stage is
        skipped with a warning.
    max_epochs, batch_size
        Longest run of backbone and head together (after the head's stage), and samples per step (the authors
        used 16).
    cpgs_per_step
        While backbone and head train together, each step reads a random subset of this many CpGs, every CpG
        alike, drawn afresh for every batch; validation and prediction read all of them.
        `None` (published), and always with ``head="resnet1d"``: every CpG in every step.
    lr_backbone, lr_head
        Adam learning rates of the backbone and of the head (published: 1e-4 and 1e-3).
    weight_decay
        Adam weight decay (published: 0).
    early_stopping_patience
        Epochs without a lower validation loss before stopping; `None` trains `max_epochs`.
    freeze_backbone
        Train the head only (the head stage alone).
    accelerator, devices, precision
        Passed to :class:`lightning.pytorch.Trainer`; `precision` `None` means ``"bf16-mixed"`` on CUDA, else 32-bit.
    max_time
        Wall-clock budget in seconds for both stages; training stops when it is spent.
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
        check_choice(head, methylgpt.HEADS, name="head")
        if not 0 < val_size < 1:
            msg = f"`val_size` must be in (0, 1), got {val_size!r}."
            raise ValueError(msg)
        check_choice(readout, methylgpt.READOUTS, name="readout")
        if head_epochs < 0 or max_epochs < 0 or (cpgs_per_step is not None and cpgs_per_step < 1):
            msg = (
                "`head_epochs` and `max_epochs` must be non-negative and `cpgs_per_step` positive or None, got "
                f"{head_epochs!r}, {max_epochs!r} and {cpgs_per_step!r}."
            )
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
            readout=readout,
            standardize=standardize,
            missing=missing,
            freeze_backbone=freeze_backbone,
            head_epochs=head_epochs,
            cpgs_per_step=cpgs_per_step,
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
