from __future__ import annotations

from contextlib import contextmanager
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on an oversubscribed 2-core machine OpenMP spin-waits make two threads ~20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- refusals (issue 20): the error, its message, and nothing changed ---


def _snapshot(obj):
    """A deep copy of what a call could change: an AnnData / MuData (every slot), a frame, an array, or a file."""
    from pathlib import Path

    if isinstance(obj, Path):
        return obj.read_bytes() if obj.is_file() else sorted(p.name for p in obj.iterdir())
    if hasattr(obj, "mod"):
        return {"mod": {k: _snapshot(v) for k, v in obj.mod.items()}, "obs": obj.obs.copy(), "uns": dict(obj.uns)}
    if isinstance(obj, AnnData):
        copy = obj.copy()
        return {
            "X": copy.X,
            "obs": copy.obs,
            "var": copy.var,
            "uns": sorted(copy.uns),
            "layers": {k: copy.layers[k] for k in copy.layers},
            "obsm": sorted(copy.obsm),
            "shape": copy.shape,
        }
    return obj.copy()


def _assert_same(before, after) -> None:
    import pandas as pd
    from scipy import sparse

    if isinstance(before, dict):
        assert before.keys() == after.keys()
        for key in before:
            _assert_same(before[key], after[key])
    elif isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(after, before)
    elif sparse.issparse(before):
        assert sparse.issparse(after) and before.shape == after.shape and (before != after).nnz == 0
    elif isinstance(before, np.ndarray):
        np.testing.assert_array_equal(after, before)
    else:
        assert after == before


@contextmanager
def _unchanged(*objects):
    before = [_snapshot(o) for o in objects]
    yield
    for obj, snap in zip(objects, before, strict=True):
        _assert_same(snap, _snapshot(obj))


@pytest.fixture
def unchanged():
    """``with unchanged(*objects): ...``: the block leaves `objects` as they were (see `refuses`)."""
    return _unchanged


@pytest.fixture
def refuses():
    """``refuses(call, error, match, *objects)``: `call()` raises `error` matching `match`; `objects` are unchanged.

    `objects` are AnnData / MuData objects, frames, arrays, or paths (a file's bytes, a folder's listing).
    """

    def check(call, error, match, *objects):
        with _unchanged(*objects), pytest.raises(error, match=match):
            call()

    return check
