"""Attention received per CpG: `ef.tl.attention`'s query-chunked softmax vs the dense matrix a user would build.

Job: the last-layer queries and keys of one MethylGPT-shaped sample (4 heads of 16 dimensions, as the authors'
d_model 64 model), 2,048, 8,192 and 16,384 tokens, 10 % of them missing (key-masked). Ours computes
``softmax(q k^T / sqrt(d))`` a chunk of queries at a time (`received_attention`); the peer materialises the
whole ``heads x seq x seq`` probability matrix (the authors' ``get_attention_map``, with the softmax and scaling
it omits) and sums it over the queries. Each side in its own process, CPU, float32; outputs compared.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure, report

HEADS, HEAD_DIM = 4, 16


def setup(n_tokens: int):
    import torch

    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, HEADS, n_tokens, HEAD_DIM, generator=generator)
    k = torch.randn(1, HEADS, n_tokens, HEAD_DIM, generator=generator)
    mask = torch.rand(1, n_tokens, generator=generator) < 0.1
    mask[:, 0] = False
    return q, k, mask


def setup_chunked(n_tokens: int):
    from epiformer.models.methylgpt import received_attention  # imported before the clock starts

    return received_attention, setup(n_tokens)


def run_chunked(state):
    import torch

    received_attention, inputs = state
    with torch.inference_mode():
        return received_attention(*inputs).numpy()


def run_dense(state):
    import torch

    q, k, mask = state
    with torch.inference_mode():
        scores = q @ k.transpose(-2, -1) / HEAD_DIM**0.5
        scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1) * (~mask)[:, None, :, None]
        return (probs.sum(dim=(1, 2)) / (HEADS * (~mask).sum(dim=1, keepdim=True))).numpy()


if __name__ == "__main__":
    for n_tokens in (2_048, 8_192, 16_384):
        ours = measure(setup_chunked, run_chunked, n_tokens)
        peer = measure(setup, run_dense, n_tokens)
        report(f"attention received, {n_tokens:,} tokens x {HEADS} heads", ours, peer, "dense softmax matrix")
        print(f"  max |difference| {np.abs(ours['result'] - peer['result']).max():.2e}", flush=True)
