"""Reading the authors' Lightning checkpoints safely, and writing safetensors or the authors' layout.

The published files are PyTorch-Lightning checkpoints pickled with ``torch.save``; besides the weights they
pickle Lightning callback classes, which torch's ``weights_only`` loader rejects. We read them with that
loader (a pickle VM that never imports or calls anything outside an allowlist) after mapping the known
callback names to inert stand-in classes; any other global refuses the file before a byte is unpickled.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from epiformer._utils import package_version
from epiformer._validation import first_items
from epiformer.models._base import check_finite_weights, history_frame, load_folder, save_folder, sha256
from epiformer.models._registry import resolve
from epiformer.models.epigept._config import EpiGePTConfig

#: The ``format`` tag of the ``config.json`` that :meth:`EpiGePT.save_pretrained` writes.
FORMAT_TAG = "epiformer-epigept"


class _InertCallback:
    """Stand-in for a pickled Lightning callback: keeps whatever state was stored, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _InertAttributeDict(dict):
    """Stand-in for Lightning's ``AttributeDict`` (hyper-parameters): a plain dict."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_ins() -> list[tuple[Any, str]]:
    out: list[tuple[Any, str]] = []
    for package in ("pytorch_lightning", "lightning.pytorch"):
        for module, name in (
            ("early_stopping", "EarlyStopping"),
            ("model_checkpoint", "ModelCheckpoint"),
            ("lr_monitor", "LearningRateMonitor"),
            ("progress.tqdm_progress", "TQDMProgressBar"),
            ("progress", "ProgressBar"),
        ):
            full = f"{package}.callbacks.{module}.{name}"
            stand_in = type(name, (_InertCallback,), {"__module__": __name__, "__qualname__": f"inert.{name}"})
            out.append((stand_in, full))
        out.append((_InertAttributeDict, f"{package}.utilities.parsing.AttributeDict"))
    out.append((_InertAttributeDict, "lightning.fabric.utilities.data.AttributeDict"))
    # numpy scalars and their dtypes (pure data) appear in some callback states
    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar re-constructor, whatever its module path
    out += [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        (np.dtype, "numpy.dtype"),
    ]
    for code in ("f8", "f4", "i8", "i4", "b1"):
        dtype_class = type(np.dtype(code))
        out.append((dtype_class, f"numpy.dtypes.{dtype_class.__name__}"))
    return out


_ALLOWED = _stand_ins()


def _refuse(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"Refusing to load {path.name}: {reason}, outside what an EpiGePT checkpoint may contain (tensors, plain "
        "containers and Lightning's EarlyStopping / ModelCheckpoint callbacks). Nothing in the file was executed. "
        "If you trust its origin, load it yourself, keep only its `state_dict`, and save that with `torch.save` "
        "or as safetensors."
    )


def read_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """The unpickled checkpoint dictionary, read with the restricted loader described in the module docstring.

    Raises a :class:`ValueError` naming the offending globals for a file that refers to anything outside
    the allowed set; nothing from such a file is ever executed.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"No such checkpoint file: {path}"
        raise FileNotFoundError(msg)
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        msg = (
            f"Reading the Lightning checkpoint {path.name} safely needs torch>=2.5 (its loader with allow-listed "
            f"classes); this is torch {torch.__version__}. Upgrade torch, or load a folder written by "
            "`EpiGePT.save_pretrained`."
        )
        raise ImportError(msg)
    if zipfile.is_zipfile(path):
        # static disassembly of the pickle: no object is built
        with torch.serialization.safe_globals(_ALLOWED):
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        if unsafe:
            raise _refuse(path, f"it refers to {first_items(sorted(unsafe))}")
    try:
        with torch.serialization.safe_globals(_ALLOWED), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # legacy (non-zip) files are vetted by the loader itself
        text = str(err)
        found = re.findall(r"GLOBAL (\S+)", text)
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\n", text + "\n")
        reason = (
            f"it refers to {first_items(found)}"
            if found
            else f"it uses pickle features the restricted loader refuses ({detail[1] if detail else 'unreadable'})"
        )
        raise _refuse(path, reason) from None
    if not isinstance(ckpt, dict):
        msg = f"{path.name} holds a {type(ckpt).__name__}, not a checkpoint dictionary."
        raise ValueError(msg)
    return ckpt


