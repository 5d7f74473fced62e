"""The published EpiGePT network as its authors build it (``transformers.BertModel`` encoder), for parity checks.

Test-and-benchmark support only: ``transformers`` is a test dependency, never imported by epiformer itself.
The layout follows ``model_hg38/EpiGePT.py`` (hg38: ``convmodule`` + ``encoder`` + ``fc1``/``fc2``) and the
hg19 ``EpiGePT_pretrain`` variant (``encoder`` + ``fc2`` 968 -> 8); checkpoints are written as
PyTorch-Lightning 1.2 did (``state_dict`` plus epoch, optimizer states and callback states keyed by class).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from epiformer.models import EpiGePTConfig

SAFE_LOADER = hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint")
needs_safe_loader = pytest.mark.skipif(
    not SAFE_LOADER, reason="reading Lightning checkpoints with allow-listed classes needs torch>=2.5"
)


class PublishedConvModule(nn.Module):
    def __init__(self, config: EpiGePTConfig) -> None:
        super().__init__()
        ins = (4, *config.conv_channels[:-1])
        for i, (cin, cout, k, pool) in enumerate(
            zip(ins, config.conv_channels, config.conv_kernels, config.pools, strict=True)
        ):
            setattr(self, f"conv{i + 1}", nn.Conv1d(cin, cout, kernel_size=k, padding=k // 2, stride=1))
            setattr(self, f"pool{i + 1}", nn.MaxPool1d(kernel_size=pool))
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=config.conv_dropout)

    def forward(self, x):
        for i in range(1, 6):
            x = getattr(self, f"pool{i}")(self.relu(getattr(self, f"conv{i}")(x)))
            if i in (3, 5):
                x = self.dropout(x)
        return x


class PublishedEpiGePT(nn.Module):
    """hg38 (``head_hidden`` set: fc1 -> ReLU -> fc2 -> ReLU) or hg19-pretrain (fc2 -> ReLU) layout."""

    def __init__(self, config: EpiGePTConfig, *, attn_implementation: str = "eager") -> None:
        from transformers import BertConfig, BertModel

        super().__init__()
        self.convmodule = PublishedConvModule(config)
        bert = BertConfig(
            vocab_size=256,
            hidden_size=config.hidden_size,
            num_hidden_layers=config.n_layers,
            num_attention_heads=config.n_heads,
            intermediate_size=config.ffn_dim,
            output_hidden_states=False,
            output_attentions=False,
            max_position_embeddings=config.max_positions,
        )
        bert._attn_implementation = attn_implementation
        self.encoder = BertModel(config=bert)
        self.head_hidden = config.head_hidden
        if config.head_hidden is None:
            self.fc2 = nn.Linear(config.hidden_size, config.n_signals)
        else:
            self.fc1 = nn.Linear(config.hidden_size, config.head_hidden)
            self.fc2 = nn.Linear(config.head_hidden, config.n_signals)

    def forward(self, seq, tf):
        x = self.convmodule(seq).transpose(1, 2)
        x = torch.cat([x, tf], dim=2)
        x = self.encoder(inputs_embeds=x)[0]
        if self.head_hidden is not None:
            x = F.relu(self.fc1(x))
        return F.relu(self.fc2(x))


def save_lightning_checkpoint(net: nn.Module, path: Path, *, optimizer_state: bool = True, extra: dict | None = None):
    """``torch.save`` a dict laid out as a PyTorch-Lightning 1.2 checkpoint of `net`."""
    from pytorch_lightning.callbacks.early_stopping import EarlyStopping
    from pytorch_lightning.callbacks.model_checkpoint import ModelCheckpoint

    state = net.state_dict()
    # transformers < 4.31 kept position_ids as a persistent buffer, so the published files carry it
    state["encoder.embeddings.position_ids"] = torch.arange(
        net.encoder.embeddings.position_embeddings.num_embeddings
    ).expand(1, -1)
    ckpt = {
        "epoch": 41,
        "global_step": 12345,
        "pytorch-lightning_version": "1.2.10",
        "callbacks": {
            EarlyStopping: {"wait_count": 3, "stopped_epoch": 41, "best_score": torch.tensor(0.42), "patience": 3},
            ModelCheckpoint: {
                "monitor": "val_loss",
                "best_model_score": torch.tensor(0.42),
                "best_model_path": "/data/epigept/epoch=38.ckpt",
                "current_score": torch.tensor(0.43),
                "dirpath": "/data/epigept",
            },
        },
        "optimizer_states": [],
        "lr_schedulers": [],
        "state_dict": state,
    }
    if optimizer_state:
        params = list(net.parameters())
        ckpt["optimizer_states"] = [
            {
                "state": {
                    i: {"step": 10, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                    for i, p in enumerate(params)
                },
                "param_groups": [
                    {
                        "lr": 5e-5,
                        "betas": (0.9, 0.999),
                        "eps": 1e-8,
                        "weight_decay": 0,
                        "amsgrad": False,
                        "params": list(range(len(params))),
                    }
                ],
            }
        ]
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return path


def small_config(**overrides) -> EpiGePTConfig:
    """A small hg38-shaped network for fast tests: 64 bins of 128 bp (8 kb windows), 2 layers, hidden 32."""
    params = {
        "conv_channels": (8, 8, 16, 16, 24),
        "n_tfs": 7,
        "tf_dim": 8,
        "n_layers": 2,
        "n_heads": 4,
        "ffn_dim": 48,
        "n_bins": 64,
        "max_positions": 64,
        "head_hidden": 16,
        "variant": "custom",
    }
    params.update(overrides)
    return EpiGePTConfig(**params)


def perturb(net: nn.Module, scale: float = 0.05, seed: int = 0) -> nn.Module:
    """Move every weight off its initial value (LayerNorm gains, zero biases) so parity checks see them all."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return net
