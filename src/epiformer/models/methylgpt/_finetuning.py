"""Fine-tuning MethylGPT: the head trained on the frozen backbone's cached features, then backbone and head together."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from epiformer._lightning import L, fit, warmup_cosine
from epiformer._logging import warn
from epiformer._targets import Target
from epiformer.models._base import on_device
from epiformer.models.methylgpt._engine import ModelInputs, read_all
from epiformer.models.methylgpt._heads import FinetuneNet, Head, Readout, head_outputs
from epiformer.models.methylgpt._module import MethylGPT
from epiformer.models.methylgpt._predictor import MethylGPTPredictor
from epiformer.models.methylgpt._pretraining import random_cpgs, seed_of

#: The most memory the head stage may use to cache the backbone's features.
MAX_CACHE_BYTES = 4 * 2**30


def loss_of(out: Tensor, y: Tensor, *, regression: bool) -> Tensor:
    """MSE on scaled targets (regression) or cross-entropy on class logits."""
    if regression:
        return nn.functional.mse_loss(out.squeeze(-1), y.float())
    return nn.functional.cross_entropy(out, y.long())


class SupervisedModule(L.LightningModule):
    """The steps both fine-tuning stages share: `train_loss` and `val_loss` of :meth:`batch_loss`, per epoch."""

    def batch_loss(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The loss of one ``(inputs, targets)`` batch (`self.training` tells a training batch from a validation one)."""
        raise NotImplementedError

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.batch_loss(batch, batch_idx)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss = self.batch_loss(batch, batch_idx)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))


