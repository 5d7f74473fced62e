"""`MethylGPTPredictor`: a fine-tuned MethylGPT and its head, predicting one `obs` column; saved without pickle."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from epiformer._constants import Key
from epiformer._logging import warn
from epiformer._probe_ids import check_coverage
from epiformer._targets import Task
from epiformer._utils import progress_bar
from epiformer._validation import check_betas, refuse_all_missing
from epiformer.models._base import (
    Predictor,
    history_frame,
    load_folder,
    load_safetensors,
    on_device,
    read_config,
    save_folder,
)
from epiformer.models.methylgpt._heads import FinetuneNet
from epiformer.models.methylgpt._module import MethylGPT
from epiformer.pp import align_to_vocab

FORMAT = "epiformer.MethylGPTPredictor"
BACKBONE = "backbone"
#: The layout of the earlier release (``predictor.json`` + ``head.safetensors``), still read for one release.
LEGACY_CONFIG, LEGACY_HEAD = "predictor.json", "head.safetensors"


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
        self.history = history_frame(history)
        """Per-epoch `train_loss` and `val_loss` (plot with :func:`epiformer.pl.training_history`)."""

    def predict_values(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        batch_size: int = 32,
        device: str | torch.device = "auto",
        progress: bool = False,
    ) -> np.ndarray:
        """Predicted values (regression, in the target's units) or class probabilities for every sample.

        Training CpGs that `adata` lacks are read as missing (a warning below 50 % coverage).
        """
        aligned = align_to_vocab(adata, self.features, layer=layer)
        check_coverage(aligned.uns[Key.uns.vocab_coverage], who="the predictor", fallback="read as missing")
        X = np.asarray(aligned.X, dtype=np.float32)
        check_betas(X, what="The methylation matrix")
        refuse_all_missing(X, what="the predictor's CpGs in the data")
        ids = torch.as_tensor([self.net.backbone.vocab[p] for p in self.features])
        outputs = []
        with (
            on_device(self.net, device, bf16_on_cuda=True) as dev,
            progress_bar(total=len(X), desc="MethylGPT prediction", unit="sample", disable=not progress) as bar,
        ):
            for start in range(0, len(X), batch_size):
                out = self.net(torch.from_numpy(X[start : start + batch_size]).to(dev), ids.to(dev)).float()
                outputs.append((out if self.task == "regression" else torch.softmax(out, dim=-1)).cpu().numpy())
                bar.update(len(out))
        values = np.concatenate(outputs)
        if self.task == "regression":
            lo, hi = self.scale
            return values[:, 0].astype(np.float64) * (hi - lo) + lo
        return values.astype(np.float64)

    def describe(self) -> dict:
        """Settings recorded next to the predictions."""
        return {
            **super().describe(),
            "head": self.net.head_name,
            "readout": self.net.readout,
            "standardize": self.net.standardize,
            "n_features": len(self.features),
        }

    def save(self, directory: str | PathLike, *, overwrite: bool = False) -> Path:
        """Write the head (``model.safetensors``), its ``config.json`` and the backbone (``backbone/``); no pickle.

        Parameters
        ----------
        directory
            Folder to write (created).
        overwrite
            Replace the files of a non-empty folder.

        Returns
        -------
        The folder written.
        """
        config = {
            "target": self.target,
            "task": self.task,
            "classes": self.classes,
            "features": self.features,
            "scale": list(self.scale) if self.scale else None,
            "head": self.net.head_name,
            "readout": self.net.readout,
            "standardize": self.net.standardize,
            "missing": self.net.missing,
        }
        directory = save_folder(
            directory,
            format=FORMAT,
            config=config,
            tensors=self.net.head.state_dict(),
            history=self.history,
            overwrite=overwrite,
        )
        self.net.backbone.save_pretrained(directory / BACKBONE)
        return directory

    @classmethod
    def load(cls, directory: str | PathLike) -> MethylGPTPredictor:
        """Read a predictor written by :meth:`save`.

        Parameters
        ----------
        directory
            The folder.

        Returns
        -------
        The predictor, in evaluation mode.
        """
        if (Path(directory) / LEGACY_CONFIG).is_file():
            config, tensors = _read_legacy(Path(directory))
        else:
            config, tensors, _ = load_folder(directory, format=FORMAT)
        backbone = MethylGPT.from_pretrained(Path(directory) / BACKBONE)
        regression = config["task"] == "regression"
        n_out = 1 if regression else len(config["classes"])
        net = FinetuneNet(
            backbone,
            head=config["head"],
            n_out=n_out,
            regression=regression,
            missing=config["missing"],
            # predictors saved before these options read <cls>, unstandardised
            readout=config.get("readout", "cls"),
            standardize=config.get("standardize", False),
        )
        net.head.load_state_dict(tensors, strict=True)
        net.eval()
        return cls(
            net,
            target=config["target"],
            task=config["task"],
            classes=config["classes"],
            features=config["features"],
            scale=tuple(config["scale"]) if config["scale"] else None,
            history=config.get("history"),
        )


def _read_legacy(directory: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Configuration and head tensors of a predictor saved by the earlier release."""
    warn(
        f"{directory} uses the earlier predictor layout ({LEGACY_CONFIG}, {LEGACY_HEAD}); save it again with "
        "`MethylGPTPredictor.save` to write the current one (config.json, model.safetensors). The old layout "
        "will not be read in the next release.",
        FutureWarning,
    )
    return read_config(directory / LEGACY_CONFIG), load_safetensors(directory / LEGACY_HEAD)
