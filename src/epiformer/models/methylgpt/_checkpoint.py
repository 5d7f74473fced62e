"""Reading and writing MethylGPT checkpoints: the authors' ``.pt`` state dicts and epiformer's safetensors.

Nothing is ever unpickled beyond tensors: ``.pt`` files go through ``torch.load(weights_only=True)`` and must
hold a plain mapping of parameter names to tensors. Loading is strict: every key of the architecture must be
present with the right shape and nothing else may be there (the authors' loader silently keeps random
attention weights when the key layouts differ; this one never does).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn

from epiformer._logging import warn
from epiformer._validation import first_items
from epiformer.models._base import (
    CONFIG,
    WEIGHTS,
    check_finite_weights,
    check_weights,
    history_frame,
    load_safetensors,
    read_config,
    save_folder,
    sha256,
)
from epiformer.models._registry import resolve
from epiformer.models.methylgpt._config import DEFAULT_N_HEADS, MASK_VALUE, MISSING_VALUE
from epiformer.models.methylgpt._vocab import MethylGPTVocab

VOCAB = "vocab.json"
ARGS = "args.json"
FORMAT = "epiformer.methylgpt"
_LAYER = re.compile(r"^transformer_encoder\.layers\.(\d+)\.")
_CLS_LAYER = re.compile(r"^cls_decoder\._decoder\.(\d+)\.")
#: Plain-PyTorch attention keys (``nn.MultiheadAttention``) and their flash-attention names.
_TORCH_ATTN = {".self_attn.in_proj_weight": ".self_attn.Wqkv.weight", ".self_attn.in_proj_bias": ".self_attn.Wqkv.bias"}


def read_state_dict(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or of a ``.pt`` / ``.pth`` / ``.bin`` plain state dict.

    Parameters
    ----------
    path
        The weight file.

    Returns
    -------
    Parameter name -> tensor (on the CPU).

    Raises
    ------
    ValueError
        If a pickle holds anything but tensors in (nested) dicts and lists, or its top level is not a mapping of
        names to tensors. Nothing from the file is executed.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        msg = (
            f"Refused to load {path}: it is not a plain state dict of tensors (`torch.load(weights_only=True)` "
            f"rejected it: {str(err).splitlines()[0]}). epiformer never unpickles arbitrary objects; re-save the "
            "weights with `torch.save(model.state_dict(), path)` from code you trust."
        )
        raise ValueError(msg) from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        msg = (
            f"{path} is a training checkpoint (it has a 'state_dict' entry next to {first_items(list(obj))}), not a plain "
            "state dict; save its model weights alone with `torch.save(checkpoint['state_dict'], path)`."
        )
        raise ValueError(msg)
    if not isinstance(obj, Mapping):
        msg = f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of parameter names to tensors)."
        raise ValueError(msg)
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        msg = f"{path} is not a plain state dict: these entries are not named tensors: {first_items(bad)}."
        raise ValueError(msg)
    check_finite_weights(obj, path=path)
    return dict(obj)


def _flash_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename plain-PyTorch ``in_proj_*`` attention keys to the published flash-attention ``Wqkv.*`` keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in _TORCH_ATTN.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
                break
        if key in out:
            msg = f"The weights hold both the flash-attention and the PyTorch layout of {key!r}; keep one."
            raise ValueError(msg)
        out[key] = value
    return out


def _shape_config(state: dict[str, torch.Tensor], vocab: MethylGPTVocab) -> dict[str, int]:
    """d_model, layers, feed-forward width and classification head read from the tensor shapes."""
    emb = state.get("encoder.embedding.weight")
    if emb is None or emb.ndim != 2:
        msg = (
            "The weights have no 2-D 'encoder.embedding.weight' (the CpG embedding table), so they are not a "
            f"MethylGPT state dict; keys found: {first_items(sorted(state))}."
        )
        raise ValueError(msg)
    n_tokens, d_model = emb.shape
    if n_tokens != len(vocab):
        msg = (
            f"The CpG embedding table has {n_tokens} rows but the vocabulary has {len(vocab)} tokens; the "
            "`vocab.json` does not belong to these weights."
        )
        raise ValueError(msg)
    layers = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    if not layers:
        msg = "The weights hold no 'transformer_encoder.layers.*' tensors."
        raise ValueError(msg)
    ffn = state.get("transformer_encoder.layers.0.linear1.weight")
    cls_layers = {int(m.group(1)) for k in state if (m := _CLS_LAYER.match(k))}
    out_layer = state.get("cls_decoder.out_layer.weight")
    return {
        "d_model": int(d_model),
        "n_layers": max(layers) + 1,
        "d_ff": int(ffn.shape[0]) if ffn is not None and ffn.ndim == 2 else int(d_model),
        "n_cls": int(out_layer.shape[0]) if out_layer is not None and out_layer.ndim == 2 else 1,
        "n_cls_layers": max(cls_layers) // 3 + 2 if cls_layers else 1,
    }


def _check_keys(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k}: {tuple(state[k].shape)} in the file, {expected[k]} expected"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped tensors ({len(misshaped)}): {'; '.join(misshaped)}")
    if problems:
        c = model.config
        msg = (
            f"The weights in {source} do not fit the MethylGPT architecture read from their shapes "
            f"(d_model={c['d_model']}, n_layers={c['n_layers']}, n_heads={c['n_heads']}, d_ff={c['d_ff']}); "
            "nothing was loaded. " + " | ".join(problems)
        )
        raise ValueError(msg)


def _resolve(path: Path) -> tuple[Path, Path]:
    """The weight file and the folder holding its companions."""
    if not path.exists():
        msg = (
            f"{path} does not exist. Download the authors' checkpoint folder (vocab.json, args.json and the .pt "
            "file) from their Google Drive and pass its path; epiformer never downloads at call time."
        )
        raise FileNotFoundError(msg)
    if path.is_file():
        return path, path.parent
    if (path / WEIGHTS).exists():
        return path / WEIGHTS, path
    candidates = sorted(p for p in path.iterdir() if p.suffix in {".pt", ".pth", ".bin", ".safetensors"})
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        msg = f"Expected one weight file (.pt, .pth, .bin or .safetensors) in {path}, found {found}; pass its path."
        raise ValueError(msg)
    return candidates[0], path


def _n_heads(explicit: int | None, args: dict[str, Any], config: dict[str, Any]) -> int:
    stored = args.get("nhead", config.get("n_heads"))
    if stored is not None and explicit is not None and int(stored) != explicit:
        msg = f"`n_heads={explicit}` contradicts the checkpoint's configuration ({int(stored)} heads)."
        raise ValueError(msg)
    if stored is None and explicit is None:
        msg = (
            f"The number of attention heads is not recorded next to the weights (no {ARGS} or {CONFIG}) and cannot "
            f"be read from their shapes; a wrong guess changes every output. Pass `n_heads=` (the published "
            f"MethylGPT checkpoints use {DEFAULT_N_HEADS})."
        )
        raise ValueError(msg)
    return int(stored if stored is not None else explicit)


def load_pretrained(
    cls: type[nn.Module],
    path: str | PathLike,
    *,
    vocab: MethylGPTVocab | str | PathLike | None = None,
    n_heads: int | None = None,
    download: bool = False,
) -> nn.Module:
    """Build a `cls` (a MethylGPT) and strictly load a checkpoint into it (see :meth:`MethylGPT.from_pretrained`).

    `path` may also be a registered name (``ef.models.list_pretrained()``): it resolves to the verified cache
    folder, downloaded first when `download` is True.
    """
    resolved = resolve(path, model="MethylGPT", download=download)
    model = _load(cls, resolved.path, vocab=vocab, n_heads=n_heads)
    resolved.confirm(model)
    return model


def _load(
    cls: type[nn.Module], path: Path, *, vocab: MethylGPTVocab | str | PathLike | None, n_heads: int | None
) -> nn.Module:
    weights, folder = _resolve(Path(path))
    if vocab is None:
        if not (folder / VOCAB).exists():
            msg = f"No {VOCAB} next to {weights}; pass `vocab=` (a MethylGPTVocab or the path of the vocab.json)."
            raise FileNotFoundError(msg)
        vocab = folder / VOCAB
    if not isinstance(vocab, MethylGPTVocab):
        vocab = MethylGPTVocab.from_json(vocab)
    args = read_config(folder / ARGS) if (folder / ARGS).exists() else {}
    config = read_config(folder / CONFIG) if (folder / CONFIG).exists() else {}

    state = _flash_keys(read_state_dict(weights))
    shapes = _shape_config(state, vocab)
    for name, key in (("d_model", "layer_size"), ("n_layers", "nlayers")):
        if key in args and int(args[key]) != shapes[name]:
            warn(
                f"{ARGS} says {key}={args[key]} but the weights have {name}={shapes[name]}; using the weights' shapes.",
                UserWarning,
            )
    model = cls(
        vocab,
        **shapes,
        n_heads=_n_heads(n_heads, args, config),
        dropout=float(args.get("dropout", config.get("dropout", 0.1))),
        mask_value=float(args.get("mask_value", config.get("mask_value", MASK_VALUE))),
        missing_value=float(args.get("pad_value", config.get("missing_value", MISSING_VALUE))),
    )
    _check_keys(model, state, str(weights))
    model.load_state_dict(state, strict=True)
    ours = config.get("format") == FORMAT and weights.name == WEIGHTS
    model.checkpoint = {
        "path": str(weights.resolve()),
        "format": "epiformer" if weights.suffix == ".safetensors" else "published",
        "sha256": check_weights(weights, config) if ours else sha256(weights),
    }
    model.history = history_frame(config.get("history") if ours else None)
    return model.eval()


def save_pretrained(model: nn.Module, directory: str | PathLike) -> None:
    """Write ``model.safetensors``, ``config.json`` and ``vocab.json`` (see :meth:`MethylGPT.save_pretrained`)."""
    save_folder(directory, format=FORMAT, config=model.config, tensors=model.state_dict(), history=model.history)
    model.vocab.to_json(Path(directory) / VOCAB)
