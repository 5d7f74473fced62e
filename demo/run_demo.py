"""`make demo`: epiformer's main jobs end to end on bundled data; results are written under ``--output``.

Each step is one capability, self-contained, and prints what it wrote.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt

import epiformer as ef


def data_layer(out: Path) -> None:
    """Real blood cohort: read, harmonise probe IDs, QC; write an .h5ad and a QC figure."""
    adata = ef.datasets.blood_gse41169()
    adata = ef.pp.harmonize_probes(adata)
    ef.pp.qc_metrics(adata)
    geo = ef.io.read_geo_series_matrix(ef.datasets.geo_series_matrix_example())
    print(f"  blood cohort: {adata.n_obs} samples x {adata.n_vars} CpGs; GEO excerpt: {geo.n_obs} x {geo.n_vars}")
    print(f"  harmonised: {adata.uns['harmonize_probes']}")
    adata.write_h5ad(out / "blood_gse41169_qc.h5ad")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    ef.pl.beta_distribution(adata, ax=axes[0])
    ef.pl.missingness(adata, ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / "blood_gse41169_qc.png", dpi=120)
    plt.close(fig)
    print(f"  wrote {out / 'blood_gse41169_qc.h5ad'} and {out / 'blood_gse41169_qc.png'}")


def methylgpt_embedding(out: Path) -> None:
    """MethylGPT: load a checkpoint in the authors' layout (random weights here), embed and impute the blood cohort."""
    import json

    import numpy as np
    import torch

    blood = ef.datasets.blood_gse41169()
    torch.manual_seed(0)
    vocab = ef.models.MethylGPTVocab.from_probes(sorted(blood.var_names[::10]))
    folder = out / "methylgpt_random_checkpoint"
    folder.mkdir(exist_ok=True)
    torch.save(ef.models.MethylGPT(vocab).state_dict(), folder / "model.pt")  # published keys (self_attn.Wqkv.*)
    vocab.to_json(folder / "vocab.json")
    (folder / "args.json").write_text(json.dumps({"layer_size": 64, "nlayers": 6, "nhead": 4, "dropout": 0.1}))
    model = ef.models.MethylGPT.from_pretrained(folder)
    print(f"  loaded {model} from {folder}")
    ef.tl.embed(blood, model, progress=False)
    print(
        f"  obsm['X_methylgpt']: {blood.obsm['X_methylgpt'].shape}; coverage {blood.uns['methylgpt']['params']['n_found']}"
    )
    blood.X[np.random.default_rng(0).random(blood.shape) < 0.05] = np.nan
    ef.tl.impute(blood, model, progress=False)
    print(f"  imputed {blood.uns['methylgpt_imputed']['n_imputed']} hidden values")
    blood.write_h5ad(out / "blood_methylgpt.h5ad")
    print(f"  wrote {out / 'blood_methylgpt.h5ad'}")


STEPS = [data_layer, methylgpt_embedding]


def main() -> None:
    """Run every step, writing under the output folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("demo_output"))
    out = parser.parse_args().output
    out.mkdir(parents=True, exist_ok=True)
    for step in STEPS:
        start = time.perf_counter()
        print(f"[{step.__name__}] {step.__doc__}")
        step(out)
        print(f"[{step.__name__}] done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