def _read_tf_names(tf_names: Sequence[str] | str | Path | None) -> list[str] | None:
    if tf_names is None:
        return None
    if isinstance(tf_names, str | Path):
        file = Path(tf_names)
        if not file.is_file():
            msg = f"`tf_names` must be a list of TF names or a text file with one name per line; no file {file}."
            raise FileNotFoundError(msg)
        return [line.strip() for line in file.read_text().splitlines() if line.strip()]
    return [str(t) for t in tf_names]


def _split_state(state: dict[str, torch.Tensor]) -> tuple[str, str]:
    """Encoder prefix and head layout of a published state dict."""
    if "encoder.embeddings.position_embeddings.weight" in state:
        bert = "encoder."
    elif "transformermodule.embeddings.position_embeddings.weight" in state:
        bert = "transformermodule."
    else:
        msg = (
            "Not an EpiGePT checkpoint: no `encoder.embeddings.position_embeddings.weight` (or "
            f"`transformermodule.…`) in its state_dict; keys start {first_items(sorted(state), 4)}."
        )
        raise ValueError(msg)
    if "fc1.weight" in state:
        head = "mlp"
    elif "fc2.weight" in state:
        head = "fc2"
    elif "multitaskmodule.linear.weight" in state:
        head = "multitask"
    else:
        msg = "Not an EpiGePT checkpoint: no output head (`fc1`/`fc2` or `multitaskmodule.linear`) in its state_dict."
        raise ValueError(msg)
    return bert, head


def config_from_state(
    state: dict[str, torch.Tensor], *, tf_names: Sequence[str] | None = None, n_heads: int = 8
) -> EpiGePTConfig:
    """Detect the release (hg38 8-signal, hg19 8-signal, DNase-only) and shape from keys and tensor shapes."""
    bert, head = _split_state(state)
    conv_w = [state.get(f"convmodule.conv{i}.weight") for i in range(1, 6)]
    if any(w is None for w in conv_w):
        msg = "Not an EpiGePT checkpoint: it lacks the five `convmodule.conv{1..5}` convolutions."
        raise ValueError(msg)
    layer_ids = {int(m[1]) for k in state if (m := re.match(rf"{re.escape(bert)}encoder\.layer\.(\d+)\.", k))}
    positions = state[f"{bert}embeddings.position_embeddings.weight"]
    hidden = positions.shape[1]
    tf_dim = hidden - conv_w[-1].shape[0]
    if head == "mlp":
        head_hidden, n_signals = state["fc1.weight"].shape[0], state["fc2.weight"].shape[0]
    else:
        key = "fc2.weight" if head == "fc2" else "multitaskmodule.linear.weight"
        head_hidden, n_signals = None, state[key].shape[0]
    variant = "dnase" if n_signals == 1 else ("hg38" if head == "mlp" else "hg19")
    base = EpiGePTConfig.preset(variant)
    n_tfs = len(tf_names) if tf_names is not None else (711 if tf_dim == 712 else tf_dim)
    if tf_dim == 712 and n_tfs != 711:
        msg = f"The published checkpoints take 711 TFs (padded to 712); got {n_tfs} `tf_names`."
        raise ValueError(msg)
    return base.replace(
        conv_channels=tuple(w.shape[0] for w in conv_w),
        conv_kernels=tuple(w.shape[2] for w in conv_w),
        max_positions=positions.shape[0],
        n_bins=min(base.n_bins, positions.shape[0]),
        n_tfs=n_tfs,
        tf_dim=tf_dim,
        n_layers=len(layer_ids),
        n_heads=n_heads,
        ffn_dim=state[f"{bert}encoder.layer.0.intermediate.dense.weight"].shape[0],
        head_hidden=head_hidden,
        signals=base.signals if n_signals == len(base.signals) else tuple(f"signal_{i}" for i in range(n_signals)),
        tf_names=tuple(tf_names) if tf_names is not None else None,
    )


