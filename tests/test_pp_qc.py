from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData

import epiformer as ef


def test_qc_values():
    X = np.array([[0.1, 0.5, np.nan, 0.9], [np.nan, np.nan, np.nan, np.nan], [0.3, 0.3, 0.3, 0.3]], dtype=np.float32)
    adata = AnnData(X=X)
    adata.obs_names = ["a", "empty", "c"]
    with pytest.warns(UserWarning, match="1 samples have no observed value.*'empty'"):
        ef.pp.qc_metrics(adata)
    assert adata.n_obs == 3  # reported, not dropped
    np.testing.assert_allclose(adata.obs["missing_fraction"], [0.25, 1.0, 0.0])
    assert adata.obs["n_observed"].tolist() == [3, 0, 4]
    np.testing.assert_allclose(adata.obs["mean_beta"], [0.5, np.nan, 0.3], rtol=1e-6)
    np.testing.assert_allclose(adata.obs["frac_intermediate"], [1 / 3, np.nan, 1.0], rtol=1e-6)
    np.testing.assert_allclose(adata.var["missing_fraction"], [1 / 3, 1 / 3, 2 / 3, 1 / 3])
    np.testing.assert_allclose(adata.var["mean_beta"], [0.2, 0.4, 0.3, 0.6], rtol=1e-6)
    uns = adata.uns["methylation_qc"]
    assert list(uns["all_missing_samples"]) == ["empty"]
    assert uns["histogram"]["counts"].sum() == 7
    assert uns["params"]["n_bins"] == 50 and "epiformer_version" in uns["params"]


def test_qc_not_inplace(blood):
    obs, var = ef.pp.qc_metrics(blood, inplace=False)
    assert "missing_fraction" not in blood.obs
    assert obs.shape == (10, 5) and var.shape == (20000, 3)
    assert (obs["missing_fraction"] == 0).all()
    assert ((obs["mean_beta"] > 0.3) & (obs["mean_beta"] < 0.7)).all()


def test_qc_rejects_mvalues_untouched(blood):
    m = ef.pp.to_mvalue(blood, copy=True)
    with pytest.raises(ValueError, match="ef.pp.to_beta"):
        ef.pp.qc_metrics(m)
    assert "missing_fraction" not in m.obs
