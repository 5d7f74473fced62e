from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from anndata import AnnData

import epiformer as ef


@cache
def _blood() -> AnnData:
    return ef.datasets.blood_gse41169()


@pytest.fixture
def blood() -> AnnData:
    """The real GSE41169 blood cohort (10 x 20,000), a fresh copy per test."""
    return _blood().copy()


@pytest.fixture
def betas() -> AnnData:
    """Small seeded beta matrix with probe-like names and a few missing values."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (6, 8)).astype(np.float32)
    X[0, 1] = X[3, 5] = np.nan
    adata = AnnData(X=X)
    adata.obs_names = [f"S{i}" for i in range(6)]
    adata.var_names = [f"cg{i:08d}" for i in range(8)]
    return adata


# --- methylation from expression + sequence (issue 5) ---


@pytest.fixture(scope="session", autouse=True)
def _epiformer_cache(tmp_path_factory):
    """Synthetic genomes are written to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EPIFORMER_CACHE", str(tmp_path_factory.mktemp("epiformer_cache")))
        yield


@pytest.fixture
def synthetic_small():
    """A small paired expression + methylation cohort with its planted rule (60 samples, 30 genes, 400 CpGs)."""
    return ef.datasets.synthetic_multiome(60, 30, 400, random_state=0)
