"""EpiGePT inference: `ef.models.EpiGePT` vs the published `transformers.BertModel` implementation, same weights.

Job: the hg38 release shape (71,343,376 parameters), random weights saved once as a Lightning checkpoint in
the authors' layout; each side loads it in a fresh process and predicts 4 windows of 128 kb (1,000 bins x
8 signals) in batches of 2, CPU, float32, inference mode, after one warm-up window. The peer is the authors'
network (conv module + `BertModel(inputs_embeds=...)` + head) with transformers' eager attention, as in the
published code (transformers 4.5), and again with the SDPA attention current transformers picks by default.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from _measure import measure, report

N_WINDOWS, BATCH = 4, 2


def _inputs(n_tfs: int, tf_dim: int):
    import torch

    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 4, (N_WINDOWS, 128_000), generator=generator)
    seq = torch.nn.functional.one_hot(codes, 4).float().transpose(1, 2).contiguous()
    motifs = torch.rand(N_WINDOWS, 1000, n_tfs, generator=generator) * 10
    motifs[motifs < 8] = 0
    context = torch.rand(N_WINDOWS, n_tfs, generator=generator) * 3
    tf = torch.nn.functional.pad(motifs * context[:, None, :], (0, tf_dim - n_tfs))
    return seq, tf


def setup_epiformer(path: str, device: str = "cpu"):
    import torch

    from epiformer.models import EpiGePT

    model = EpiGePT.from_pretrained(path).to(device)
    seq, tf = (x.to(device) for x in _inputs(model.config.n_tfs, model.config.tf_dim))
    with torch.inference_mode():
        model(seq[:1], tf[:1])
    return model, seq, tf


def setup_published(path: str, attn: str, device: str = "cpu"):
    import torch
    from epigept_published import PublishedEpiGePT

    from epiformer.models import EpiGePTConfig
    from epiformer.models.epigept._checkpoint import read_lightning_checkpoint

    config = EpiGePTConfig()
    model = PublishedEpiGePT(config, attn_implementation=attn).eval()
    state = read_lightning_checkpoint(path)["state_dict"]
    state.pop("encoder.embeddings.position_ids")  # a buffer no longer saved by transformers >= 4.31 (issue #2)
    model.load_state_dict(state, strict=True)
    model = model.to(device)
    seq, tf = (x.to(device) for x in _inputs(config.n_tfs, config.tf_dim))
    with torch.inference_mode():
        model(seq[:1], tf[:1])
    return model, seq, tf


def setup_eager(path: str, device: str = "cpu"):
    return setup_published(path, "eager", device)


def setup_sdpa(path: str, device: str = "cpu"):
    return setup_published(path, "sdpa", device)


def run(state):
    import torch

    model, seq, tf = state
    outputs = []
    # bf16 autocast on CUDA for both sides (the authors train in 16-bit precision)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=seq.is_cuda):
        for start in range(0, len(seq), BATCH):
            outputs.append(model(seq[start : start + BATCH], tf[start : start + BATCH]))
    return torch.cat(outputs).float().cpu().numpy()


if __name__ == "__main__":
    import torch

    from epiformer.models import EpiGePT

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        path = EpiGePT().save_pretrained(Path(tmp) / "epigept_random.ckpt", format="lightning")
        ours = measure(setup_epiformer, run, str(path))
        for name, setup in (("eager", setup_eager), ("sdpa", setup_sdpa)):
            peer = measure(setup, run, str(path))
            diff = float(np.abs(ours["result"] - peer["result"]).max())
            report(
                f"EpiGePT hg38 inference, {N_WINDOWS} x 128-kb windows (CPU, float32)",
                ours,
                peer,
                f"published BertModel ({name} attention)",
            )
            print(
                f"  windows/s: epiformer {N_WINDOWS / ours['seconds']:.3f} | published ({name}) "
                f"{N_WINDOWS / peer['seconds']:.3f} | max |difference| of outputs {diff:.2e}",
                flush=True,
            )
