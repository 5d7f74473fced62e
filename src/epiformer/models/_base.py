"""What every model shares: device context, type check, weights' provenance, predictor interface and on-disk layout.

The layout is a folder with ``config.json`` and ``model.safetensors``; the configuration carries a format tag,
the epiformer version, the weights' sha256 and the training history.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._files import atomic_path
from epiformer._logging import warn
from epiformer._targets import Task
from epiformer._utils import package_version, resolve_device

if TYPE_CHECKING:
    import torch
    from torch import nn

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
#: Columns of every model's `history`: one row per epoch of its last training run.
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss")
#: Where a model's weights came from: its random initialisation, a checkpoint, or a training run.
WeightsSource = Literal["random", "checkpoint", "trained"]


def check_model(model: Any, cls: type, *, how: str) -> None:
    """Raise a :class:`TypeError` unless `model` is a `cls`; `how` says how to get one."""
    if not isinstance(model, cls):
        msg = f"`model` must be an `ef.models.{cls.__name__}`, got {type(model).__name__}; {how}."
        raise TypeError(msg)


@contextmanager
def on_device(module: nn.Module, device: str | torch.device, *, bf16_on_cuda: bool = False) -> Iterator[torch.device]:
    """Run `module` in evaluation mode under :func:`torch.inference_mode` on `device`, then put it back.

    ``"auto"`` picks CUDA, then MPS, then the CPU. With `bf16_on_cuda`, computations on CUDA run under bf16
    autocast. The module's device and training mode are restored afterwards, even on error.
    """
    import torch

    target = resolve_device(device)
    home = next(module.parameters()).device
    training = module.training
    module.to(target).eval()
    try:
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type=target.type, dtype=torch.bfloat16, enabled=bf16_on_cuda and target.type == "cuda"
            ),
        ):
            yield target
    finally:
        module.to(home).train(training)


def sha256(path: str | PathLike) -> str:
    """Hex sha256 of a file, read in 1-MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def history_frame(history: Any) -> pd.DataFrame:
    """A training history (DataFrame, dict of columns, list of rows or `None`) with the :data:`HISTORY_COLUMNS` first."""
    frame = pd.DataFrame(history if history is not None else {}).reset_index(drop=True)
    return frame.reindex(columns=list(dict.fromkeys([*HISTORY_COLUMNS, *frame.columns])))


