from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData

import epiformer as ef


def _epicv2() -> AnnData:
    X = np.array(
        [
            [0.1, 0.3, np.nan, 0.5, 0.9],
            [0.2, np.nan, np.nan, 0.6, 0.8],
        ],
        dtype=np.float32,
    )
    adata = AnnData(X=X)
    adata.obs_names = ["a", "b"]
    adata.var_names = ["cg00000001_TC11", "cg00000001_TC12", "cg00000002_BC21", "cg00000003", "rs0001"]
    adata.var["gene"] = ["G1", "G1b", "G2", "G3", "snp"]
    adata.layers["raw"] = X * 2
    return adata


def test_harmonize_collapses_and_averages():
    adata = _epicv2()
    before = adata.copy()
    out = ef.pp.harmonize_probes(adata)
    assert list(out.var_names) == ["cg00000001", "cg00000002", "cg00000003", "rs0001"]
    np.testing.assert_allclose(out.X[:, 0], [0.2, 0.2])  # mean of observed replicates
    assert np.isnan(out.X[:, 1]).all()  # no observed replicate stays missing
    np.testing.assert_allclose(out.X[:, 2:], before.X[:, 3:])
    np.testing.assert_allclose(out.layers["raw"][:, 0], [0.4, 0.4])
    assert out.var["n_probes_merged"].tolist() == [2, 1, 1, 1]
    assert out.var["gene"].tolist() == ["G1", "G2", "G3", "snp"]
    assert out.uns["harmonize_probes"] == {
        "n_input": 5,
        "n_output": 4,
        "n_suffixed": 3,
        "n_ids_averaged": 1,
        "n_probes_averaged": 2,
    }
    np.testing.assert_array_equal(adata.X, before.X)  # input untouched
    assert list(adata.var_names) == list(before.var_names)


def test_align_to_vocab_order_and_coverage(betas):
    vocab = ["cg00000007", "cg99999999", "cg00000000", "cg00000001"]
    out = ef.pp.align_to_vocab(betas, vocab)
    assert list(out.var_names) == vocab
    np.testing.assert_array_equal(out.X[:, 0], betas.X[:, 7])
    assert np.isnan(out.X[:, 1]).all()
    np.testing.assert_array_equal(out.X[:, 3], betas.X[:, 1])  # NaN of S0 kept
    assert out.uns["vocab_coverage"] == {"n_vocab": 4, "n_found": 3, "fraction_found": 0.75, "n_unused": 5}


def test_align_to_vocab_var_key_layer_and_vocab_object(betas):
    betas.var["probe"] = list(reversed(betas.var_names))
    betas.layers["other"] = betas.X * 0 + 0.5

    class Vocab:
        probes = ["cg00000000"]

    out = ef.pp.align_to_vocab(betas, Vocab(), var_key="probe", layer="other")
    assert out.shape == (6, 1)
    np.testing.assert_array_equal(out.X[:, 0], betas.layers["other"][:, 7])


def test_align_to_vocab_errors(betas):
    with pytest.raises(ValueError, match="harmonize_probes"):
        ef.pp.align_to_vocab(_epicv2(), ["cg00000001"])
    dup = betas.copy()
    dup.var_names = ["cg00000001"] * 2 + list(betas.var_names[2:])
    with pytest.raises(ValueError, match="Duplicated probe IDs"):
        ef.pp.align_to_vocab(dup, ["cg00000001"])
    with pytest.raises(KeyError, match="not a column"):
        ef.pp.align_to_vocab(betas, ["cg00000001"], var_key="nope")


def test_align_to_vocab_backed(tmp_path, betas):
    betas.write_h5ad(tmp_path / "b.h5ad")
    from anndata import read_h5ad

    backed = read_h5ad(tmp_path / "b.h5ad", backed="r")
    out = ef.pp.align_to_vocab(backed, ["cg00000003", "cg00000005"])
    np.testing.assert_array_equal(out.X, betas.X[:, [3, 5]])
    backed.file.close()
