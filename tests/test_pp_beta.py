from __future__ import annotations

import numpy as np
import pytest

import epiformer as ef


def test_roundtrip_array():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 1000)
    x[:3] = [0.0, 1.0, 0.5]
    m = ef.pp.to_mvalue(x)
    assert np.isfinite(m).all()
    assert m[2] == pytest.approx(0.0)
    np.testing.assert_allclose(ef.pp.to_beta(m), x, atol=1e-6)
    # the classic definition without an offset
    np.testing.assert_allclose(ef.pp.to_mvalue(np.array([0.2]), offset=0), [np.log2(0.25)])
    # float32 keeps float32
    assert ef.pp.to_mvalue(x.astype(np.float32)).dtype == np.float32


def test_nan_stays_nan_and_infinite_m():
    assert np.isnan(ef.pp.to_beta(np.array([np.nan]))).all()
    np.testing.assert_allclose(ef.pp.to_beta(np.array([-np.inf, np.inf])), [0.0, 1.0])


def test_mvalues_where_betas_expected(betas):
    m = ef.pp.to_mvalue(betas, copy=True)
    before = m.X.copy()
    with pytest.raises(ValueError, match="ef.pp.to_beta"):
        ef.pp.to_mvalue(m)
    np.testing.assert_array_equal(m.X, before)  # untouched by the failed call
    with pytest.raises(ValueError, match="ef.pp.to_beta"):
        ef.pp.qc_metrics(m)


def test_anndata_in_place_copy_and_layer(betas):
    original = betas.X.copy()
    out = ef.pp.to_mvalue(betas, copy=True)
    np.testing.assert_array_equal(betas.X, original)
    assert ef.pp.to_mvalue(betas) is None
    np.testing.assert_allclose(betas.X, out.X, equal_nan=True)
    betas.layers["m"] = betas.X.copy()
    ef.pp.to_beta(betas, layer="m")
    np.testing.assert_allclose(betas.layers["m"], original, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(betas.X, out.X, equal_nan=True)  # .X left alone


def test_warns_when_values_look_like_betas():
    with pytest.warns(UserWarning, match="already in \\[0, 1\\]"):
        ef.pp.to_beta(np.array([0.1, 0.9]))


def test_bad_offset():
    with pytest.raises(ValueError, match="offset"):
        ef.pp.to_mvalue(np.array([0.5]), offset=-1)


def test_mudata_modality(betas):
    import mudata as md

    rna = betas.copy()
    rna.X = rna.X * 10
    rna.var_names = [f"gene{i}" for i in range(rna.n_vars)]
    mdata = md.MuData({"methyl": betas.copy(), "rna": rna})
    out = ef.pp.to_mvalue(mdata, copy=True)
    assert isinstance(out, md.MuData)
    np.testing.assert_allclose(out.mod["methyl"].X, ef.pp.to_mvalue(betas.X), equal_nan=True)
    np.testing.assert_array_equal(out.mod["rna"].X, rna.X)  # other modalities untouched
    np.testing.assert_array_equal(mdata.mod["methyl"].X, betas.X)  # copy=True leaves the input alone
    ef.pp.qc_metrics(mdata)
    assert "missing_fraction" in mdata.mod["methyl"].obs
    with pytest.raises(KeyError, match="Modality 'atac' not found"):
        ef.pp.qc_metrics(mdata, mod="atac")
