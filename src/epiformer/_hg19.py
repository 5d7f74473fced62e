"""The bundled hg19 annotation tables, 1-based and inclusive: GENCODE genes and UCSC CpG islands.

`epiformer.datasets` serves them to users and `epiformer.pp` sums counts over them; both read them here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "datasets" / "data"


def genes() -> pd.DataFrame:
    """GENCODE genes: `gene_name`, `chrom`, `start`, `end` (1-based, inclusive), `strand`, `gene_type`."""
    return pd.read_csv(DATA / "hg19_genes.tsv.gz", sep="\t")


def cpg_islands() -> pd.DataFrame:
    """UCSC CpG islands: `chrom`, `start`, `end`, 1-based and inclusive (UCSC's 0-based starts plus one)."""
    islands = pd.read_csv(DATA / "hg19_cpg_islands.tsv.gz", sep="\t")
    return islands.assign(start=islands["start"].to_numpy(np.int64) + 1)
