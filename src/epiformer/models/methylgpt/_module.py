"""The MethylGPT network, layer for layer as published (scGPT's ``TransformerModel`` as MethylGPT configures it).

Module and parameter names follow the authors' checkpoints, so ``state_dict()`` has exactly their keys
(attention in the flash-attention layout ``self_attn.Wqkv.*``). Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention` with a key mask at most, or, when training with
attention dropout off CUDA, through the chunked kernel of ``_dropout_attention``, so no sequence x sequence
matrix is ever materialised.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from epiformer.models._base import WeightsProvenance
from epiformer.models.methylgpt._checkpoint import load_pretrained, save_pretrained
from epiformer.models.methylgpt._config import MASK_VALUE, MISSING_VALUE, MissingMode, check_missing_mode
from epiformer.models.methylgpt._dropout_attention import attention_with_dropout
from epiformer.models.methylgpt._vocab import MethylGPTVocab


class GeneEncoder(nn.Module):
    """CpG-id embedding followed by a LayerNorm (the published ``encoder``)."""

    def __init__(self, n_tokens: int, d_model: int, *, padding_idx: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(n_tokens, d_model, padding_idx=padding_idx)
        self.enc_norm = nn.LayerNorm(d_model)

    def forward(self, ids: Tensor) -> Tensor:
        """``(batch, seq)`` token ids -> ``(batch, seq, d_model)``."""
        return self.enc_norm(self.embedding(ids))


class ValueEncoder(nn.Module):
    """Continuous value embedding: ``clamp(max=512)``, Linear(1, d), ReLU, Linear(d, d), LayerNorm, Dropout."""

    def __init__(self, d_model: int, *, dropout: float = 0.1, max_value: float = 512.0):
        super().__init__()
        self.linear1 = nn.Linear(1, d_model)
        self.activation = nn.ReLU()
        self.linear2 = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.max_value = max_value

    def forward(self, values: Tensor) -> Tensor:
        """``(batch, seq)`` values -> ``(batch, seq, d_model)``."""
        x = torch.clamp(values.unsqueeze(-1), max=self.max_value)
        return self.dropout(self.norm(self.linear2(self.activation(self.linear1(x)))))


class SelfAttention(nn.Module):
    """Multi-head self-attention with the flash-attention parameter layout (``Wqkv``, ``out_proj``).

    ``Wqkv`` projects to ``[q | k | v]``, each split into `n_heads` contiguous heads, which is also
    :class:`torch.nn.MultiheadAttention`'s ``in_proj`` layout.
    """

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.1):
        super().__init__()
        if d_model % n_heads:
            msg = f"d_model ({d_model}) must be divisible by n_heads ({n_heads})."
            raise ValueError(msg)
        self.n_heads = n_heads
        self.dropout = dropout
        self.Wqkv = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of `x` ``(batch, seq, d_model)``, each ``(batch, n_heads, seq, head_dim)``."""
        b, s, d = x.shape
        qkv = self.Wqkv(x).view(b, s, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None, n_queries: int | None = None) -> Tensor:
        """Attention output for the first `n_queries` tokens (all when `None`) over every non-masked key.

        Parameters
        ----------
        x
            ``(batch, seq, d_model)``.
        key_padding_mask
            ``(batch, seq)``, `True` where a token must not be attended.
        n_queries
            Compute the output of the first `n_queries` positions only.

        Returns
        -------
        ``(batch, n_queries or seq, d_model)``.
        """
        q, k, v = self.project(x)
        if n_queries is not None:
            q = q[:, :, :n_queries]
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        p = self.dropout if self.training else 0.0
        if p > 0 and q.device.type != "cuda":
            out = attention_with_dropout(q, k, v, mask, p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        b, _, s, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, s, -1))


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer with a ReLU feed-forward block (the published layer)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.self_attn = SelfAttention(d_model, n_heads, dropout=dropout)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, *, key_padding_mask: Tensor | None = None, n_queries: int | None = None) -> Tensor:
        """``norm2(h + FFN(h))`` with ``h = norm1(x + attention(x))``, for the first `n_queries` tokens or all."""
        residual = x if n_queries is None else x[:, :n_queries]
        attn = self.self_attn(x, key_padding_mask=key_padding_mask, n_queries=n_queries)
        h = self.norm1(residual + self.dropout1(attn))
        return self.norm2(h + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(h))))))