def _published_names(config: EpiGePTConfig, bert: str = "encoder.", head: str = "mlp") -> dict[str, list[str]]:
    """Our parameter name -> the published key(s) it is made of (q, k, v are stacked into `qkv`)."""
    names: dict[str, list[str]] = {}
    for i in range(5):
        for part in ("weight", "bias"):
            names[f"sequence.convs.{i}.{part}"] = [f"convmodule.conv{i + 1}.{part}"]
    emb = f"{bert}embeddings."
    names["position_embeddings"] = [f"{emb}position_embeddings.weight"]
    names["token_type_embedding"] = [f"{emb}token_type_embeddings.weight"]
    for part in ("weight", "bias"):
        names[f"embed_norm.{part}"] = [f"{emb}LayerNorm.{part}"]
    for i in range(config.n_layers):
        src = f"{bert}encoder.layer.{i}."
        for part in ("weight", "bias"):
            names[f"layers.{i}.qkv.{part}"] = [f"{src}attention.self.{p}.{part}" for p in ("query", "key", "value")]
            names[f"layers.{i}.attn_out.{part}"] = [f"{src}attention.output.dense.{part}"]
            names[f"layers.{i}.attn_norm.{part}"] = [f"{src}attention.output.LayerNorm.{part}"]
            names[f"layers.{i}.ffn_in.{part}"] = [f"{src}intermediate.dense.{part}"]
            names[f"layers.{i}.ffn_out.{part}"] = [f"{src}output.dense.{part}"]
            names[f"layers.{i}.ffn_norm.{part}"] = [f"{src}output.LayerNorm.{part}"]
    for part in ("weight", "bias"):
        if head == "mlp":
            names[f"head.0.{part}"] = [f"fc1.{part}"]
            names[f"head.2.{part}"] = [f"fc2.{part}"]
        else:
            names[f"head.0.{part}"] = [f"fc2.{part}" if head == "fc2" else f"multitaskmodule.linear.{part}"]
    return names


def _ignored(bert: str) -> set[str]:
    """Published keys that EpiGePT never uses (BERT's word embeddings, pooler and ``position_ids`` buffer)."""
    emb = f"{bert}embeddings."
    return {
        f"{emb}position_ids",
        f"{emb}word_embeddings.weight",
        f"{bert}pooler.dense.weight",
        f"{bert}pooler.dense.bias",
    }


