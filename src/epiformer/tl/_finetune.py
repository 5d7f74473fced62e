"""`ef.tl.finetune`: a pretrained MethylGPT plus a head, trained on a sample trait; the predictor it returns."""

from __future__ import annotations

import copy
import json
import warnings
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_layer, doc_params, doc_random_state
from epiformer._targets import Task, resolve_target
from epiformer._utils import as_generator, package_version
from epiformer._validation import check_betas
from epiformer.models import Predictor
from epiformer.pp import align_to_vocab
from epiformer.tl._model_inputs import check_model, model_on, prepare_inputs

if TYPE_CHECKING:
    from epiformer.models import MethylGPT
    from epiformer.models.methylgpt._finetuning import FinetuneNet

_CONFIG, _HEAD, _BACKBONE = "predictor.json", "head.safetensors", "backbone"


class MethylGPTPredictor(Predictor):
    """A fine-tuned MethylGPT and its head, predicting one `obs` column; made by :func:`epiformer.tl.finetune`.

    Apply it with :func:`epiformer.tl.predict`; save it with :meth:`save` and read it back with :meth:`load`.
    """

    def __init__(
        self,
        net: FinetuneNet,
        *,
        target: str,
        task: Task,
        classes: list[str] | None,
        features: list[str],
        scale: tuple[float, float] | None,
        history: pd.DataFrame | None = None,
    ):
        self.net = net
        self.target = target
        self.task = task
        self.classes = classes
        self.features = list(features)
        """Vocabulary CpGs of the training data, in the order the network reads them."""
        self.scale = scale
        """``(min, max)`` of the regression target on the training split (the published min-max scaling)."""
        self.history = history if history is not None else pd.DataFrame()
        """Per-epoch `train_loss` and `val_loss` (plot with :func:`epiformer.pl.training_history`)."""

    def predict_values(
        self, adata: AnnData, *, layer: str | None = None, batch_size: int = 32, device: str = "auto"
    ) -> np.ndarray:
        """Predicted values (regression, in the target's units) or class probabilities for every sample.

        Training CpGs that `adata` lacks are read as missing (a warning below 50 % coverage).
        """
        import torch

        aligned = align_to_vocab(adata, self.features, layer=layer)
        coverage = aligned.uns[Key.uns.vocab_coverage]["fraction_found"]
        if coverage < 0.5:
            warnings.warn(
                f"Only {coverage:.0%} of the predictor's {len(self.features):,} CpGs are in the data; the others are "
                "read as missing.",
                UserWarning,
                stacklevel=3,
            )
        X = np.asarray(aligned.X, dtype=np.float32)
        check_betas(X, what="The methylation matrix")
        ids = torch.as_tensor([self.net.backbone.vocab[p] for p in self.features])
        outputs = []
        with model_on(self.net, device) as dev:
            for start in range(0, len(X), batch_size):
                out = self.net(torch.from_numpy(X[start : start + batch_size]).to(dev), ids.to(dev)).float()
                outputs.append((out if self.task == "regression" else torch.softmax(out, dim=-1)).cpu().numpy())
        values = np.concatenate(outputs)
        if self.task == "regression":
            lo, hi = self.scale
            return values[:, 0].astype(np.float64) * (hi - lo) + lo
        return values.astype(np.float64)

    def describe(self) -> dict:
        """Settings recorded next to the predictions."""
        return {**super().describe(), "head": self.net.head_name, "n_features": len(self.features)}

    def save(self, directory: str | PathLike, *, overwrite: bool = False) -> Path:
        """Write the backbone (``MethylGPT.save_pretrained``), the head (safetensors) and a JSON config; no pickle."""
        from safetensors.torch import save_file

        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()) and not overwrite:
            msg = f"{directory} exists and is not empty; pass overwrite=True to replace its files."
            raise FileExistsError(msg)
        directory.mkdir(parents=True, exist_ok=True)
        self.net.backbone.save_pretrained(directory / _BACKBONE)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.head.state_dict().items()}, directory / _HEAD)
        config = {
            "target": self.target,
            "task": self.task,
            "classes": self.classes,
            "features": self.features,
            "scale": list(self.scale) if self.scale else None,
            "head": self.net.head_name,
            "missing": self.net.missing,
            "history": self.history.to_dict(orient="list"),
            "epiformer_version": package_version(),
        }
        (directory / _CONFIG).write_text(json.dumps(config))
        return directory

    @classmethod
    def load(cls, directory: str | PathLike) -> MethylGPTPredictor:
        """Read a predictor written by :meth:`save`."""
        from safetensors.torch import load_file

        from epiformer.models import MethylGPT
        from epiformer.models.methylgpt._finetuning import FinetuneNet

        directory = Path(directory)
        if not (directory / _CONFIG).is_file():
            msg = f"{directory} holds no {_CONFIG}: not a predictor saved by `MethylGPTPredictor.save`."
            raise FileNotFoundError(msg)
        config = json.loads((directory / _CONFIG).read_text())
        backbone = MethylGPT.from_pretrained(directory / _BACKBONE)
        regression = config["task"] == "regression"
        n_out = 1 if regression else len(config["classes"])
        net = FinetuneNet(backbone, head=config["head"], n_out=n_out, regression=regression, missing=config["missing"])
        net.head.load_state_dict(load_file(directory / _HEAD), strict=True)
        net.eval()
        return cls(
            net,
            target=config["target"],
            task=config["task"],
            classes=config["classes"],
            features=config["features"],
            scale=tuple(config["scale"]) if config["scale"] else None,
            history=pd.DataFrame(config["history"]),
        )


