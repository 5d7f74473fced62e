"""Simulated single cells -> `ef.pp.aggregate_regions` -> scvi-tools METHYLVI -> scanpy neighbours, UMAP, Leiden."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import epiformer as ef


def test_synthetic_cells_layout_and_determinism():
    cells = ef.datasets.synthetic_single_cell_methylation(120, random_state=3)
    again = ef.datasets.synthetic_single_cell_methylation(120, random_state=3)
    other = ef.datasets.synthetic_single_cell_methylation(120, random_state=4)
    bulk = ef.datasets.imr90_wgbs_chr22()
    assert cells.shape == (120, 12_914) and cells.X is None
    pd.testing.assert_frame_equal(cells.var, bulk.var)
    for key in ("mc", "cov"):
        assert isinstance(cells.layers[key], sparse.csr_matrix) and cells.layers[key].dtype == np.int32
        assert (cells.layers[key] != again.layers[key]).nnz == 0
    assert (cells.layers["cov"] != other.layers["cov"]).nnz > 0
    mc, cov = cells.layers["mc"].toarray(), cells.layers["cov"].toarray()
    assert (mc <= cov).all() and set(np.unique(cov)) == {0, 1}  # one read per covered site by default
    assert 0.04 < (cov > 0).mean() < 0.06  # about 5 % of the CpGs per cell
    assert isinstance(cells.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert cells.obs["cell_type"].value_counts().tolist() == [40, 40, 40]
    np.testing.assert_array_equal(cells.obs["n_observed"], (cov > 0).sum(axis=1))
    truth = cells.uns["synthetic"]
    assert "simulated" in truth["description"].lower() and truth["random_state"] == 3


def test_synthetic_cells_planted_truth_is_in_the_reads():
    cells = ef.datasets.synthetic_single_cell_methylation(600, random_state=0)
    truth = cells.uns["synthetic"]
    blocks = truth["blocks"]
    assert len(blocks) == 3 * 8 and not blocks["block"].duplicated().any()  # no block shared by two types
    bulk = ef.datasets.imr90_wgbs_chr22()
    mc_bulk = np.asarray(bulk.layers["mc"].sum(axis=0)).ravel()
    cov_bulk = np.asarray(bulk.layers["cov"].sum(axis=0)).ravel()
    np.testing.assert_allclose(truth["bulk_level"], (mc_bulk + 0.5) / (cov_bulk + 1.0), rtol=1e-6)
    pos = cells.var["pos"].to_numpy()
    mc, cov = cells.layers["mc"].toarray(), cells.layers["cov"].toarray()
    types = cells.obs["cell_type"].to_numpy()
    for row in blocks.itertuples():
        sites = (pos >= row.start) & (pos <= row.end)
        assert sites.sum() == row.n_sites >= 20
        own, rest = types == row.cell_type, types != row.cell_type
        own_level = mc[own][:, sites].sum() / cov[own][:, sites].sum()
        rest_level = mc[rest][:, sites].sum() / cov[rest][:, sites].sum()
        if row.direction == "hypo":
            assert own_level < rest_level - 0.3
        else:
            assert own_level > rest_level + 0.3
    # outside its blocks a type keeps the bulk level
    k = list(truth["cell_types"]).index("type_0")
    planted = np.zeros(len(pos), dtype=bool)
    for row in blocks[blocks["cell_type"] == "type_0"].itertuples():
        planted |= (pos >= row.start) & (pos <= row.end)
    np.testing.assert_allclose(truth["type_levels"][k, ~planted], truth["bulk_level"][~planted])


def test_synthetic_cells_options():
    deep = ef.datasets.synthetic_single_cell_methylation(20, reads=3.0, coverage=0.2)
    cov = deep.layers["cov"]
    assert 2.5 < cov.data.mean() < 3.5 and cov.data.min() >= 1
    assert deep.uns["synthetic"]["reads"] == 3.0
    with pytest.raises(ValueError, match="lower `n_types`"):
        ef.datasets.synthetic_single_cell_methylation(10, n_types=20, blocks_per_type=8)
    with pytest.raises(ValueError, match="`coverage`"):
        ef.datasets.synthetic_single_cell_methylation(10, coverage=0)


@pytest.fixture
def _one_torch_thread():
    """One intra-op thread: on an oversubscribed 2-core machine two threads make training several times slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("_one_torch_thread")
@pytest.mark.filterwarnings("ignore:The number of training batches:UserWarning")  # 5 batches an epoch, by design
def test_methylvi_latent_separates_planted_types(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # older scvi-tools save the training history under ./lightning_logs
    scvi = pytest.importorskip("scvi")
    sc = pytest.importorskip("scanpy")
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    cells = ef.datasets.synthetic_single_cell_methylation(300, n_types=3, random_state=0)
    regions = ef.pp.aggregate_regions(cells, regions="10kb")
    assert regions.n_vars == 91 and regions.var["n_sites"].sum() == cells.n_vars
    mdata = md.MuData({"mCG": regions})

    scvi.settings.seed = 0
    scvi.external.METHYLVI.setup_mudata(mdata, mc_layer="mc", cov_layer="cov", methylation_contexts=["mCG"])
    model = scvi.external.METHYLVI(mdata, n_hidden=32, n_latent=5)
    model.train(max_epochs=15, batch_size=64, accelerator="cpu", enable_progress_bar=False, plan_kwargs={"lr": 3e-3})
    latent = model.get_latent_representation()
    assert latent.shape == (300, 5) and np.isfinite(latent).all()

    mdata.obsm["X_methylvi"] = latent
    adata = mdata["mCG"]
    adata.obsm["X_methylvi"] = latent
    sc.pp.neighbors(adata, use_rep="X_methylvi", n_neighbors=15, random_state=0)
    sc.tl.umap(adata, random_state=0)
    sc.tl.leiden(adata, resolution=0.3, flavor="igraph", n_iterations=2, directed=False, random_state=0)
    assert adata.obsm["X_umap"].shape == (300, 2)
    assert adata.obsp["connectivities"].shape == (300, 300)

    truth = adata.obs["cell_type"].to_numpy()
    # measured over simulation seeds 0-3: ARI 1.00 and kNN accuracy >= 0.997 after 15 epochs (0.89 / 0.99 after 10)
    assert adjusted_rand_score(truth, adata.obs["leiden"]) > 0.8
    predicted = cross_val_predict(KNeighborsClassifier(n_neighbors=15), latent, truth, cv=5)
    assert (predicted == truth).mean() > 0.9
