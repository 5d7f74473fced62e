"""The EpiGePT network (Gao et al. 2024) in plain torch.

A CNN makes 128-bp bin tokens, TF features are concatenated, a BERT-style post-LN encoder mixes the bins
and a small head predicts the signals of each bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from epiformer._logging import warn
from epiformer._validation import check_choice
from epiformer.models._base import WeightsProvenance, history_frame
from epiformer.models.epigept._checkpoint import load_pretrained, save_lightning, save_safetensors
from epiformer.models.epigept._config import EpiGePTConfig

#: Columns of :attr:`EpiGePT.history`.


class _SequenceModule(nn.Module):
    """Five Conv1d -> ReLU -> MaxPool1d blocks turning one-hot DNA into one embedding per bin."""

    def __init__(self, config: EpiGePTConfig) -> None:
        super().__init__()
        ins = (4, *config.conv_channels[:-1])
        self.convs = nn.ModuleList(
            nn.Conv1d(i, o, k, padding=k // 2)
            for i, o, k in zip(ins, config.conv_channels, config.conv_kernels, strict=True)
        )
        self.pools = config.pools
        self.dropout = nn.Dropout(config.conv_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, pool) in enumerate(zip(self.convs, self.pools, strict=True)):
            x = F.max_pool1d(F.relu(conv(x)), pool)
            if i in (2, 4):  # after the third and the last block, as the hg38 release
                x = self.dropout(x)
        return x.transpose(1, 2)


class _EncoderLayer(nn.Module):
    """One post-LN BERT layer: ``x = LN(x + W_o MHA(x))``, ``x = LN(x + W_2 gelu(W_1 x))``."""

    def __init__(self, config: EpiGePTConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.n_heads = config.n_heads
        self.p = config.dropout
        self.qkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(h, config.ffn_dim)
        self.ffn_out = nn.Linear(config.ffn_dim, h)
        self.ffn_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        p = self.p if self.training else 0.0
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        attn = attn.transpose(1, 2).reshape(batch, length, width)
        x = self.attn_norm(x + F.dropout(self.attn_out(attn), p, self.training))
        return self.ffn_norm(x + F.dropout(self.ffn_out(F.gelu(self.ffn_in(x))), p, self.training))


_CHECKPOINT_INFO_RENAMED = (
    "`EpiGePT.checkpoint_info` is renamed `EpiGePT.checkpoint`; the old name will be removed in the next release."
)


class EpiGePT(WeightsProvenance, nn.Module):
    """EpiGePT: chromatin signals per 128-bp bin from 128 kb of DNA and the TF activity of a cell context.

    A plain-torch re-implementation of the published network (Gao et al., Genome Biology 2024): one-hot
    DNA ``(B, 4, 128000)`` goes through five convolution blocks to 1,000 bin tokens of 256 channels; each
    token is concatenated with its TF features, ``motif_score[bin, tf] * log1p(QN expression[tf])`` for
    711 TFs zero-padded to 712; a BERT-style post-LN encoder (hidden 968, 12 layers, 8 heads, FFN 1024,
    erf-GELU, learned positions plus token-type row 0, no attention mask) mixes the bins; a head
    (968 -> 128 -> ReLU -> 8 -> ReLU) gives ``log(count + 1)`` of DNase, CTCF, H3K27ac, H3K4me3, H3K36me3,
    H3K27me3, H3K9me3 and H3K4me1 per bin. Attention runs through
    :func:`torch.nn.functional.scaled_dot_product_attention`.

    Load the authors' checkpoint with :meth:`from_pretrained`; run it on AnnData contexts with
    :func:`epiformer.tl.predict_epigenome`.

    Parameters
    ----------
    config
        The network shape; `None` is the hg38 release (:class:`EpiGePTConfig` defaults).
    """

    def __init__(self, config: EpiGePTConfig | None = None) -> None:
        super().__init__()
        self.config = config or EpiGePTConfig()
        cfg = self.config
        h = cfg.hidden_size
        self.sequence = _SequenceModule(cfg)
        self.position_embeddings = nn.Parameter(torch.empty(cfg.max_positions, h))
        self.token_type_embedding = nn.Parameter(torch.empty(h))
        self.embed_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(_EncoderLayer(cfg) for _ in range(cfg.n_layers))
        if cfg.head_hidden is None:
            self.head = nn.Sequential(nn.Linear(h, cfg.n_signals))
        else:
            self.head = nn.Sequential(
                nn.Linear(h, cfg.head_hidden), nn.ReLU(), nn.Linear(cfg.head_hidden, cfg.n_signals)
            )
        self.checkpoint: dict[str, Any] = {}
        """Provenance of the loaded weights: file, format, sha256 and, for the authors' files, release and epoch."""
        self.history: pd.DataFrame = history_frame(None)
        """Per-epoch losses of the last :func:`epiformer.tl.fit_epigept` run (`epoch`, `train_loss`, `val_loss`)."""
        self.reset_parameters()

    @property
    def checkpoint_info(self) -> dict[str, Any]:
        """Deprecated alias of :attr:`checkpoint`."""
        warn(_CHECKPOINT_INFO_RENAMED, FutureWarning)
        return self.checkpoint

    @checkpoint_info.setter
    def checkpoint_info(self, value: dict[str, Any]) -> None:
        warn(_CHECKPOINT_INFO_RENAMED, FutureWarning)
        self.checkpoint = value

    def reset_parameters(self) -> None:
        """BERT's initialisation for the encoder (normal, sd 0.02; zero biases), PyTorch's for the convolutions."""
        for conv in self.sequence.convs:
            conv.reset_parameters()
        nn.init.normal_(self.position_embeddings, std=0.02)
        nn.init.normal_(self.token_type_embedding, std=0.02)
        for module in [*self.layers.modules(), *self.head.modules(), self.embed_norm]:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def signals(self) -> tuple[str, ...]:
        """Names of the predicted signals, in output order."""
        return self.config.signals

    @property
    def tf_names(self) -> tuple[str, ...] | None:
        """TFs of the context vector in checkpoint order (`None` when the checkpoint did not say)."""
        return self.config.tf_names

    def num_parameters(self) -> int:
        """Number of parameters (the unused BERT word embeddings and pooler are not part of this module)."""
        return sum(p.numel() for p in self.parameters())

    def embed_sequence(self, seq: torch.Tensor) -> torch.Tensor:
        """Bin embeddings ``(B, n_bins, conv_channels[-1])`` of one-hot DNA ``(B, 4, L)`` (A, C, G, T; N = 0).

        They do not depend on the cell context, so one window's embedding serves every context.
        """
        if seq.ndim != 3 or seq.shape[1] != 4:
            msg = f"`seq` must be one-hot DNA of shape (batch, 4, length), got {tuple(seq.shape)}."
            raise ValueError(msg)
        if seq.shape[-1] % self.config.bin_size:
            msg = f"The sequence length {seq.shape[-1]} is not a multiple of the {self.config.bin_size}-bp bin."
            raise ValueError(msg)
        return self.sequence(seq)

    def tf_features(self, motifs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """TF features ``motif[bin, tf] * context[tf]``, zero-padded to `tf_dim`: ``(B, n_bins, tf_dim)``.

        Parameters
        ----------
        motifs
            Motif scores ``(B or 1, n_bins, n_tfs)``.
        context
            ``log1p`` of the quantile-normalised TF expression ``(B, n_tfs)``.

        Returns
        -------
        The feature block the encoder reads next to the sequence embedding.
        """
        cfg = self.config
        if motifs.shape[-1] != cfg.n_tfs or context.shape[-1] != cfg.n_tfs:
            msg = f"Motif scores and contexts need {cfg.n_tfs} TFs, got {motifs.shape[-1]} and {context.shape[-1]}."
            raise ValueError(msg)
        return F.pad(motifs * context[:, None, :], (0, cfg.tf_dim - cfg.n_tfs))

    def encode(self, seq_embedding: torch.Tensor, tf_features: torch.Tensor) -> torch.Tensor:
        """Signals ``(B, n_bins, n_signals)`` from bin embeddings and TF features (see :meth:`tf_features`)."""
        length = seq_embedding.shape[1]
        if length > self.config.max_positions:
            msg = f"{length} bins exceed the {self.config.max_positions} learned positions of this model."
            raise ValueError(msg)
        cfg = self.config
        if tf_features.shape[-1] not in (cfg.n_tfs, cfg.tf_dim) or tf_features.shape[:2] != seq_embedding.shape[:2]:
            msg = (
                f"TF features must be (batch, {length}, {cfg.n_tfs} or {cfg.tf_dim}) to match the sequence, "
                f"got {tuple(tf_features.shape)}."
            )
            raise ValueError(msg)
        if tf_features.shape[-1] != cfg.tf_dim:
            tf_features = F.pad(tf_features, (0, cfg.tf_dim - cfg.n_tfs))
        x = torch.cat([seq_embedding, tf_features.to(seq_embedding.dtype)], dim=2)
        x = x + self.position_embeddings[:length] + self.token_type_embedding
        x = F.dropout(self.embed_norm(x), cfg.dropout, self.training)
        for layer in self.layers:
            x = layer(x)
        return F.relu(self.head(x))

    def forward(self, seq: torch.Tensor, tf_features: torch.Tensor) -> torch.Tensor:
        """Predict the signals of every bin.

        Parameters
        ----------
        seq
            One-hot DNA ``(B, 4, n_bins * 128)``, channels A, C, G, T; N is all zeros.
        tf_features
            ``(B, n_bins, n_tfs)`` or already padded ``(B, n_bins, tf_dim)``: motif score times context.

        Returns
        -------
        ``(B, n_bins, n_signals)``, non-negative, in ``log(count + 1)`` units.
        """
        return self.encode(self.embed_sequence(seq), tf_features)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        tf_names: Sequence[str] | str | Path | None = None,
        n_heads: int = 8,
        download: bool = False,
    ) -> EpiGePT:
        """Load the authors' Lightning checkpoint or a directory written by :meth:`save_pretrained`.

        A ``.ckpt`` file is read with a restricted unpickler: only tensors, plain containers and the
        known Lightning callback classes (mapped to inert stand-ins) are admitted, nothing else is ever
        imported or called, and a file referring to anything outside that set is refused. The BERT
        ``position_ids`` buffer is dropped, the unused word-embedding and pooler weights are ignored, the
        release (hg38 8-signal, hg19 8-signal, DNase-only) is detected from the keys and shapes, and every
        other key must match exactly.

        Parameters
        ----------
        path
            The published ``model.ckpt`` / ``pretrained_epigept.ckpt`` (download it by hand from
            https://health.tsinghua.edu.cn/epigept/download.php), any Lightning checkpoint in that layout,
            or a directory with ``config.json`` and ``model.safetensors``; or a registered name
            (:func:`epiformer.models.list_pretrained`) loaded from the epiformer cache and checked against the
            sha256 sums stored at its first load. An existing path always wins over a name.
        tf_names
            The TFs of the context vector in checkpoint order: a list, or a text file with one name per
            line. The published checkpoints do not carry them (the authors' 711-TF order is the row order
            of ``reference_TPM_tf_expr.csv`` / ``tf_expression.csv.gz`` from their download page, the
            alphabetically sorted TF names). Without them the model works on context matrices whose
            columns are already in checkpoint order.
        n_heads
            Attention heads (not recorded in the weights; 8 in every release).
        download
            With a registered name whose file is not cached: download it first (:func:`epiformer.models.fetch`;
            the EpiGePT files have no direct link, so this raises the same guiding
            :class:`FileNotFoundError` as without it).

        Returns
        -------
        The model in evaluation mode; :attr:`checkpoint` records the file, its sha256 and, for a Lightning
        checkpoint, the detected release and the training epoch; :attr:`history` is restored from a
        directory written by :meth:`save_pretrained`.
        """
        return load_pretrained(cls, path, tf_names=tf_names, n_heads=n_heads, download=download)

    def save_pretrained(self, path: str | Path, *, format: str = "safetensors") -> Path:
        """Write the weights and configuration.

        Parameters
        ----------
        path
            ``"safetensors"``: a directory that receives ``config.json`` (with the configuration, the provenance of
            the weights and :attr:`history`) and ``model.safetensors``.
            ``"lightning"``: a ``.ckpt`` file in the authors' layout (published key names, including the
            unused BERT word embeddings, pooler and ``position_ids`` as zeros / ``arange``, so their code
            loads it strictly), with the TF names and signals under ``hyper_parameters``.
        format
            ``"safetensors"`` or ``"lightning"``.

        Returns
        -------
        The directory or file written.
        """
        check_choice(format, ("safetensors", "lightning"), name="format")
        if format == "safetensors":
            return save_safetensors(self, path)
        return save_lightning(self, path)
