"""Fine-tuning MethylGPT: the Lightning module that trains backbone and head together, and the training run."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from epiformer._lightning import L, fit
from epiformer._targets import Target
from epiformer.models.methylgpt._engine import ModelInputs, read_all
from epiformer.models.methylgpt._heads import FinetuneNet, Head
from epiformer.models.methylgpt._module import MethylGPT
from epiformer.models.methylgpt._predictor import MethylGPTPredictor


class FinetuneModule(L.LightningModule):
    """Lightning wrapper: MSE on scaled targets (regression) or cross-entropy; Adam with two learning rates."""

    def __init__(
        self, net: FinetuneNet, cpg_ids: Tensor, *, lr_backbone: float, lr_head: float, weight_decay: float
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("cpg_ids", cpg_ids, persistent=False)
        self.lr_backbone, self.lr_head, self.weight_decay = lr_backbone, lr_head, weight_decay

    def _loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        betas, y = batch
        out = self.net(betas, self.cpg_ids)
        if self.net.regression:
            return nn.functional.mse_loss(out.squeeze(-1), y.float())
        return nn.functional.cross_entropy(out, y.long())

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, prog_bar=True, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            [
                {"params": self.net.backbone.parameters(), "lr": self.lr_backbone},
                {"params": self.net.head.parameters(), "lr": self.lr_head},
            ],
            weight_decay=self.weight_decay,
        )


def finetune(
    model: MethylGPT,
    inputs: ModelInputs,
    spec: Target,
    *,
    train: np.ndarray,
    val: np.ndarray,
    head: Head,
    missing: str,
    freeze_backbone: bool,
    batch_size: int,
    lr_backbone: float,
    lr_head: float,
    weight_decay: float,
    random_state: int,
    **fit_options: Any,
) -> MethylGPTPredictor:
    """Train a copy of `model` with a head on the rows `train` (stopping on `val`) of `spec`; `model` is unchanged.

    A regression target is min-max scaled to [0, 1] on the training rows (the published scaling). The weights of
    the epoch with the lowest validation loss are kept.
    """
    position = {row: i for i, row in enumerate(spec.rows)}
    y = {name: spec.values[[position[r] for r in rows]] for name, rows in (("train", train), ("val", val))}
    scale = None
    if spec.task == "regression":
        scale = (float(y["train"].min()), float(y["train"].max()))
        if scale[0] == scale[1]:
            msg = f"`obs[{spec.name!r}]` is constant ({scale[0]!r}) on the training samples; there is nothing to learn."
            raise ValueError(msg)
        y = {k: ((v - scale[0]) / (scale[1] - scale[0])).astype(np.float32) for k, v in y.items()}
    elif len(np.unique(y["train"])) < 2:
        msg = f"The training samples of `obs[{spec.name!r}]` hold a single class; classification needs at least two."
        raise ValueError(msg)
    betas = read_all(inputs)
    features = [model.vocab.probes[i] for i in inputs.in_vocab]

    backbone = copy.deepcopy(model).train()
    backbone.requires_grad_(not freeze_backbone)
    regression = spec.task == "regression"
    net = FinetuneNet(
        backbone, head=head, n_out=1 if regression else len(spec.classes), regression=regression, missing=missing
    )
    module = FinetuneModule(
        net, inputs.cpg_ids(model), lr_backbone=lr_backbone, lr_head=lr_head, weight_decay=weight_decay
    )

    def loader(rows: np.ndarray, values: np.ndarray, *, shuffle: bool) -> DataLoader:
        data = TensorDataset(torch.from_numpy(betas[rows]), torch.from_numpy(values))
        generator = torch.Generator().manual_seed(random_state)
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)

    history = fit(
        module,
        train=loader(train, y["train"], shuffle=True),
        val=loader(val, y["val"], shuffle=False),
        random_state=random_state,
        restore_best=True,
        gradient_clip_val=1.0,
        **fit_options,
    )
    return MethylGPTPredictor(
        net, target=spec.name, task=spec.task, classes=spec.classes, features=features, scale=scale, history=history
    )
