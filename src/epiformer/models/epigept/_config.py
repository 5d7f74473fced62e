"""The shape of an EpiGePT network (:class:`EpiGePTConfig`) and the presets of the published releases."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from epiformer._constants import Key

#: Vocabulary size of the word-embedding table ``transformers.BertModel`` allocates in the published model.
PUBLISHED_VOCAB = 256

_PRESETS: dict[str, dict[str, Any]] = {
    "hg38": {},
    "hg19": {"conv_dropout": 0.0, "head_hidden": None},
    "dnase": {
        "pools": (5, 5, 2, 2, 2),
        "conv_dropout": 0.0,
        "n_bins": 50,
        "max_positions": 512,
        "n_layers": 16,
        "ffn_dim": 512,
        "head_hidden": None,
        "signals": ("DNase",),
    },
}


@dataclass(frozen=True)
class EpiGePTConfig:
    """Shape of an EpiGePT network; the defaults are the hg38 release (71,343,376 parameters as published).

    Use :meth:`preset` for the hg19 8-signal and the DNase-only releases, and smaller values for tests.
    """

    variant: str = "hg38"
    """Which release the shape follows (``"hg38"``, ``"hg19"``, ``"dnase"``) or ``"custom"``."""
    conv_channels: tuple[int, ...] = (32, 64, 96, 128, 256)
    """Output channels of the five convolution blocks; the last is the sequence embedding width."""
    conv_kernels: tuple[int, ...] = (3, 5, 5, 3, 3)
    """Kernel widths of the five convolutions (odd; "same" padding, stride 1)."""
    pools: tuple[int, ...] = (4, 4, 2, 2, 2)
    """Max-pool widths after each block; their product is the bin size (128 bp)."""
    conv_dropout: float = 0.2
    """Dropout after the third and the fifth block (hg38 only; 0 in the hg19 and DNase releases)."""
    n_bins: int = 1000
    """Bins (tokens) per input window: 1,000 x 128 bp = 128 kb."""
    max_positions: int = 1000
    """Rows of the learned position table."""
    n_tfs: int = 711
    """Transcription factors in the context vector."""
    tf_dim: int = 712
    """Width of the TF feature block (`n_tfs` zero-padded so that the hidden size divides by the heads)."""
    n_layers: int = 12
    """Encoder layers."""
    n_heads: int = 8
    """Attention heads (hidden 968 / 8 = 121 dimensions each)."""
    ffn_dim: int = 1024
    """Width of the feed-forward block."""
    dropout: float = 0.1
    """Dropout in the encoder (embeddings, attention probabilities, residual branches)."""
    layer_norm_eps: float = 1e-12
    """LayerNorm epsilon (BERT's)."""
    head_hidden: int | None = 128
    """Width of the hidden layer of the output head (hg38: 968 -> 128 -> signals); `None` = one linear layer."""
    signals: tuple[str, ...] = Key.layers.epigept_signals
    """Names of the predicted signals, in output order."""
    tf_names: tuple[str, ...] | None = None
    """The TFs of the context vector in checkpoint order, when known (the published files do not carry them)."""

    def __post_init__(self) -> None:
        for name in ("conv_channels", "conv_kernels", "pools", "signals"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.tf_names is not None:
            object.__setattr__(self, "tf_names", tuple(str(t) for t in self.tf_names))
        problems = []
        if not len(self.conv_channels) == len(self.conv_kernels) == len(self.pools) == 5:
            problems.append(
                "`conv_channels`, `conv_kernels` and `pools` must each have 5 entries (the published trunk)"
            )
        if any(k % 2 == 0 for k in self.conv_kernels):
            problems.append(f"`conv_kernels` must be odd, got {self.conv_kernels}")
        if self.tf_dim < self.n_tfs:
            problems.append(f"`tf_dim` ({self.tf_dim}) must be at least `n_tfs` ({self.n_tfs})")
        if self.hidden_size % self.n_heads:
            problems.append(f"the hidden size {self.hidden_size} does not divide by `n_heads` = {self.n_heads}")
        if self.n_bins > self.max_positions:
            problems.append(f"`n_bins` ({self.n_bins}) exceeds `max_positions` ({self.max_positions})")
        if self.tf_names is not None and len(self.tf_names) != self.n_tfs:
            problems.append(f"{len(self.tf_names)} `tf_names` for `n_tfs` = {self.n_tfs}")
        if not self.signals:
            problems.append("`signals` is empty")
        if problems:
            msg = "Invalid EpiGePT configuration: " + "; ".join(problems) + "."
            raise ValueError(msg)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EpiGePTConfig:
        """The shape of a published release: ``"hg38"`` (default), ``"hg19"`` (8 signals) or ``"dnase"``.

        Parameters
        ----------
        name
            Release name.
        **overrides
            Fields to change, e.g. ``tf_names=``.

        Returns
        -------
        The configuration.
        """
        if name not in _PRESETS:
            msg = f"Unknown EpiGePT release {name!r}; choose one of {sorted(_PRESETS)}."
            raise ValueError(msg)
        return cls(**{"variant": name, **_PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> EpiGePTConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def hidden_size(self) -> int:
        """Token width: sequence embedding plus TF features (256 + 712 = 968)."""
        return self.conv_channels[-1] + self.tf_dim

    @property
    def bin_size(self) -> int:
        """Base pairs per token (the product of the pools, 128)."""
        return math.prod(self.pools)

    @property
    def window(self) -> int:
        """Base pairs per input window (128,000)."""
        return self.n_bins * self.bin_size

    @property
    def n_signals(self) -> int:
        """Number of predicted signals."""
        return len(self.signals)

    @property
    def published_parameter_count(self) -> int:
        """Parameters of the published network built with ``transformers.BertModel`` for this shape.

        BERT also allocates a 256-row word-embedding table, a pooler and a second token-type row, which
        EpiGePT never uses (it feeds ``inputs_embeds``); :class:`EpiGePT` leaves them out, so this is
        ``EpiGePT(config).num_parameters()`` plus those unused weights. 71,343,376 for the hg38 release.
        """
        h = self.hidden_size
        unused = PUBLISHED_VOCAB * h + (h * h + h) + h
        conv_in = (4, *self.conv_channels[:-1])
        conv = sum(i * o * k + o for i, o, k in zip(conv_in, self.conv_channels, self.conv_kernels, strict=True))
        embeddings = self.max_positions * h + h + 2 * h
        layer = 4 * (h * h + h) + 2 * h + (h * self.ffn_dim + self.ffn_dim) + (self.ffn_dim * h + h) + 2 * h
        if self.head_hidden is None:
            head = h * self.n_signals + self.n_signals
        else:
            head = h * self.head_hidden + self.head_hidden + self.head_hidden * self.n_signals + self.n_signals
        return conv + embeddings + self.n_layers * layer + head + unused

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpiGePTConfig:
        """Inverse of :meth:`to_dict`; unknown fields raise a :class:`ValueError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"Unknown EpiGePT configuration fields {unknown}; this file was written by a newer epiformer?"
            raise ValueError(msg)
        return cls(**data)
