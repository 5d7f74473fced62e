"""Run one side of a benchmark in a fresh subprocess and report its wall time and peak memory.

Peak memory is the growth of the process's resident set over what the inputs already occupy: the kernel's
high-water mark (``VmHWM``) is reset after the inputs are built, then read when the job is done.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    msg = f"{field} not in /proc/self/status"
    raise RuntimeError(msg)


def _child(setup: Callable[..., Any], run: Callable[[Any], Any], args: tuple, queue: mp.Queue) -> None:
    state = setup(*args)
    gc.collect()
    baseline = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
    start = time.perf_counter()
    result = run(state)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    queue.put({"seconds": seconds, "peak_mb": max(peak - baseline, 0) / 1024, "result": result})


def measure(setup: Callable[..., Any], run: Callable[[Any], Any], *args: Any) -> dict[str, Any]:
    """``run(setup(*args))`` in a fresh process: seconds, peak memory growth in MB and run's return value.

    `setup` and `run` must be module-level functions (they are sent to a spawned process).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(setup, run, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode:
        msg = f"benchmark process failed with exit code {proc.exitcode}"
        raise RuntimeError(msg)
    return out


def report(name: str, ours: dict[str, Any], peer: dict[str, Any], peer_name: str) -> str:
    """One comparison line with the ratios; speed-up > 1 and a memory fraction < 1 favour epiformer."""
    speed = peer["seconds"] / ours["seconds"]
    memory = ours["peak_mb"] / max(peer["peak_mb"], 1e-3)
    line = (
        f"{name}: epiformer {ours['seconds']:.3f} s, {ours['peak_mb']:.1f} MB | {peer_name} {peer['seconds']:.3f} s, "
        f"{peer['peak_mb']:.1f} MB | speed-up x{speed:.2f}, peak memory {memory:.2f} x the peer's"
    )
    print(line, flush=True)
    return line
