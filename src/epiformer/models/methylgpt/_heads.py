"""Prediction heads on a MethylGPT backbone: linear, MLP and the published ResNet1D, and the network joining them."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from epiformer.models.methylgpt._module import MethylGPT

Head = Literal["linear", "mlp", "resnet1d"]
HEADS = ("linear", "mlp", "resnet1d")


class ResBlock1D(nn.Module):
    """Pre-activation residual block: (BatchNorm, ReLU, conv k3) x 2, with a 1x1 conv + BatchNorm shortcut on stride."""

    def __init__(self, channels: int, *, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1, bias=False),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv1d(channels, channels, 1, stride=stride, bias=False), nn.BatchNorm1d(channels))
            if stride > 1
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class ResNet1D(nn.Module):
    """The published age head over per-CpG encoder outputs ``(batch, d_model, n_cpgs)``.

    Conv1d k3 (d -> 32, no bias), six residual blocks (strides 2, 1, 2, 1, 2, 1), global average pooling,
    Dropout 0.2 and Linear(32, n_out).
    """

    def __init__(self, d_model: int, n_out: int, *, channels: int = 32):
        super().__init__()
        self.stem = nn.Conv1d(d_model, channels, 3, padding=1, bias=False)
        self.blocks = nn.Sequential(*(ResBlock1D(channels, stride=s) for s in (2, 1, 2, 1, 2, 1)))
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(channels, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.pool(self.blocks(self.stem(x))).squeeze(-1)))


def make_head(head: Head, d_model: int, n_out: int) -> nn.Module:
    """``linear`` or ``mlp`` on the ``<cls>`` embedding, or the published ``resnet1d`` over per-CpG outputs."""
    if head == "linear":
        return nn.Linear(d_model, n_out)
    if head == "mlp":
        return nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Dropout(0.1), nn.Linear(d_model, n_out))
    if head == "resnet1d":
        return ResNet1D(d_model, n_out)
    msg = f"`head` must be one of {HEADS}, got {head!r}."
    raise ValueError(msg)


class FinetuneNet(nn.Module):
    """A MethylGPT backbone and a head: raw outputs (a scaled value through a sigmoid, or class logits).

    Parameters
    ----------
    backbone
        The pretrained :class:`MethylGPT` (trained further, in place).
    head
        ``"linear"``, ``"mlp"`` or ``"resnet1d"``.
    n_out
        1 for regression, the number of classes for classification.
    regression
        Apply the published sigmoid (targets are scaled to [0, 1]).
    missing
        How missing CpGs enter the backbone (see :meth:`MethylGPT.tokenize`).
    """

    def __init__(self, backbone: MethylGPT, *, head: Head, n_out: int, regression: bool, missing: str = "mask"):
        super().__init__()
        self.backbone = backbone
        self.head_name = head
        self.head = make_head(head, backbone.d_model, n_out)
        self.regression = regression
        self.missing = missing

    def forward(self, betas: Tensor, cpg_ids: Tensor) -> Tensor:
        """Outputs ``(batch, n_out)`` for betas ``(batch, n_cpgs)`` (NaN = missing) of the CpGs `cpg_ids`."""
        per_cpg = self.head_name == "resnet1d"  # fixed CpG positions: no compaction of missing CpGs
        ids, values, kpm = self.backbone.tokenize(
            betas, cpg_ids=cpg_ids, missing=self.missing, compact=self.missing == "mask" and not per_cpg
        )
        hidden = self.backbone.encode(ids, values, key_padding_mask=kpm, cls_only=not per_cpg)
        out = self.head(hidden[:, 1:].transpose(1, 2) if per_cpg else hidden).float()
        return torch.sigmoid(out) if self.regression else out