def state_from_published(state: dict[str, torch.Tensor], config: EpiGePTConfig) -> dict[str, torch.Tensor]:
    """Our state dict from a published one; every published key must be used or known to be unused."""
    bert, head = _split_state(state)
    mapping = _published_names(config, bert, head)
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for ours, theirs in mapping.items():
        absent = [k for k in theirs if k not in state]
        if absent:
            missing.extend(absent)
            continue
        tensors = [state[k].float() for k in theirs]
        out[ours] = torch.cat(tensors) if len(tensors) > 1 else tensors[0]
        if ours == "token_type_embedding":  # BERT adds row 0 (token_type_ids are all zero)
            out[ours] = out[ours][0]
    unexpected = sorted(set(state) - {k for v in mapping.values() for k in v} - _ignored(bert))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {first_items(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {first_items(unexpected)}")
        msg = f"The checkpoint does not match the detected EpiGePT {config.variant} layout: " + "; ".join(parts) + "."
        raise ValueError(msg)
    return out


def load_pretrained(
    cls: type[nn.Module],
    path: str | Path,
    *,
    tf_names: Sequence[str] | str | Path | None,
    n_heads: int,
    download: bool = False,
) -> nn.Module:
    """Implementation of :meth:`EpiGePT.from_pretrained`: `cls` is the network class to build.

    `path` may also be a registered name (``ef.models.list_pretrained()``): it resolves to the verified file in
    the cache, downloaded first when `download` is True.
    """
    resolved = resolve(path, model="EpiGePT", download=download)
    model = _load(cls, resolved.path, tf_names=tf_names, n_heads=n_heads)
    resolved.confirm(model)
    return model


def _load(cls: type[nn.Module], path: Path, *, tf_names: Sequence[str] | str | Path | None, n_heads: int) -> nn.Module:
    names = _read_tf_names(tf_names)
    if path.is_dir():
        meta, tensors, info = load_folder(path, format=FORMAT_TAG)
        config = EpiGePTConfig.from_dict(meta["config"])
        if names is not None:
            if len(names) != config.n_tfs:
                msg = f"{len(names)} `tf_names` for a model of {config.n_tfs} TFs."
                raise ValueError(msg)
            config = config.replace(tf_names=tuple(names))
        model = cls(config)
        model.load_state_dict(tensors, strict=True)
        model.history = history_frame(meta.get("history")) if meta.get("history") else model.history
        checkpoint = {**meta.get("checkpoint", {}), **info, "format": "safetensors"}
    else:
        ckpt = read_lightning_checkpoint(path)
        state = ckpt.get("state_dict", ckpt)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            msg = f"{path.name} has no `state_dict` of tensors; is it an EpiGePT Lightning checkpoint?"
            raise ValueError(msg)
        check_finite_weights(state, path=path)
        hparams = ckpt.get("hyper_parameters") or {}
        if names is None and isinstance(hparams, dict) and hparams.get("tf_names"):
            names = [str(t) for t in hparams["tf_names"]]
        config = config_from_state(state, tf_names=names, n_heads=n_heads)
        if isinstance(hparams, dict) and hparams.get("signals") and len(hparams["signals"]) == config.n_signals:
            config = config.replace(signals=tuple(hparams["signals"]))
        model = cls(config)
        model.load_state_dict(state_from_published(state, config), strict=True)
        checkpoint = {
            "path": str(path),
            "format": "lightning",
            "sha256": sha256(path),
            "variant": config.variant,
            "epoch": ckpt.get("epoch"),
        }
    model.checkpoint = checkpoint
    return model.eval()


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """``config.json`` and ``model.safetensors`` of an EpiGePT in directory `path` (see :func:`save_folder`).

    The provenance of a model loaded from the authors' file (its sha256, release and epoch) is kept under
    ``checkpoint``, with the sha256 renamed ``source_sha256``.
    """
    info = model.checkpoint
    source = info.get("source_sha256") or (info.get("sha256") if info.get("format") == "lightning" else None)
    provenance = {k: info[k] for k in ("variant", "epoch") if info.get(k) is not None}
    if source:
        provenance["source_sha256"] = source
    meta: dict[str, Any] = {"config": model.config.to_dict()}
    if provenance:
        meta["checkpoint"] = provenance
    return save_folder(path, format=FORMAT_TAG, config=meta, tensors=model.state_dict(), history=model.history)


def save_lightning(model: nn.Module, path: str | Path) -> Path:
    """A ``torch.save`` checkpoint in the authors' layout (see :meth:`EpiGePT.save_pretrained`)."""
    config = model.config
    head = "mlp" if config.head_hidden is not None else "fc2"
    ours = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for name, theirs in _published_names(config, "encoder.", head).items():
        tensor = ours[name].detach().cpu()
        if name == "token_type_embedding":
            tensor = torch.stack([tensor, torch.zeros_like(tensor)])
        for key, part in zip(theirs, tensor.chunk(len(theirs)), strict=True):
            state[key] = part.clone().contiguous()
    h = config.hidden_size
    state["encoder.embeddings.position_ids"] = torch.arange(config.max_positions)[None]
    state["encoder.embeddings.word_embeddings.weight"] = torch.zeros(256, h)
    state["encoder.pooler.dense.weight"] = torch.zeros(h, h)
    state["encoder.pooler.dense.bias"] = torch.zeros(h)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": "epiformer " + package_version(),
        "state_dict": state,
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hyper_parameters": {"tf_names": list(config.tf_names or []), "signals": list(config.signals)},
    }
    torch.save(ckpt, path)
    return path
