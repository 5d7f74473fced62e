"""Smoke test of an installed epiformer wheel, run with ``python -I`` from a folder outside the checkout.

Checks that the package comes from site-packages (not a source tree), that importing it does not import
torch, that the bundled data files are inside the wheel, and that a tiny MethylGPT embeds real data.
"""

import sys
from pathlib import Path

import epiformer as ef

package = Path(ef.__file__).resolve().parent
site = Path(sys.prefix).resolve()
assert site in package.parents, f"epiformer was imported from {package}, not from the environment {site}"
assert not any(Path(p, "src", "epiformer").is_dir() for p in sys.path if p), f"a source tree is on sys.path: {sys.path}"
assert "torch" not in sys.modules, "import epiformer imported torch"

blood = ef.datasets.blood_gse41169()
assert blood.shape == (10, 20_000), blood.shape
assert ef.datasets.pbmc_small().n_obs > 0
segment = ef.datasets.hg19_chr22_segment()
assert site in segment.fasta.resolve().parents, segment.fasta
assert segment.fasta.is_file() and Path(f"{segment.fasta}.fai").is_file(), segment.fasta

probes = list(blood.var_names[:200])
model = ef.models.MethylGPT(ef.models.MethylGPTVocab.from_probes(probes), d_model=16, n_layers=1, n_heads=2)
small = blood[:, probes].copy()
ef.tl.embed(small, model, progress=False, device="cpu")
assert small.obsm["X_methylgpt"].shape == (10, 16), small.obsm["X_methylgpt"].shape
print(f"wheel smoke test passed: epiformer {ef.__version__} from {package}")
