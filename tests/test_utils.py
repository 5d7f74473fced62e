from __future__ import annotations

from importlib.metadata import version

import anndata as ad
import numpy as np
import pytest

import epiformer as ef
from epiformer._utils import get_matrix, layer_names


def test_layer_names_leave_out_x():
    """anndata 0.13 lists `.X` among the layers under the key None; the named layers are what users can pass."""
    adata = ad.AnnData(np.ones((3, 2), dtype=np.float32), layers={"counts": np.zeros((3, 2)), "beta": np.ones((3, 2))})
    assert layer_names(adata) == ["counts", "beta"]
    assert layer_names(ad.AnnData(np.ones((3, 2)))) == []
    with pytest.raises(KeyError, match=r"Layer 'raw' not found; available layers: \['beta', 'counts'\]"):
        get_matrix(adata, "raw")
    assert get_matrix(adata, "counts") is adata.layers["counts"]


def test_version_is_the_installed_one():
    assert ef.__version__ == version("epiformer")
