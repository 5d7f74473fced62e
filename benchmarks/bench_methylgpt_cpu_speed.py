"""MethylGPT pretraining steps on the CPU: float32 eager beside bf16 autocast and ``torch.compile``, tokens per second.

The job: the training step ``ef.tl.pretrain`` runs with its defaults (a new model of the published layers, d_model
64, 2 layers, 4 heads, no dropout; a batch of 32 samples x 200 CpGs, 30 % masked, MLM loss, backward, an Adam step
at a fixed 1e-3), on seeded betas, and the published step for comparison: the authors' "tiny" shape (6 layers,
dropout 0.1) with the MLM + MVC loss.
Each variant runs `--steps` steps after `--warmup` untimed ones (compilation happens there), in the same process
and thread count, and the mean loss of its timed steps is printed beside its speed, so a variant that changes the
loss curve shows it. bf16 autocast pays off only on CPUs with native bf16 (AVX512-BF16 or AMX); elsewhere it is
emulated, and the script says which this CPU is (from ``/proc/cpuinfo``).

```bash
.venv/bin/python benchmarks/bench_methylgpt_cpu_speed.py --threads 1
```
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

BATCH, CPGS, VOCAB = 32, 200, 1216
#: Model shapes and losses: (n_layers, dropout, MVC loss too).
SHAPES = {
    "default (2 layers, no dropout, MLM)": (2, 0.0, False),
    'authors\' "tiny" (6 layers, dropout 0.1, MLM + MVC)': (6, 0.1, True),
}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` is not readable)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return set()
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def run(variant: str, shape: tuple[int, float, bool], steps: int, warmup: int) -> tuple[float, float]:
    """Seconds per step and mean loss of `steps` timed training steps of `variant` on a model of `shape`."""
    from epiformer.models import MethylGPT, MethylGPTVocab

    torch.manual_seed(0)
    model = MethylGPT(
        MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(VOCAB)]),
        d_model=64,
        n_layers=shape[0],
        n_heads=4,
        dropout=shape[1],
    )
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    step = model.forward if variant != "compile" else torch.compile(model.forward)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16" else contextlib.nullcontext()
    losses, start = [], 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        columns = np.sort(rng.choice(VOCAB, CPGS, replace=False))
        betas = torch.from_numpy(rng.beta(0.5, 0.5, (BATCH, CPGS)).astype(np.float32))
        mask = torch.from_numpy(rng.random((BATCH, CPGS)) < 0.3)
        ids, values, kpm = model.tokenize(
            betas.masked_fill(mask, model.mask_value), cpg_ids=torch.as_tensor(columns + 3)
        )
        with autocast:
            out = step(ids, values, key_padding_mask=kpm, mvc=shape[2])
        target = betas[mask]
        loss = torch.nn.functional.mse_loss(out["mlm_output"][:, 1:][mask].float(), target)
        if shape[2]:
            loss = loss + torch.nn.functional.mse_loss(out["mvc_output"][:, 1:][mask].float(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= warmup:
            losses.append(loss.detach().item())
    return (time.perf_counter() - start) / steps, float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    print(
        f"CPU bf16: {'native (' + ', '.join(native) + ')' if native else 'not native (emulated)'}; {args.threads} thread(s)"
    )
    base = None
    print("| model | variant | s / step | tokens / s | x default float32 eager | mean loss |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, shape in SHAPES.items():
        for label, variant in (("float32 eager", "eager"), ("bf16 autocast", "bf16"), ("torch.compile", "compile")):
            try:
                seconds, loss = run(variant, shape, args.steps, args.warmup)
            except Exception as error:  # noqa: BLE001 (torch.compile's C++ kernels may not build: report, go on)
                print(f"| {name} | {label} | failed: {type(error).__name__} | | | |", flush=True)
                continue
            base = base or seconds
            tokens = BATCH * (CPGS + 1) / seconds
            print(
                f"| {name} | {label} | {seconds:.4f} | {tokens:,.0f} | {base / seconds:.2f} | {loss:.4f} |", flush=True
            )


if __name__ == "__main__":
    main()