def save_folder(
    directory: str | PathLike,
    *,
    format: str,
    config: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    history: pd.DataFrame | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into `directory` (created); nothing is pickled.

    Both files are written to temporary names first and renamed when complete, so an interrupted save leaves
    the previous files; the weights' sha256 in the config tells a reader if only one of them was replaced.

    ``config.json`` holds `config` plus ``format``, ``epiformer_version``, ``sha256`` (of the weight file, checked
    by :func:`load_folder`) and ``history`` (a dict of columns).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if not overwrite and directory.exists() and any(directory.iterdir()):
        msg = f"{directory} exists and is not empty; pass `overwrite=True` to replace its files."
        raise FileExistsError(msg)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    frame = history_frame(history)
    with atomic_path(directory / WEIGHTS) as weights, atomic_path(directory / CONFIG) as config_file:
        save_file(tensors, str(weights), metadata={"format": "pt"})  # the tag Hugging Face loaders read
        meta = {
            **config,
            "format": format,
            "epiformer_version": package_version(),
            "sha256": sha256(weights),
            "history": {str(column): frame[column].tolist() for column in frame.columns},
        }
        config_file.write_text(json.dumps(meta, indent=1))
    return directory


def read_config(path: str | PathLike, *, format: str | None = None) -> dict[str, Any]:
    """A ``config.json`` as a dict, checked to be a JSON object (with the `format` tag, when given)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        msg = f"{path} is not valid JSON ({err}); the folder was not written by epiformer, or was damaged."
        raise ValueError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path} does not hold a JSON object."
        raise ValueError(msg)
    if format is not None and data.get("format") != format:
        msg = f"{path} is not an epiformer {format!r} configuration (its format is {data.get('format')!r})."
        raise ValueError(msg)
    return data


def check_weights(weights: Path, config: Mapping[str, Any]) -> str:
    """The sha256 of `weights`, after checking it against the one `config` records (a stale or swapped file is refused)."""
    digest = sha256(weights)
    expected = config.get("sha256")
    if expected and expected != digest:
        msg = (
            f"{weights} has sha256 {digest}, but its {CONFIG} was written for {expected}: the weights were replaced "
            "or the folder mixes two saves. Save the model again, or restore the matching file."
        )
        raise ValueError(msg)
    return digest


def check_finite_weights(tensors: Mapping[str, torch.Tensor], *, path: str | PathLike) -> None:
    """Raise a :class:`ValueError` naming the tensors of `path` that hold NaN or infinite values.

    A model built from such weights answers NaN (or nonsense) for every input, so it is never loaded.
    """
    import torch

    bad = {
        name: int((~torch.isfinite(t)).sum())
        for name, t in tensors.items()
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    }
    if bad:
        shown = ", ".join(f"{name} ({n})" for name, n in list(bad.items())[:5])
        msg = (
            f"{path} holds NaN or infinite weights in {len(bad)} tensor(s): {shown}"
            f"{', ...' if len(bad) > 5 else ''}. The training that wrote it diverged or the file is damaged; "
            "use an earlier checkpoint, or train again with a lower learning rate."
        )
        raise ValueError(msg)


def load_safetensors(path: str | PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, all finite.

    Raises
    ------
    ValueError
        If the file is truncated, is a web page saved in its place, or holds NaN or infinite weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except SafetensorError as err:
        msg = (
            f"{path} is not a complete safetensors file ({err}): the download was interrupted, or a web page was "
            "saved in its place. Download or save it again."
        )
        raise ValueError(msg) from None
    check_finite_weights(tensors, path=path)
    return tensors


def load_folder(directory: str | PathLike, *, format: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict]:
    """Read a folder written by :func:`save_folder`: its config, its tensors and ``{"path", "sha256"}``."""
    directory = Path(directory)
    if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
        msg = f"{directory} does not hold {CONFIG} and {WEIGHTS} (a folder written by epiformer's `save`)."
        raise FileNotFoundError(msg)
    config = read_config(directory / CONFIG, format=format)
    digest = check_weights(directory / WEIGHTS, config)
    return config, load_safetensors(directory / WEIGHTS), {"path": str(directory.resolve()), "sha256": digest}


class WeightsProvenance:
    """Mixin of the torch models (before :class:`torch.nn.Module` in the bases): where their weights came from.

    :attr:`weights_source` starts as ``"random"``; :meth:`load_state_dict` (which every ``from_pretrained`` runs, as
    does a user loading a state dict by hand) sets ``"checkpoint"``, and epiformer's Lightning training (every
    ``ef.tl`` trainer) sets ``"trained"`` on each model it trains. The tools that run a model call
    :meth:`warn_if_random`.
    """

    weights_source: WeightsSource = "random"
    """``"random"`` (never loaded nor trained), ``"checkpoint"`` or ``"trained"``."""

    def load_state_dict(self, state_dict: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """:meth:`torch.nn.Module.load_state_dict`, then record that the weights came from a checkpoint."""
        result = super().load_state_dict(state_dict, *args, **kwargs)  # type: ignore[misc]
        self.weights_source = "checkpoint"
        return result

    def warn_if_random(self) -> None:
        """Warn, once per model object, when its weights were never loaded from a checkpoint nor trained."""
        if self.weights_source != "random" or self.__dict__.get("_warned_random", False):
            return
        self._warned_random = True
        name = type(self).__name__
        warn(
            f"the weights of this {name} were never loaded from a checkpoint nor trained: outputs are from random "
            f"initialisation. Load weights with `ef.models.{name}.from_pretrained(path)` or train the model first."
        )


class Predictor(ABC):
    """A trained model that predicts one `obs` column of a samples x CpGs methylation matrix.

    Subclasses set `target`, `task` and `classes` and implement :meth:`predict_values`;
    :func:`epiformer.tl.predict` writes the result into the AnnData.
    """

    target: str
    """The `obs` column the model was trained on."""
    task: Task
    """``"regression"`` or ``"classification"``."""
    classes: list[str] | None
    """Class labels in output order (classification) or `None`."""

    @abstractmethod
    def predict_values(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        batch_size: int = 32,
        device: str | torch.device = "auto",
        progress: bool = False,
    ) -> np.ndarray:
        """Predictions for every sample: values ``(n_obs,)`` or class probabilities ``(n_obs, n_classes)``.

        `batch_size`, `device` and `progress` apply to predictors that run a network.
        """

    def describe(self) -> dict:
        """Settings recorded in `uns` next to the predictions."""
        return {"predictor": type(self).__name__, "target": self.target, "task": self.task}