def _split(
    adata: AnnData, rows: np.ndarray, *, split_key: str, val_size: float, random_state
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows: the ``train`` / ``val`` labels of `split_key` if present, else a random split."""
    rng = as_generator(random_state)
    if split_key in adata.obs:
        labels = adata.obs[split_key].iloc[rows].to_numpy()
        train, val = rows[labels == "train"], rows[labels == "val"]
        if len(val) == 0:  # no validation samples labelled: take some of the training ones
            train = rng.permutation(train)
            n_val = max(1, round(val_size * len(train)))
            train, val = np.sort(train[n_val:]), np.sort(train[:n_val])
    else:
        order = rng.permutation(rows)
        n_val = max(1, round(val_size * len(rows)))
        train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    if len(train) < 2:
        msg = f"Only {len(train)} training samples with a target value; fine-tuning needs at least 2."
        raise ValueError(msg)
    return train, val


@doc_params(layer=doc_layer, random_state=doc_random_state)
def finetune(
    adata: AnnData,
    model: MethylGPT,
    *,
    target: str,
    task: Task | Literal["auto"] = "auto",
    head: Literal["linear", "mlp", "resnet1d"] = "mlp",
    layer: str | None = None,
    var_key: str | None = None,
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
    adata
        Samples x CpGs of beta values.
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
    {random_state}
    progress
        Show Lightning's progress bar.

    Returns
    -------
    A :class:`~epiformer.tl.MethylGPTPredictor` (on the CPU, in evaluation mode) with its loss `history`.
    """
    import lightning.pytorch as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping
    from torch.utils.data import DataLoader, TensorDataset

    from epiformer._lightning import HistoryCallback, make_trainer, quiet_lightning
    from epiformer.models.methylgpt._finetuning import HEADS, FinetuneModule, FinetuneNet

    check_model(model, batch_size)
    if head not in HEADS:
        msg = f"`head` must be one of {HEADS}, got {head!r}."
        raise ValueError(msg)
    if not 0 < val_size < 1:
        msg = f"`val_size` must be in (0, 1), got {val_size!r}."
        raise ValueError(msg)
    spec = resolve_target(adata, target, task=task)
    inputs = prepare_inputs(adata, model, layer=layer, var_key=var_key)
    train, val = _split(adata, spec.rows, split_key=split_key, val_size=val_size, random_state=random_state)
    position = {row: i for i, row in enumerate(spec.rows)}
    y = {name: spec.values[[position[r] for r in rows]] for name, rows in (("train", train), ("val", val))}
    scale = None
    if spec.task == "regression":
        scale = (float(y["train"].min()), float(y["train"].max()))
        if scale[0] == scale[1]:
            msg = f"`obs[{target!r}]` is constant ({scale[0]!r}) on the training samples; there is nothing to learn."
            raise ValueError(msg)
        y = {k: ((v - scale[0]) / (scale[1] - scale[0])).astype(np.float32) for k, v in y.items()}
    elif len(np.unique(y["train"])) < 2:
        msg = f"The training samples of `obs[{target!r}]` hold a single class; classification needs at least two."
        raise ValueError(msg)

    betas = np.full((adata.n_obs, len(inputs.in_data)), np.nan, dtype=np.float32)
    for start, chunk in inputs.chunks():
        betas[start : start + len(chunk)] = chunk
    vocab = model.vocab
    features = [vocab.probes[i] for i in inputs.in_vocab]
    cpg_ids = torch.as_tensor(np.asarray(vocab.probe_ids)[inputs.in_vocab])

    backbone = copy.deepcopy(model).train()
    backbone.requires_grad_(not freeze_backbone)
    regression = spec.task == "regression"
    net = FinetuneNet(
        backbone, head=head, n_out=1 if regression else len(spec.classes), regression=regression, missing=missing
    )
    module = FinetuneModule(net, cpg_ids, lr_backbone=lr_backbone, lr_head=lr_head, weight_decay=weight_decay)

    def loader(rows: np.ndarray, values: np.ndarray, *, shuffle: bool) -> DataLoader:
        data = TensorDataset(torch.from_numpy(betas[rows]), torch.from_numpy(values))
        generator = torch.Generator().manual_seed(random_state)
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)

    history = HistoryCallback()
    callbacks: list[L.Callback] = [history]
    if early_stopping_patience is not None:
        callbacks.append(EarlyStopping(monitor="val_loss", patience=early_stopping_patience, mode="min"))
    with quiet_lightning():
        L.seed_everything(random_state, verbose=False)
        trainer = make_trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            gradient_clip_val=1.0,
            progress=progress,
            callbacks=callbacks,
        )
        trainer.fit(
            module,
            train_dataloaders=loader(train, y["train"], shuffle=True),
            val_dataloaders=loader(val, y["val"], shuffle=False),
        )
    if module.best_state is not None:
        net.load_state_dict(module.best_state)
    net.cpu().eval()
    return MethylGPTPredictor(
        net,
        target=target,
        task=spec.task,
        classes=spec.classes,
        features=features,
        scale=scale,
        history=pd.DataFrame(history.rows),
    )
