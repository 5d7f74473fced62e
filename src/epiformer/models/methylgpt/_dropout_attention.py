"""Softmax attention with dropout on the attention probabilities, for devices without a fused kernel for it.

PyTorch's fused :func:`~torch.nn.functional.scaled_dot_product_attention` kernels apply attention dropout
only on CUDA; elsewhere it falls back to materialising every ``seq x seq`` probability matrix (6 GB for two
samples of 8,192 CpGs), which is also what the authors' model does. :func:`attention_with_dropout` instead
works like flash attention, written with PyTorch operations:

- queries are processed in chunks small enough for the score block to stay in the CPU cache
  (:data:`CHUNK_SCORES`), and keys that are masked out are dropped before the product rather than filled
  with ``-inf``;
- the forward pass keeps only the output and the log-sum-exp of each row; the backward pass recomputes each
  probability block from them (no second softmax) and applies the flash-attention gradient
  ``dS = P * (dP - rowsum(dO * O))``;
- dropout masks come from a counter-based hash of (call seed, sample, chunk, element), so the backward pass
  regenerates exactly the forward masks without storing them; the call seed is drawn from PyTorch's global
  generator, so ``torch.manual_seed`` (and Lightning's seeding) makes runs reproducible.

Memory is linear in the sequence length.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

#: Scores held at once per chunk of queries (floats): small enough to stay in a CPU core's cache.
CHUNK_SCORES = 1 << 19

# Odd 32-bit multipliers of the dropout hash, written as signed int32.
_GOLDEN, _MIX1, _MIX2 = -1640531535, -2048144789, -1028477387


@lru_cache(maxsize=8)
def _counters(n: int, device: torch.device) -> Tensor:
    """``arange(n) * golden ratio`` as wrapping int32 (the hash's per-element input)."""
    return torch.arange(n, dtype=torch.int32, device=device) * _GOLDEN


def _chunk_key(seed: int, sample: int, start: int) -> int:
    """A signed 32-bit key for the dropout mask of one chunk of one sample's queries."""
    h = seed & 0xFFFFFFFF
    for value in (sample, start):
        h = ((h ^ value) * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
        h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


def dropout_keep(key: int, shape: tuple[int, ...], p: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A keep mask (1 kept, 0 dropped) of `shape`, a deterministic function of `key`.

    Two multiply-xorshift rounds over 32-bit counters give two 16-bit random lanes per counter, each compared
    with a threshold, so an element is dropped with probability ``round(p * 65536) / 65536`` (``p`` to within
    ``8e-6``), independently of the others.

    Parameters
    ----------
    key
        Signed 32-bit key; a different key gives an unrelated mask.
    shape
        Shape of the mask.
    p
        Dropout probability.
    dtype, device
        Of the returned mask.

    Returns
    -------
    Tensor of `shape` holding 0 and 1.
    """
    n = math.prod(shape)
    x = _counters((n + 1) // 2, torch.device(device)) ^ key
    x *= _MIX1
    x ^= (x >> 15) & 0x1FFFF  # logical shift of a signed int32
    x *= _MIX2
    keep = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(x.view(torch.int16)[:n].view(shape), round(p * 65536) - 32768, out=keep)
    return keep


def _keys_of(k: Tensor, v: Tensor, mask: Tensor | None, sample: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """Keys and values of one sample that may be attended, and their positions (`None` when all may)."""
    if mask is None:
        return k[sample], v[sample], None
    index = mask[sample].reshape(-1).nonzero().squeeze(1)
    return k[sample].index_select(1, index), v[sample].index_select(1, index), index


def _rows_per_chunk(n_heads: int, n_keys: int) -> int:
    """Queries per chunk, so that a chunk holds about :data:`CHUNK_SCORES` scores."""
    return max(1, CHUNK_SCORES // (n_heads * n_keys))


class _DropoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float, seed: int) -> Tensor:
        n_samples, n_heads, n_queries, head_dim = q.shape
        scale = head_dim**-0.5
        out = torch.empty_like(q)
        lse = torch.empty(
            n_samples, n_heads, n_queries, 1, dtype=torch.promote_types(q.dtype, torch.float32), device=q.device
        )
        for i in range(n_samples):
            ki, vi, _ = _keys_of(k, v, mask, i)
            kt = ki.transpose(1, 2)
            rows = _rows_per_chunk(n_heads, ki.shape[1])
            for start in range(0, n_queries, rows):
                stop = start + rows
                s = (q[i, :, start:stop] * scale) @ kt
                row_max = s.amax(-1, keepdim=True)
                s.sub_(row_max).exp_()
                row_sum = s.sum(-1, keepdim=True)
                lse[i, :, start:stop] = row_max + row_sum.log()
                if p > 0:
                    s.mul_(dropout_keep(_chunk_key(seed, i, start), s.shape, p, dtype=s.dtype, device=s.device))
                out[i, :, start:stop] = (s @ vi).mul_(1 / ((1 - p) * row_sum))
        ctx.save_for_backward(q, k, v, mask, out, lse)
        ctx.p, ctx.seed = p, seed
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, mask, out, lse = ctx.saved_tensors
        p, seed = ctx.p, ctx.seed
        n_samples, n_heads, n_queries, head_dim = q.shape
        scale = head_dim**-0.5
        keep_scale = 1 / (1 - p)
        delta = (grad_out * out).sum(-1, keepdim=True)
        dq = torch.empty_like(q)
        dk = torch.zeros_like(k)
        dv = torch.zeros_like(v)
        for i in range(n_samples):
            ki, vi, index = _keys_of(k, v, mask, i)
            dki, dvi = torch.zeros_like(ki), torch.zeros_like(vi)
            kt, vt = ki.transpose(1, 2), vi.transpose(1, 2)
            rows = _rows_per_chunk(n_heads, ki.shape[1])
            for start in range(0, n_queries, rows):
                stop = start + rows
                qc, go = q[i, :, start:stop] * scale, grad_out[i, :, start:stop]
                probs = torch.baddbmm(-lse[i, :, start:stop].to(q.dtype), qc, kt).exp_()
                d_probs = (go * keep_scale) @ vt
                if p > 0:
                    keep = dropout_keep(_chunk_key(seed, i, start), probs.shape, p, dtype=q.dtype, device=q.device)
                    dvi.baddbmm_((probs * keep).transpose(1, 2), go, alpha=keep_scale)
                    d_probs.mul_(keep)
                else:
                    dvi.baddbmm_(probs.transpose(1, 2), go)
                d_scores = d_probs.sub_(delta[i, :, start:stop]).mul_(probs)
                torch.matmul(d_scores, ki, out=dq[i, :, start:stop])
                dki.baddbmm_(d_scores.transpose(1, 2), qc)
            if index is None:
                dk[i], dv[i] = dki, dvi
            else:
                dk[i].index_copy_(1, index, dki)
                dv[i].index_copy_(1, index, dvi)
        return dq.mul_(scale), dk, dv, None, None, None


def attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
    """Softmax attention with dropout `p` on the attention probabilities, in linear memory (see the module).

    Parameters
    ----------
    q, k, v
        ``(batch, heads, n_queries, head_dim)`` and ``(batch, heads, n_keys, head_dim)``.
    mask
        Key mask, boolean ``(batch, 1, 1, n_keys)``, `True` where a key may be attended; `None` when all may.
        Every sample needs at least one key.
    p
        Dropout probability, in ``[0, 1)``.

    Returns
    -------
    ``(batch, heads, n_queries, head_dim)``.
    """
    seed = int(torch.randint(-(1 << 31), 1 << 31, (1,)))
    return _DropoutAttention.apply(q, k, v, mask, p, seed)
