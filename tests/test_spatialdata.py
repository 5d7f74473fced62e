"""`ef.tl.predict_methylation` on SpatialData: the table in, the methylation map out as a new table on the same region."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from anndata import AnnData

import epiformer as ef

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------- without spatialdata (any Python)


class SpatialData:
    """Stands for a `spatialdata.SpatialData`: the same class name and module, nothing else."""

    __module__ = "spatialdata._core.spatialdata"

    def __init__(self):
        self.tables = {"table": AnnData(np.ones((2, 2), dtype=np.float32))}


def test_missing_spatialdata_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "spatialdata", None)  # `import spatialdata` fails, as without the extra
    fake = SpatialData()
    with pytest.raises(ImportError, match=r"pip install 'epiformer\[spatial\]'.*predict on the table itself"):
        ef.tl.predict_methylation(fake, None)
    assert list(fake.tables) == ["table"]


def test_import_epiformer_does_not_import_spatialdata():
    import subprocess

    code = "import sys, epiformer; epiformer.tl.predict_methylation; print('spatialdata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------- with spatialdata

VISIUM = ef.datasets.visium_small()


@pytest.fixture(scope="module")
def model():
    """A predictor trained one epoch on synthetic samples whose genes are named like the Visium genes."""
    pytest.importorskip("spatialdata")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata = ef.datasets.synthetic_multiome(24, n_cpgs=60, gene_names=VISIUM.var_names, random_state=0)
        ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=50)
        ef.pp.cpg_gene_distances(mdata)
        ef.pp.split_pairs(mdata, random_state=0)
    torch.manual_seed(0)
    return ef.tl.fit_expression_predictor(mdata, max_epochs=1, progress=False, accelerator="cpu")


def _log_normalised(adata: AnnData) -> AnnData:
    adata = adata.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return adata


def _visium():
    """Visium: spots as circles (`spots`), the table `table` with region key `region` and instance key `spot_id`."""
    from geopandas import GeoDataFrame
    from shapely.geometry import Point
    from spatialdata import SpatialData as SData
    from spatialdata.models import ShapesModel, TableModel

    xy = VISIUM.obsm["spatial"]
    circles = GeoDataFrame({"geometry": [Point(x, y) for x, y in xy], "radius": np.full(len(xy), 55.0)})
    circles.index = np.arange(len(xy))
    table = _log_normalised(VISIUM)
    del table.uns["spatial"]
    table.obs["region"] = pd.Categorical(["spots"] * table.n_obs)
    table.obs["spot_id"] = np.arange(table.n_obs)
    table = TableModel.parse(table, region="spots", region_key="region", instance_key="spot_id")
    return SData(shapes={"spots": ShapesModel.parse(circles)}, tables={"table": table}), "table", "spots"


def _visium_hd():
    """Visium HD: 8 um bins as polygons, table `square_008um`, keys `bin_region` / `bin_id` (as spatialdata-io names them)."""
    from geopandas import GeoDataFrame
    from shapely.geometry import box
    from spatialdata import SpatialData as SData
    from spatialdata.models import ShapesModel, TableModel

    bins = ef.datasets.synthetic_spatial(8, 9, gene_names=VISIUM.var_names, random_state=1)
    xy = bins.obsm["spatial"] * 8.0
    ids = np.arange(100, 100 + bins.n_obs)  # instance ids that are not row numbers
    squares = GeoDataFrame({"geometry": [box(x, y, x + 8.0, y + 8.0) for x, y in xy]}, index=ids)
    table = _log_normalised(bins)
    region = "sample_square_008um"
    table.obs["bin_region"] = pd.Categorical([region] * table.n_obs)
    table.obs["bin_id"] = ids
    table = TableModel.parse(table, region=region, region_key="bin_region", instance_key="bin_id")
    return SData(shapes={region: ShapesModel.parse(squares)}, tables={"square_008um": table}), "square_008um", region


def _xenium():
    """Xenium: cells as a label image (`cell_labels`), table `table`, keys `region` / `cell_id`."""
    from spatialdata import SpatialData as SData
    from spatialdata.models import Labels2DModel, TableModel

    cells = ef.datasets.synthetic_spatial(5, 6, gene_names=VISIUM.var_names, random_state=2)
    labels = np.zeros((60, 50), dtype=np.int32)
    for i in range(cells.n_obs):  # cell i + 1 is a 10 x 10 square of the label image
        r, c = divmod(i, 5)
        labels[r * 10 : (r + 1) * 10, c * 10 : (c + 1) * 10] = i + 1
    table = _log_normalised(cells)
    table.obs["region"] = pd.Categorical(["cell_labels"] * table.n_obs)
    table.obs["cell_id"] = np.arange(1, cells.n_obs + 1)
    table = TableModel.parse(table, region="cell_labels", region_key="region", instance_key="cell_id")
    element = Labels2DModel.parse(labels, dims=("y", "x"))
    return SData(labels={"cell_labels": element}, tables={"table": table}), "table", "cell_labels"


LAYOUTS = {"visium": _visium, "visium_hd": _visium_hd, "xenium": _xenium}


def _snapshot(table: AnnData) -> dict:
    return {
        "X": np.array(table.X.toarray() if hasattr(table.X, "toarray") else table.X, copy=True),
        "obs": table.obs.copy(),
        "var": table.var.copy(),
        "attrs": dict(table.uns.get("spatialdata_attrs", {})),
        "keys": {slot: sorted(getattr(table, slot), key=str) for slot in ("obsm", "layers", "uns", "obsp")},
    }


def _unchanged(table: AnnData, before: dict) -> None:
    after = _snapshot(table)
    np.testing.assert_array_equal(after["X"], before["X"])
    pd.testing.assert_frame_equal(after["obs"], before["obs"])
    pd.testing.assert_frame_equal(after["var"], before["var"])
    assert after["attrs"] == before["attrs"] and after["keys"] == before["keys"]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_map_is_a_table_on_the_same_region(model, layout):
    pytest.importorskip("spatialdata")
    from spatialdata import get_values
    from spatialdata.models import TableModel

    sdata, table_key, element = LAYOUTS[layout]()
    table = sdata.tables[table_key]
    before = _snapshot(table)
    attrs = dict(table.uns["spatialdata_attrs"])
    region_key, instance_key = attrs["region_key"], attrs["instance_key"]

    assert ef.tl.predict_methylation(sdata, model, table_key=table_key, progress=False, device="cpu") is None
    maps = sdata.tables["predicted_methylation"]
    TableModel().validate(maps)
    assert maps.shape == (table.n_obs, len(model.cpgs)) and maps.X.dtype == np.float32
    assert list(maps.var_names) == list(model.cpgs)
    assert list(maps.var.columns) == ["chrom", "pos"]
    assert list(maps.obs_names) == list(table.obs_names)
    assert maps.uns["spatialdata_attrs"] == attrs
    pd.testing.assert_frame_equal(maps.obs[[region_key, instance_key]], table.obs[[region_key, instance_key]])
    assert maps.uns["predicted_methylation"]["params"]["table_key"] == table_key
    assert maps.uns["predicted_methylation"]["n_genes_missing"] == 0

    # the same values as on the plain AnnData table
    plain = ef.tl.predict_methylation(table, model, progress=False, device="cpu", copy=True)
    np.testing.assert_array_equal(maps.X, plain.obsm["predicted_methylation"].to_numpy())
    _unchanged(table, before)
    assert set(sdata.tables) == {table_key, "predicted_methylation"}

    # spatialdata joins the new table to the element: what spatialdata-plot and squidpy draw from
    cpg = model.cpgs[0]
    values = get_values(value_key=cpg, sdata=sdata, element_name=element, table_name="predicted_methylation")
    np.testing.assert_array_equal(np.sort(values[cpg].to_numpy()), np.sort(maps[:, cpg].X.ravel()))


def test_copy_and_key_added(model):
    pytest.importorskip("spatialdata")
    sdata, table_key, _ = _visium()
    before = _snapshot(sdata.tables[table_key])
    out = ef.tl.predict_methylation(sdata, model, key_added="betas", progress=False, device="cpu", copy=True)
    assert out is not sdata and type(out) is type(sdata)
    assert set(out.tables) == {"table", "betas"} and set(sdata.tables) == {"table"}
    assert out.tables["table"] is not sdata.tables["table"]
    assert "spots" in out.shapes
    assert out.tables["betas"].uns["betas"]["params"]["table_key"] == "table"
    _unchanged(sdata.tables[table_key], before)


def test_layer_of_the_table(model):
    pytest.importorskip("spatialdata")
    sdata, table_key, _ = _visium()
    table = sdata.tables[table_key]
    table.layers["lognorm"] = table.X.copy()
    table.X = table.X * 0  # prediction must read the layer, not X
    ef.tl.predict_methylation(sdata, model, layer="lognorm", progress=False, device="cpu")
    expected = ef.tl.predict_methylation(table, model, layer="lognorm", progress=False, device="cpu", copy=True)
    np.testing.assert_array_equal(sdata.tables["predicted_methylation"].X, expected.obsm["predicted_methylation"])


@pytest.mark.parametrize(
    ("change", "options", "error", "match"),
    [
        (None, {"table_key": "no_such_table"}, KeyError, "no_such_table.*available tables"),
        (None, {"layer": "no_such_layer"}, KeyError, "no_such_layer"),
        (None, {"key_added": "table"}, ValueError, "would replace the table"),
        (None, {"out": "betas.zarr"}, ValueError, "new table"),
        ("no_attrs", {}, ValueError, "TableModel.parse"),
    ],
)
def test_failed_call_changes_nothing(model, change, options, error, match):
    pytest.importorskip("spatialdata")
    sdata, table_key, _ = _visium()
    table = sdata.tables[table_key]
    if change == "no_attrs":
        del table.uns["spatialdata_attrs"]
    before = _snapshot(table)
    with pytest.raises(error, match=match):
        ef.tl.predict_methylation(sdata, model, progress=False, device="cpu", **options)
    assert set(sdata.tables) == {table_key}
    _unchanged(table, before)
