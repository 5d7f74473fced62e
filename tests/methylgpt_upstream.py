"""The authors' implementation, for the parity test and the benchmark: the ``methylgpt`` 0.1.2 wheel from PyPI.

It is installed without dependencies into a cached temporary folder (never into the environment, never copied
into epiformer) and imported from there. Its vendored scGPT imports a few packages that are not installed and
that the model code does not use (torchtext, scib, Hugging Face datasets); only those are stubbed, and only
while importing.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path

import torch

PACKAGE = "methylgpt==0.1.2"
CACHE = Path(os.environ.get("EPIFORMER_TEST_CACHE", tempfile.gettempdir())) / "epiformer-upstream-methylgpt-0.1.2"


class PyPIUnreachable(RuntimeError):
    """PyPI cannot be reached, so the published implementation cannot be installed."""


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
    except OSError:
        return False
    return True


def install() -> Path:
    """The folder holding the installed wheel (installed on first use, then reused)."""
    if (CACHE / "methylgpt" / "model" / "methyl_model.py").exists():
        return CACHE
    if not _pypi_reachable():
        msg = f"PyPI (pypi.org:443) is unreachable, so {PACKAGE} cannot be installed."
        raise PyPIUnreachable(msg)
    partial = CACHE.with_name(f"{CACHE.name}.partial-{os.getpid()}")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(partial), PACKAGE]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        shutil.rmtree(partial, ignore_errors=True)
        msg = f"`{' '.join(cmd)}` failed although PyPI is reachable:\n{done.stderr}"
        raise RuntimeError(msg)
    try:
        partial.rename(CACHE)
    except OSError:  # installed meanwhile by another process
        shutil.rmtree(partial, ignore_errors=True)
    return CACHE


def _stubs() -> dict[str, types.ModuleType]:
    """Empty stand-ins for the packages the vendored scGPT imports but its model code never uses."""
    stubs: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("torchtext") is None:
        torchtext, vocab = types.ModuleType("torchtext"), types.ModuleType("torchtext.vocab")
        vocab.Vocab = type("Vocab", (), {})
        torchtext.vocab = vocab
        stubs |= {"torchtext": torchtext, "torchtext.vocab": vocab}
    if importlib.util.find_spec("scib") is None:
        stubs["scib"] = types.ModuleType("scib")
    if importlib.util.find_spec("datasets") is None:
        datasets = types.ModuleType("datasets")
        datasets.Dataset, datasets.load_dataset = type("Dataset", (), {}), None
        stubs["datasets"] = datasets
    if importlib.util.find_spec("IPython") is None:  # imported for notebook detection only
        ipython = types.ModuleType("IPython")
        ipython.get_ipython = lambda: None
        stubs["IPython"] = ipython
    return stubs


def model_class() -> type:
    """The authors' ``MethylGPTModel`` (their subclass of the vendored scGPT ``TransformerModel``)."""
    root = install()
    path, modules = list(sys.path), set(sys.modules)
    stubs = _stubs()
    sys.modules.update(stubs)
    sys.path.insert(0, str(root))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # flash_attn is not installed: the plain PyTorch layers are used
            cls = importlib.import_module("methylgpt.model.methyl_model").MethylGPTModel
            base = importlib.import_module("scgpt.model.model").TransformerModel
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if name.split(".")[0] in {"methylgpt", "scgpt", *stubs}:
                del sys.modules[name]
    assert issubclass(cls, base)
    return cls


class UpstreamVocab(dict):
    """What the authors' model needs of a vocabulary: ``vocab[token]`` and ``pad_token``."""

    pad_token = "<pad>"


def vocab(n_probes: int) -> UpstreamVocab:
    """``<pad>``, ``<cls>``, ``<eoc>`` and `n_probes` probes ``cg00000000`` ..., as in the published vocab.json."""
    stoi = UpstreamVocab({"<pad>": 0, "<cls>": 1, "<eoc>": 2})
    stoi.update({f"cg{i:08d}": i + 3 for i in range(n_probes)})
    return stoi


def build(n_probes: int, *, d_model: int = 64, n_layers: int = 6, n_heads: int = 4, dropout: float = 0.1, seed=0):
    """The authors' model with the published configuration (``fast_transformer`` off: no flash-attn on CPU)."""
    cls = model_class()
    config = {
        "layer_size": d_model,
        "nhead": n_heads,
        "nlayers": n_layers,
        "dropout": dropout,
        "fast_transformer": False,
        "pre_norm": False,
    }
    torch.manual_seed(seed)
    return cls(config, vocab(n_probes))


def randomize(model: torch.nn.Module, *, seed: int = 0) -> None:
    """Random weights everywhere, LayerNorm scales included, so that no parameter can be mixed up unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(torch.empty_like(p).uniform_(0.5, 1.5, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5 / max(p.shape[-1], 1) ** 0.5)


def published_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights with the flash-attention key layout of the released checkpoints."""
    rename = {"self_attn.in_proj_weight": "self_attn.Wqkv.weight", "self_attn.in_proj_bias": "self_attn.Wqkv.bias"}
    out = {}
    for key, value in model.state_dict().items():
        for old, new in rename.items():
            key = key.replace(old, new)
        out[key] = value.clone()
    return out


def write_checkpoint(model: torch.nn.Module, directory: Path, *, dropout: float = 0.1) -> Path:
    """The released layout: ``model_epoch10.pt`` (flash keys), ``vocab.json`` and ``args.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(published_state_dict(model), directory / "model_epoch10.pt")
    (directory / "vocab.json").write_text(json.dumps(dict(model.vocab)))
    args = {
        "layer_size": model.d_model,
        "nlayers": len(model.transformer_encoder.layers),
        "nhead": model.transformer_encoder.layers[0].self_attn.num_heads,
        "dropout": dropout,
        "fast_transformer": True,
        "pre_norm": False,
        "mask_value": -1,
        "pad_value": -2,
        "pad_token": "<pad>",
        "special_tokens": ["<pad>", "<cls>", "<eoc>"],
        "max_seq_len": len(model.vocab) - 2,
    }
    (directory / "args.json").write_text(json.dumps(args))
    return directory
