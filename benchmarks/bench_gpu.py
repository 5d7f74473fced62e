"""GPU figures: the MethylGPT, EpiGePT and expression-predictor jobs of the CPU benchmarks, on one CUDA device.

Each job reuses the setup of its CPU benchmark (``bench_methylgpt.py``, ``bench_epigept.py``,
``bench_expression_predictor.py``: same weights, same inputs, ours beside the peer), run in this process one after
the other. Time: after a warm-up call, the fastest of three calls, each ended by ``torch.cuda.synchronize()``.
Memory: the peak of ``torch.cuda.max_memory_allocated`` during the timed calls, minus what was allocated before
them (weights and inputs). Precision on CUDA: epiformer runs bf16 autocast (as ``ef.tl.embed`` does); the authors'
MethylGPT runs fp16 autocast (their inference guide and AMP pretraining; flash-attn is not installed, so their
model takes its plain PyTorch attention path); EpiGePT runs bf16 autocast on both sides.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import bench_epigept as epigept
import bench_expression_predictor as expression
import bench_methylgpt as methylgpt

REPEATS = 3


def cuda_measure(setup, run, *args) -> dict:
    """Fastest of `REPEATS` synchronised calls of ``run(setup(*args))`` and their peak extra GPU memory (MB)."""
    state = setup(*args)
    try:
        result = run(state)  # warm-up (kernel selection, autotuning)
        torch.cuda.synchronize()
        gc.collect()
        torch.cuda.empty_cache()
        baseline = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            result = run(state)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = (torch.cuda.max_memory_allocated() - baseline) / 2**20
        return {"seconds": min(times), "peak_mb": peak, "result": result}
    except torch.OutOfMemoryError:
        return {"seconds": float("nan"), "peak_mb": float("nan"), "result": "out of GPU memory"}
    finally:
        del state
        gc.collect()
        torch.cuda.empty_cache()


def _line(name: str, n: float, unit: str, ours: dict, peer: dict, peer_name: str) -> None:
    speed = peer["seconds"] / ours["seconds"]
    memory = ours["peak_mb"] / peer["peak_mb"]
    print(
        f"{name}: epiformer {ours['seconds'] * 1e3:.1f} ms ({n / ours['seconds']:,.1f} {unit}/s), "
        f"{ours['peak_mb']:,.0f} MB | {peer_name} {peer['seconds'] * 1e3:.1f} ms ({n / peer['seconds']:,.1f} {unit}/s), "
        f"{peer['peak_mb']:,.0f} MB | speed-up x{speed:.2f}, peak memory {memory:.3f} x the peer's"
        + (f" ({peer['result']})" if isinstance(peer["result"], str) else ""),
        flush=True,
    )


def bench_methylgpt(tmp: Path) -> None:
    print("MethylGPT d_model 64, 6 layers, 4 heads", flush=True)
    sizes = {2048: (64, 16), 8192: (16, 4), methylgpt.FULL: (4, 1)}  # CpGs: (inference batch, training batch)
    for n_cpgs, (n_infer, n_train) in sizes.items():
        folder = str(methylgpt.write_checkpoint(n_cpgs, tmp / f"methylgpt{n_cpgs}"))
        for job, label in (("infer_legacy", "missing attended"), ("infer_mask", "missing key-masked")):
            args = (job, n_infer, folder, "cuda")
            ours = cuda_measure(methylgpt.setup_epiformer, methylgpt.run_epiformer, *args)
            peer = cuda_measure(methylgpt.setup_published, methylgpt.run_published, *args)
            name = f"  inference, {n_cpgs:,} CpGs x {n_infer} samples, {label}"
            _line(name, n_infer, "samples", ours, peer, "methylgpt 0.1.2")
        args = ("train", n_train, folder, "cuda")
        ours = cuda_measure(methylgpt.setup_epiformer, methylgpt.run_epiformer, *args)
        peer = cuda_measure(methylgpt.setup_published, methylgpt.run_published, *args)
        _line(
            f"  training step, {n_cpgs:,} CpGs x {n_train} samples", n_train, "samples", ours, peer, "methylgpt 0.1.2"
        )


def bench_epigept(tmp: Path) -> None:
    from epiformer.models import EpiGePT

    n_windows = epigept.N_WINDOWS
    print(f"EpiGePT hg38 release shape, {n_windows} x 128-kb windows, batches of {epigept.BATCH}", flush=True)
    torch.manual_seed(0)
    path = str(EpiGePT().save_pretrained(tmp / "epigept_random.ckpt", format="lightning"))
    ours = cuda_measure(epigept.setup_epiformer, epigept.run, path, "cuda")
    for name, setup in (("eager", epigept.setup_eager), ("sdpa", epigept.setup_sdpa)):
        peer = cuda_measure(setup, epigept.run, path, "cuda")
        _line("  inference", n_windows, "windows", ours, peer, f"published BertModel ({name} attention)")


def _steps(state) -> None:
    step, _ = state
    for _ in range(expression.STEPS):
        step()


def bench_expression() -> None:
    pairs = expression.STEPS * expression.PAIRS
    print(f"Expression predictor training, {expression.PAIRS:,} pairs per step, {expression.STEPS} steps", flush=True)
    ours = cuda_measure(expression.setup_factorized, _steps, "cuda")
    peer = cuda_measure(expression.setup_published, _steps, "cuda")
    torch.set_default_device("cpu")
    _line("  training", pairs, "pairs", ours, peer, "published per-pair network")


def main() -> None:
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here, nothing to measure (the CPU figures come from the other benchmarks)")
        return
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        bench_methylgpt(Path(tmp))
        bench_epigept(Path(tmp))
    bench_expression()


if __name__ == "__main__":
    main()
