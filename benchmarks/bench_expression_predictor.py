"""Training throughput of the expression predictor: factorized blocks vs the published per-pair formulation.

Job: training steps (forward, MAE, backward, Adam) on batches of 1,024 (CpG, sample) pairs with 800 bp windows
and 2,000 genes. The published network (``levy_jurgenson``) recomputes its CpG parts (two CNNs, the distance
attention) and sample part (the expression attention) for every pair, as its TF and PyTorch code do; the
factorized network computes them once per block of 64 CpGs x 16 samples and forms the 1,024 pairs by
broadcasting. Each side runs in its own process with one intra-op thread (the machines this runs on are shared;
per-thread figures are the comparable ones), after one warm-up step.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import measure

N_GENES, SEQ_LEN, N_CPGS, N_SAMPLES, N_NEIGHBORS, STEPS = 2_000, 800, 64, 16, 16, 5
PAIRS = N_CPGS * N_SAMPLES


def _common(device: str):
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(0)
    return torch


def setup_factorized(device: str = "cpu"):
    torch = _common(device)
    from epiformer.models.expression_predictor import FactorizedNet

    torch.set_default_device(device)
    net = FactorizedNet(N_GENES, SEQ_LEN)
    batch = {
        "seq": torch.randint(0, 5, (N_CPGS, SEQ_LEN), dtype=torch.uint8),
        "nbr_idx": torch.randint(0, N_GENES, (N_CPGS, N_NEIGHBORS)),
        "nbr_dist": torch.randn(N_CPGS, N_NEIGHBORS) * 1e5,
        "nbr_mask": torch.rand(N_CPGS, N_NEIGHBORS) < 0.8,
        "expr": torch.randn(N_SAMPLES, N_GENES),
    }
    target = torch.rand(N_SAMPLES, N_CPGS)

    def step():
        loss = (net.forward_block(**batch) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    step()
    return step, sum(p.numel() for p in net.parameters())


def setup_published(device: str = "cpu"):
    torch = _common(device)
    from epiformer.models.expression_predictor import LevyJurgensonNet

    torch.set_default_device(device)
    net = LevyJurgensonNet(N_GENES, SEQ_LEN)
    seq = torch.randint(0, 5, (PAIRS, SEQ_LEN), dtype=torch.uint8)
    expr = torch.rand(PAIRS, N_GENES) * 90 + 10
    dist = torch.where(torch.rand(PAIRS, N_GENES) < 0.002, torch.rand(PAIRS, N_GENES), torch.zeros(PAIRS, N_GENES))
    target = torch.rand(PAIRS)

    def step():
        loss = (net(seq, expr, dist) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    step()
    return step, sum(p.numel() for p in net.parameters())


def run(state):
    step, n_params = state
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return {"pairs_per_s": STEPS * PAIRS / (time.perf_counter() - start), "n_params": n_params}


if __name__ == "__main__":
    ours = measure(setup_factorized, run)
    peer = measure(setup_published, run)
    a, b = ours["result"], peer["result"]
    print(
        f"training, {PAIRS:,} pairs per step, {SEQ_LEN} bp, {N_GENES:,} genes, 1 thread: "
        f"factorized {a['pairs_per_s']:,.0f} pairs/s ({a['n_params']:,} parameters), {ours['peak_mb']:.1f} MB | "
        f"published per-pair {b['pairs_per_s']:,.0f} pairs/s ({b['n_params']:,} parameters), {peer['peak_mb']:.1f} MB | "
        f"speed-up x{a['pairs_per_s'] / b['pairs_per_s']:.1f}, peak memory {ours['peak_mb'] / max(peer['peak_mb'], 1e-3):.2f} "
        "x the peer's",
        flush=True,
    )
    assert np.isfinite(a["pairs_per_s"]) and np.isfinite(b["pairs_per_s"])