class TransformerEncoder(nn.Module):
    """The stack of encoder layers (no final norm)."""

    def __init__(self, layers: list[EncoderLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class ExprDecoder(nn.Module):
    """The MLM value head, per token: Linear-LeakyReLU-Linear-LeakyReLU-Linear(d, 1)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(d_model, d_model),
            nn.LeakyReLU(),
            nn.Linear(d_model, d_model),
            nn.LeakyReLU(),
            nn.Linear(d_model, 1),
        )

    def forward(self, hidden: Tensor) -> Tensor:
        """``(batch, seq, d_model)`` -> predicted values ``(batch, seq)``."""
        return self.fc(hidden).squeeze(-1)


class ClsDecoder(nn.Module):
    """The classification head kept in the published checkpoints (unused by the published pretraining)."""

    def __init__(self, d_model: int, n_cls: int = 1, *, n_layers: int = 3):
        super().__init__()
        self._decoder = nn.ModuleList()
        for _ in range(n_layers - 1):
            self._decoder.extend([nn.Linear(d_model, d_model), nn.ReLU(), nn.LayerNorm(d_model)])
        self.out_layer = nn.Linear(d_model, n_cls)

    def forward(self, cell_emb: Tensor) -> Tensor:
        """``(batch, d_model)`` -> ``(batch, n_cls)``."""
        for layer in self._decoder:
            cell_emb = layer(cell_emb)
        return self.out_layer(cell_emb)


class MVCDecoder(nn.Module):
    """The MVC ("GEPC") head: ``pred_i = W sigmoid(gene2query(e_i)) . cell_emb`` per CpG token embedding."""

    def __init__(self, d_model: int):
        super().__init__()
        self.gene2query = nn.Linear(d_model, d_model)
        self.query_activation = nn.Sigmoid()
        self.W = nn.Linear(d_model, d_model, bias=False)

    def forward(self, cell_emb: Tensor, cpg_emb: Tensor) -> Tensor:
        """`cell_emb` ``(batch, d)`` and CpG embeddings ``(batch, seq, d)`` -> values ``(batch, seq)``."""
        query = self.W(self.query_activation(self.gene2query(cpg_emb)))
        return torch.bmm(query, cell_emb.unsqueeze(2)).squeeze(2)


class MethylGPT(WeightsProvenance, nn.Module):
    """MethylGPT (Ying et al. 2024), the published architecture layer for layer.

    A sample is read as the sequence ``<cls>`` + CpGs; each token is the sum of its CpG-id embedding
    (Embedding + LayerNorm) and the embedding of its value (the beta value; 0 for ``<cls>``, -1 for a masked CpG
    to be predicted, -2 for a missing one). Post-norm encoder layers with ReLU feed-forward blocks follow; the
    sample embedding is the ``<cls>`` output. The MLM head predicts every token's value from its output, the MVC
    head from the sample embedding and the input CpG embedding; the classification head is kept so that every
    published weight has a home.

    Building blocks, for training and analysis code: :meth:`tokenize` (betas -> ids, values, key mask),
    :meth:`embed_tokens`, :meth:`transform` (runs ``transformer_encoder.layers``; each layer's
    ``self_attn.project`` gives its per-head queries, keys and values), :meth:`encode` (both), :meth:`mlm`,
    :meth:`mvc` and :meth:`forward`.

    Parameters
    ----------
    vocab
        The CpG vocabulary.
    d_model
        Token width (64, 128 or 256 in the published models).
    n_layers
        Number of encoder layers (6 published).
    n_heads
        Attention heads (4 published).
    d_ff
        Feed-forward width; `None` uses `d_model`, as published.
    dropout
        Dropout everywhere (attention, feed-forward, value encoder).
    n_cls, n_cls_layers
        Outputs and layers of the classification head (1 and 3 published).
    mask_value, missing_value
        Input values of masked and missing CpGs (-1 and -2 published).
    """

    def __init__(
        self,
        vocab: MethylGPTVocab,
        *,
        d_model: int = 64,
        n_layers: int = 6,
        n_heads: int = 4,
        d_ff: int | None = None,
        dropout: float = 0.1,
        n_cls: int = 1,
        n_cls_layers: int = 3,
        mask_value: float = MASK_VALUE,
        missing_value: float = MISSING_VALUE,
    ):
        super().__init__()
        if not isinstance(vocab, MethylGPTVocab):
            msg = f"`vocab` must be a MethylGPTVocab, got {type(vocab).__name__}."
            raise TypeError(msg)
        self.vocab = vocab
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_ff = d_model if d_ff is None else d_ff
        self.dropout = dropout
        self.mask_value = float(mask_value)
        self.missing_value = float(missing_value)
        self.checkpoint: dict[str, str] | None = None
        """Where the weights came from (`path`, `format`, `sha256`), set by :meth:`from_pretrained`."""
        self.history = pd.DataFrame()
        """Per-epoch `train_loss` and `val_loss` of the last :func:`epiformer.tl.pretrain` run (saved with the model)."""

        self.encoder = GeneEncoder(len(vocab), d_model, padding_idx=vocab.pad_id)
        self.value_encoder = ValueEncoder(d_model, dropout=dropout)
        self.transformer_encoder = TransformerEncoder(
            [EncoderLayer(d_model, n_heads, self.d_ff, dropout=dropout) for _ in range(n_layers)]
        )
        self.decoder = ExprDecoder(d_model)
        self.cls_decoder = ClsDecoder(d_model, n_cls, n_layers=n_cls_layers)
        self.mvc_decoder = MVCDecoder(d_model)
        self.n_cls = n_cls
        self.n_cls_layers = n_cls_layers
        nn.init.uniform_(self.encoder.embedding.weight, -0.1, 0.1)  # the published initialisation

    @property
    def n_layers(self) -> int:
        """Number of encoder layers."""
        return len(self.transformer_encoder.layers)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (without the vocabulary)."""
        return {
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_ff": self.d_ff,
            "dropout": self.dropout,
            "n_cls": self.n_cls,
            "n_cls_layers": self.n_cls_layers,
            "mask_value": self.mask_value,
            "missing_value": self.missing_value,
        }

    def __repr__(self) -> str:
        c = self.config
        return (
            f"MethylGPT(d_model={c['d_model']}, n_layers={c['n_layers']}, n_heads={c['n_heads']}, "
            f"{len(self.vocab.probes)} CpGs, {sum(p.numel() for p in self.parameters()):,} parameters)"
        )

    # ----------------------------------------------------------------------------------------------- inputs

    def tokenize(
        self,
        betas: Tensor,
        *,
        cpg_ids: Tensor | None = None,
        missing: MissingMode = "mask",
        compact: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Token ids, values and key mask of samples: ``<cls>`` first (value 0), then one token per CpG.

        Parameters
        ----------
        betas
            ``(batch, n)`` beta values, NaN = missing; values equal to the mask value (-1) are masked CpGs.
        cpg_ids
            ``(n,)`` token indices of the columns of `betas`; `None` means every vocabulary probe in order.
        missing
            ``"mask"``: missing CpGs get value -2 and are excluded as attention keys (the key mask marks them);
            ``"legacy"``: they get value -2 and are attended (no key mask).
        compact
            With ``missing="mask"``, drop the missing CpGs instead of masking them: each row keeps ``<cls>`` and
            its observed CpGs, right-padded with masked ``<pad>`` tokens to the longest row. The ``<cls>`` output
            and the observed tokens' outputs are the same (missing tokens are never keys and, without
            positional encodings, nothing else depends on them); the sequence is shorter.

        Returns
        -------
        ``(ids, values, key_padding_mask)``: long ``(batch, seq)``, float ``(batch, seq)``, and bool
        ``(batch, seq)`` (`True` = not attended) or `None` when every token is attended.
        """
        check_missing_mode(missing)
        device = self.encoder.embedding.weight.device
        betas = betas.to(device=device, dtype=torch.float32)
        if betas.ndim != 2:
            msg = f"`betas` must be (batch, n_cpgs), got shape {tuple(betas.shape)}."
            raise ValueError(msg)
        b, n = betas.shape
        if cpg_ids is None:
            cpg_ids = torch.as_tensor(self.vocab.probe_ids, device=device)
        cpg_ids = cpg_ids.to(device=device, dtype=torch.long)
        if cpg_ids.shape != (n,):
            msg = f"`cpg_ids` must have one id per column of `betas` ({n}), got shape {tuple(cpg_ids.shape)}."
            raise ValueError(msg)
        nan = torch.isnan(betas)
        values = torch.where(nan, torch.full_like(betas, self.missing_value), betas)
        ids = cpg_ids.expand(b, n)
        if missing == "mask" and compact:
            order = torch.argsort(nan.to(torch.int8), dim=1, stable=True)  # observed first
            length = int((~nan).sum(dim=1).max().item()) if b else 0
            order = order[:, :length]
            nan = torch.gather(nan, 1, order)
            values = torch.gather(values, 1, order).masked_fill(nan, self.missing_value)
            ids = torch.gather(ids, 1, order).masked_fill(nan, self.vocab.pad_id)
        cls_ids = torch.full((b, 1), self.vocab.cls_id, dtype=torch.long, device=device)
        ids = torch.cat([cls_ids, ids], dim=1)
        values = torch.cat([torch.zeros((b, 1), device=device), values], dim=1)
        if missing == "legacy" or not nan.any():
            return ids, values, None
        return ids, values, torch.cat([torch.zeros((b, 1), dtype=torch.bool, device=device), nan], dim=1)

    # ----------------------------------------------------------------------------------------------- model

    def embed_tokens(self, ids: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's input tokens and the CpG-id embeddings (the MVC head's input).

        Parameters
        ----------
        ids, values
            ``(batch, seq)`` token ids and values.

        Returns
        -------
        ``(tokens, cpg_emb)``, both ``(batch, seq, d_model)``: ``tokens = cpg_emb + value embedding``.
        """
        cpg_emb = self.encoder(ids)
        return cpg_emb + self.value_encoder(values), cpg_emb

    def transform(
        self,
        tokens: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        cls_only: bool = False,
        n_layers: int | None = None,
    ) -> Tensor:
        """Run the encoder layers on input tokens (from :meth:`embed_tokens`).

        Parameters
        ----------
        tokens
            ``(batch, seq, d_model)``.
        key_padding_mask
            ``(batch, seq)``, `True` where a token is not attended.
        cls_only
            Return the ``<cls>`` output only; the last layer then computes that one query.
        n_layers
            Run only the first `n_layers` layers (all when `None`): the input of layer `n_layers`.

        Returns
        -------
        Per-token outputs ``(batch, seq, d_model)``, or the sample embeddings ``(batch, d_model)``.
        """
        if key_padding_mask is not None and not key_padding_mask.any():
            key_padding_mask = None
        x = tokens
        layers = self.transformer_encoder.layers[:n_layers]
        for i, layer in enumerate(layers):
            last = cls_only and i == len(layers) - 1
            x = layer(x, key_padding_mask=key_padding_mask, n_queries=1 if last else None)
        return x[:, 0] if cls_only else x

    def encode(
        self,
        ids: Tensor,
        values: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        cls_only: bool = False,
    ) -> Tensor:
        """Embed the tokens and run the encoder.

        Parameters
        ----------
        ids, values
            ``(batch, seq)`` token ids and values (from :meth:`tokenize`).
        key_padding_mask
            ``(batch, seq)``, `True` where a token is not attended.
        cls_only
            Return the ``<cls>`` output only; the last layer then computes that one query.

        Returns
        -------
        Per-token outputs ``(batch, seq, d_model)``, or the sample embeddings ``(batch, d_model)``.
        """
        tokens, _ = self.embed_tokens(ids, values)
        return self.transform(tokens, key_padding_mask=key_padding_mask, cls_only=cls_only)

    def mlm(self, hidden: Tensor) -> Tensor:
        """MLM value predictions ``(batch, seq)`` from per-token outputs ``(batch, seq, d_model)``."""
        return self.decoder(hidden)

    def mvc(self, cell_emb: Tensor, cpg_emb: Tensor) -> Tensor:
        """MVC value predictions ``(batch, seq)`` from sample embeddings and CpG-id embeddings."""
        return self.mvc_decoder(cell_emb, cpg_emb)

    def forward(
        self,
        ids: Tensor,
        values: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        mvc: bool = False,
        cls: bool = False,
    ) -> dict[str, Tensor]:
        """The published forward pass.

        Parameters
        ----------
        ids, values
            ``(batch, seq)`` token ids and values (from :meth:`tokenize`).
        key_padding_mask
            ``(batch, seq)``, `True` where a token is not attended.
        mvc
            Also compute the MVC head's predictions.
        cls
            Also compute the classification head's output.

        Returns
        -------
        `cell_emb` ``(batch, d_model)``, `mlm_output` ``(batch, seq)``, and with the flags `mvc_output`
        ``(batch, seq)`` and `cls_output` ``(batch, n_cls)``.
        """
        tokens, cpg_emb = self.embed_tokens(ids, values)
        hidden = self.transform(tokens, key_padding_mask=key_padding_mask)
        out = {"cell_emb": hidden[:, 0], "mlm_output": self.mlm(hidden)}
        if mvc:
            out["mvc_output"] = self.mvc(out["cell_emb"], cpg_emb)
        if cls:
            out["cls_output"] = self.cls_decoder(out["cell_emb"])
        return out

    # ----------------------------------------------------------------------------------------------- files

    @classmethod
    def from_pretrained(
        cls,
        path: str | PathLike,
        *,
        vocab: MethylGPTVocab | str | PathLike | None = None,
        n_heads: int | None = None,
        download: bool = False,
    ) -> MethylGPT:
        """Load a checkpoint: the authors' files or one written by :meth:`save_pretrained`.

        Accepted layouts:

        - the authors' directory: ``vocab.json``, optional ``args.json`` and one ``.pt`` / ``.pth`` state dict
          (attention as flash-attention ``self_attn.Wqkv.*`` keys, or ``self_attn.in_proj_*`` from the plain
          PyTorch layers), as downloaded from their Google Drive folders;
        - a bare ``.pt`` / ``.pth`` file, with `vocab` given or a ``vocab.json`` beside it;
        - an epiformer directory: ``model.safetensors``, ``config.json`` and ``vocab.json``.

        The width, number of layers, feed-forward width and heads of the classification head are read from
        the tensor shapes, never from file names. The number of attention heads cannot be read from shapes:
        it comes from ``args.json`` (``nhead``) or ``config.json`` when present, otherwise from `n_heads`,
        otherwise it is 4, the value of every published configuration. Loading is strict: any missing,
        unexpected or mis-shaped tensor is refused with the list of offending keys. ``.pt`` files are read
        with ``torch.load(weights_only=True)`` and must hold a plain state dict, so nothing in the file is
        executed.

        Parameters
        ----------
        path
            A checkpoint directory or weight file, or a registered name (:func:`epiformer.models.list_pretrained`)
            loaded from the epiformer cache and checked against the sha256 sums stored at its first load. An
            existing path always wins over a name.
        vocab
            The vocabulary (object or ``vocab.json`` path), when not next to the weights.
        n_heads
            Number of attention heads when no ``args.json`` / ``config.json`` says; must agree with them.
        download
            With a registered name whose files are not cached: download them first
            (:func:`epiformer.models.fetch`). Without it, a missing checkpoint raises a
            :class:`FileNotFoundError` naming the URL, the files and the folder to put them in.

        Returns
        -------
        The model in evaluation mode, on the CPU, with :attr:`checkpoint` set.
        """
        return load_pretrained(cls, path, vocab=vocab, n_heads=n_heads, download=download)

    def save_pretrained(self, directory: str | PathLike) -> None:
        """Write ``model.safetensors``, ``config.json`` and ``vocab.json`` into `directory`.

        Parameters
        ----------
        directory
            Created if absent; existing files of these names are replaced.
        """
        save_pretrained(self, directory)
