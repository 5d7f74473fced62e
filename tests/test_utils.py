from __future__ import annotations

from importlib.metadata import version

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import epiformer as ef
from epiformer._sequence import whole_positions
from epiformer._utils import get_matrix, layer_names
from epiformer._validation import check_choice


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


def test_check_choice_names_the_option_and_its_choices():
    check_choice("b", ("a", "b"), name="kind")
    check_choice(None, ("0-based", None), name="coordinates")
    with pytest.raises(ValueError, match=r"^`kind` must be 'a', 'b' or None, got 'c'\.$"):
        check_choice("c", ("a", "b", None), name="kind")
    with pytest.raises(ValueError, match=r"^`kind` must be 'a', got 1\.$"):
        check_choice(1, ("a",), name="kind")
    for odd in (np.array(["a", "b"]), pd.NA):  # compare ambiguously: refused with the message, not a TypeError
        with pytest.raises(ValueError, match="`kind` must be 'a' or 'b'"):
            check_choice(odd, ("a", "b"), name="kind")


def test_whole_positions_refuse_what_is_not_a_base():
    np.testing.assert_array_equal(whole_positions(pd.Series([1, 2**60]), "x"), [1, 2**60])  # integers as they are
    np.testing.assert_array_equal(whole_positions(pd.Series([1.0, 128.0]), "x"), [1, 128])
    for bad in (pd.Series([1.5]), pd.Series([np.nan]), pd.Series([np.inf]), pd.Series(["one"]), pd.array([1, None])):
        with pytest.raises(ValueError, match="`start` must hold whole positions"):
            whole_positions(pd.Series(bad), "`start`")