class HeadModule(SupervisedModule):
    """Lightning wrapper training only a head, on features the frozen backbone computed once."""

    def __init__(self, head: nn.Module, *, regression: bool, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.head, self.regression = head, regression
        self.lr, self.weight_decay = lr, weight_decay

    def batch_loss(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        features, y = batch
        return loss_of(head_outputs(self.head, features, regression=self.regression), y, regression=self.regression)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class FinetuneModule(SupervisedModule):
    """Lightning wrapper training backbone and head together: Adam with two learning rates, warm-up and cosine decay.

    With `cpgs_per_step`, each training batch reads a random subset of that many CpGs (seeded by `seed`, epoch and
    batch), as in pretraining; a ``resnet1d`` head, which reads CpGs at fixed positions, always reads all of them.
    Validation reads every CpG.
    """

    def __init__(
        self,
        net: FinetuneNet,
        cpg_ids: Tensor,
        *,
        lr_backbone: float,
        lr_head: float,
        weight_decay: float,
        cpgs_per_step: int | None,
        seed: int,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("cpg_ids", cpg_ids, persistent=False)
        self.lr_backbone, self.lr_head, self.weight_decay = lr_backbone, lr_head, weight_decay
        self.cpgs_per_step, self.seed = cpgs_per_step, seed

    def batch_loss(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        betas, y = batch
        cpg_ids = self.cpg_ids
        if self.training:
            generator = torch.Generator().manual_seed(seed_of(self.seed, 4, self.current_epoch, batch_idx))
            betas, cpg_ids = random_cpgs(betas, cpg_ids, None if self.net.per_cpg else self.cpgs_per_step, generator)
        return loss_of(self.net(betas, cpg_ids), y, regression=self.net.regression)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam(
            [
                {"params": self.net.backbone.parameters(), "lr": self.lr_backbone},
                {"params": self.net.head.parameters(), "lr": self.lr_head},
            ],
            weight_decay=self.weight_decay,
        )
        return warmup_cosine(self, optimizer, warmup=0.05)


def cached_features(net: FinetuneNet, betas: np.ndarray, cpg_ids: Tensor, *, batch_size: int, device: str) -> Tensor:
    """The head's input for every row of `betas`, computed once by the backbone in evaluation mode."""
    chunks = []
    with on_device(net, device, bf16_on_cuda=True) as dev:
        for start in range(0, len(betas), batch_size):
            batch = torch.from_numpy(betas[start : start + batch_size]).to(dev)
            chunks.append(net.features(batch, cpg_ids.to(dev)).float().cpu().numpy())
    return torch.from_numpy(np.concatenate(chunks))


def finetune(
    model: MethylGPT,
    inputs: ModelInputs,
    spec: Target,
    *,
    train: np.ndarray,
    val: np.ndarray,
    head: Head,
    readout: Readout,
    standardize: bool,
    missing: str,
    freeze_backbone: bool,
    head_epochs: int,
    cpgs_per_step: int | None,
    batch_size: int,
    lr_backbone: float,
    lr_head: float,
    weight_decay: float,
    random_state: int,
    max_epochs: int,
    max_time: float | None,
    **fit_options: Any,
) -> MethylGPTPredictor:
    """Train a copy of `model` with a head on the rows `train` (stopping on `val`) of `spec`; `model` is unchanged.

    With `standardize`, the head's standardisation is set from the frozen backbone's features of the training
    rows. Then the head alone for up to `head_epochs` epochs on those features, computed once (cheap: no
    backbone pass per step), then, unless `freeze_backbone`, backbone and head together for up to `max_epochs`
    epochs (with `freeze_backbone` and no head stage, the head alone in this second stage); `max_time` (seconds)
    covers both. A regression target is min-max scaled to [0, 1] on the training
    rows (the published scaling). The weights with the lowest validation loss over both stages are kept.
    """
    start = time.monotonic()
    y = targets(spec, train=train, val=val)
    betas = read_all(inputs)
    regression = spec.task == "regression"
    net = FinetuneNet(
        copy.deepcopy(model).train(),
        head=head,
        n_out=1 if regression else len(spec.classes),
        regression=regression,
        missing=missing,
        readout=readout,
        standardize=standardize,
    )
    net.backbone.requires_grad_(not freeze_backbone)
    cpg_ids = inputs.cpg_ids(model)
    generator = torch.Generator().manual_seed(random_state)

    def loader(x: Tensor, values: np.ndarray, *, shuffle: bool) -> DataLoader:
        return DataLoader(
            TensorDataset(x, torch.from_numpy(values)), batch_size=batch_size, shuffle=shuffle, generator=generator
        )

    def left() -> float | None:
        return None if max_time is None else max(max_time - (time.monotonic() - start), 0.0)

    stages, best = [], (float("inf"), None)
    device = "cpu" if fit_options.get("accelerator") == "cpu" else "auto"
    head_epochs = affordable_head_epochs(net, head_epochs, n_samples=len(train) + len(val), n_cpgs=len(cpg_ids))
    if head_epochs > 0 or net.standardize:
        needed = (("train", train), ("val", val)) if head_epochs > 0 else (("train", train),)
        features = {k: cached_features(net, betas[r], cpg_ids, batch_size=256, device=device) for k, r in needed}
        net.fit_standardize(features["train"])
    if head_epochs > 0 and left() != 0.0:
        history = fit(
            HeadModule(net.head, regression=regression, lr=lr_head, weight_decay=weight_decay),
            train=loader(features["train"], y["train"], shuffle=True),
            val=loader(features["val"], y["val"], shuffle=False),
            random_state=random_state,
            restore_best=True,
            max_epochs=head_epochs,
            max_time=left(),
            **fit_options,
        )
        stages.append(history.assign(stage="head"))
        if "val_loss" in history:
            best = (float(history["val_loss"].min()), copy.deepcopy(net.head.state_dict()))
    # a frozen backbone is done after the head stage; without one, its head trains in this stage (backbone frozen)
    if (not freeze_backbone or not stages) and max_epochs > 0 and left() != 0.0:
        module = FinetuneModule(
            net,
            cpg_ids,
            lr_backbone=lr_backbone,
            lr_head=lr_head,
            weight_decay=weight_decay,
            cpgs_per_step=cpgs_per_step,
            seed=random_state,
        )
        backbone = copy.deepcopy(net.backbone.state_dict()) if best[1] is not None else None
        net.train()  # the head stage ends in evaluation mode
        history = fit(
            module,
            train=loader(torch.from_numpy(betas[train]), y["train"], shuffle=True),
            val=loader(torch.from_numpy(betas[val]), y["val"], shuffle=False),
            random_state=random_state,
            restore_best=True,
            gradient_clip_val=1.0,
            max_epochs=max_epochs,
            max_time=left(),
            **fit_options,
        )
        stages.append(history.assign(stage="backbone and head"))
        joint = float(history["val_loss"].min()) if "val_loss" in history else float("inf")
        if backbone is not None and not joint < best[0]:  # the head stage did better
            net.backbone.load_state_dict(backbone)
            net.head.load_state_dict(best[1])
    net.eval()
    history = pd.concat(stages, ignore_index=True) if stages else None
    if history is not None:
        history["epoch"] = np.arange(len(history))
    return MethylGPTPredictor(
        net,
        target=spec.name,
        task=spec.task,
        classes=spec.classes,
        features=[model.vocab.probes[i] for i in inputs.in_vocab],
        scale=y["scale"],
        history=history,
    )


def affordable_head_epochs(net: FinetuneNet, head_epochs: int, *, n_samples: int, n_cpgs: int) -> int:
    """`head_epochs`, or 0 (warned) when the head stage would cache more than `MAX_CACHE_BYTES` of features."""
    per_sample = n_cpgs * net.backbone.d_model if net.per_cpg else net.width
    cache = 4 * n_samples * per_sample
    if head_epochs == 0 or cache <= MAX_CACHE_BYTES:
        return head_epochs
    warn(
        f"The head stage would cache {cache / 2**30:.1f} GiB of backbone features ({n_samples} samples x "
        f"{per_sample} values), more than {MAX_CACHE_BYTES / 2**30:g} GiB: it is skipped, and backbone and head "
        "train together from the start. Pass head='mlp' (it caches one embedding per sample) or head_epochs=0 to "
        "silence this.",
        UserWarning,
    )
    return 0


def targets(spec: Target, *, train: np.ndarray, val: np.ndarray) -> dict[str, Any]:
    """The training and validation targets (a regression target min-max scaled on `train`) and the scale."""
    position = {row: i for i, row in enumerate(spec.rows)}
    y: dict[str, Any] = {
        name: spec.values[[position[r] for r in rows]] for name, rows in (("train", train), ("val", val))
    }
    y["scale"] = None
    if spec.task == "regression":
        low, high = float(y["train"].min()), float(y["train"].max())
        if low == high:
            msg = f"`obs[{spec.name!r}]` is constant ({low!r}) on the training samples; there is nothing to learn."
            raise ValueError(msg)
        y |= {k: ((y[k] - low) / (high - low)).astype(np.float32) for k in ("train", "val")}
        y["scale"] = (low, high)
    elif len(np.unique(y["train"])) < 2:
        msg = f"The training samples of `obs[{spec.name!r}]` hold a single class; classification needs at least two."
        raise ValueError(msg)
    return y
