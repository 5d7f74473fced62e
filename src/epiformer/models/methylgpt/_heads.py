"""Prediction heads on a MethylGPT backbone: linear, MLP and the published ResNet1D, and the network joining them."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from epiformer._validation import check_choice
from epiformer.models.methylgpt._module import MethylGPT

Head = Literal["linear", "mlp", "resnet1d"]
HEADS = ("linear", "mlp", "resnet1d")
Readout = Literal["cls", "mean", "cls+mean"]
READOUTS = ("cls", "mean", "cls+mean")


def mean_of_cpgs(hidden: Tensor, values: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """Mean output ``(batch, d_model)`` of the observed CpG tokens (zeros for a sample without any).

    Observed CpG tokens are those after ``<cls>`` with a beta value: not masked, missing or padding.
    """
    observed = values[:, 1:] >= 0
    if key_padding_mask is not None:
        observed &= ~key_padding_mask[:, 1:]
    weights = observed.to(hidden.dtype).unsqueeze(-1)
    return (hidden[:, 1:] * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def sample_embeddings(
    model: MethylGPT, ids: Tensor, values: Tensor, key_padding_mask: Tensor | None, *, readout: Readout
) -> Tensor:
    """Sample embeddings by `readout`.

    ``"cls"``: the ``<cls>`` output ``(batch, d)``; ``"mean"``: the mean output of the observed CpGs
    ``(batch, d)``; ``"cls+mean"``: both side by side ``(batch, 2 d)``.
    """
    if readout == "cls":
        return model.encode(ids, values, key_padding_mask=key_padding_mask, cls_only=True)
    hidden = model.encode(ids, values, key_padding_mask=key_padding_mask)
    mean = mean_of_cpgs(hidden, values, key_padding_mask)
    return mean if readout == "mean" else torch.cat([hidden[:, 0], mean], dim=1)


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


class Standardize(nn.Module):
    """Subtracts a fixed mean and divides by a fixed standard deviation per feature (set by :meth:`fit`)."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    def fit(self, features: Tensor) -> None:
        """Set the mean and standard deviation to those of `features` ``(n, width)`` (a floor of 1e-6)."""
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(features.std(dim=0).clamp(min=1e-6))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def make_head(
    head: Head, d_model: int, n_out: int, *, width: int | None = None, standardize: bool = False
) -> nn.Module:
    """A head: ``linear`` or ``mlp`` on a sample embedding, or the published ``resnet1d`` over per-CpG outputs.

    `width` is the sample embedding's (default `d_model`); with `standardize`, a ``linear`` or ``mlp`` head
    first standardises it (:class:`Standardize`, its first module).
    """
    check_choice(head, HEADS, name="head")
    width = width or d_model
    if head in ("linear", "mlp") and standardize:
        return nn.Sequential(Standardize(width), make_head(head, d_model, n_out, width=width))
    if head == "linear":
        return nn.Linear(width, n_out)
    if head == "mlp":
        return nn.Sequential(nn.Linear(width, d_model), nn.ReLU(), nn.Dropout(0.1), nn.Linear(d_model, n_out))
    return ResNet1D(d_model, n_out)


def head_outputs(head: nn.Module, features: Tensor, *, regression: bool) -> Tensor:
    """A head's raw outputs ``(batch, n_out)``: a scaled value through the published sigmoid, or class logits."""
    out = head(features).float()
    return torch.sigmoid(out) if regression else out


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
    readout
        The sample embedding a ``linear`` or ``mlp`` head reads (see :func:`sample_embeddings`); ``resnet1d``
        reads every CpG's output.
    standardize
        A ``linear`` or ``mlp`` head standardises the embedding first, with a mean and standard deviation set
        by :meth:`fit_standardize` (the published heads: no).
    """

    def __init__(
        self,
        backbone: MethylGPT,
        *,
        head: Head,
        n_out: int,
        regression: bool,
        missing: str = "mask",
        readout: Readout = "cls",
        standardize: bool = False,
    ):
        super().__init__()
        self.backbone = backbone
        self.head_name = head
        self.readout = readout
        self.width = backbone.d_model * (2 if readout == "cls+mean" else 1)
        """Width of the sample embedding a ``linear`` or ``mlp`` head reads."""
        self.standardize = standardize and not self.per_cpg
        self.head = make_head(head, backbone.d_model, n_out, width=self.width, standardize=self.standardize)
        self.regression = regression
        self.missing = missing

    @property
    def per_cpg(self) -> bool:
        """Whether the head reads every CpG's output at a fixed position (``resnet1d``)."""
        return self.head_name == "resnet1d"

    def features(self, betas: Tensor, cpg_ids: Tensor) -> Tensor:
        """The head's input for betas ``(batch, n_cpgs)`` (NaN = missing) of the CpGs `cpg_ids`."""
        ids, values, kpm = self.backbone.tokenize(
            betas, cpg_ids=cpg_ids, missing=self.missing, compact=self.missing == "mask" and not self.per_cpg
        )
        if self.per_cpg:
            return self.backbone.encode(ids, values, key_padding_mask=kpm)[:, 1:].transpose(1, 2)
        return sample_embeddings(self.backbone, ids, values, kpm, readout=self.readout)

    def fit_standardize(self, features: Tensor) -> None:
        """Set the head's standardisation to the mean and standard deviation of `features` (no-op without one)."""
        if self.standardize:
            self.head[0].fit(features.to(self.head[0].mean.device))

    def forward(self, betas: Tensor, cpg_ids: Tensor) -> Tensor:
        """Outputs ``(batch, n_out)`` for betas ``(batch, n_cpgs)`` (NaN = missing) of the CpGs `cpg_ids`."""
        return head_outputs(self.head, self.features(betas, cpg_ids), regression=self.regression)
