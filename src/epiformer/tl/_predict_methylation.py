"""Predict methylation maps from expression: of samples, single cells or spatial spots (AnnData, MuData, SpatialData)."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_params
from epiformer._logging import timed
from epiformer._utils import output, record_params

if TYPE_CHECKING:
    from mudata import MuData
    from spatialdata import SpatialData

    from epiformer.models import ExpressionPredictor

#: The message when a SpatialData object comes in but spatialdata cannot be imported.
SPATIAL_EXTRA = (
    "Reading and writing SpatialData objects needs the spatialdata package: install the `spatial` extra, "
    "`pip install 'epiformer[spatial]'` (spatialdata and squidpy). "
    "Without it, predict on the table itself, an AnnData: `ef.tl.predict_methylation(sdata.tables['table'], model)`."
)


def is_spatialdata(data: Any) -> bool:
    """Whether `data` is a :class:`spatialdata.SpatialData`, told by its class (spatialdata is not imported)."""
    return any(
        cls.__name__ == "SpatialData" and cls.__module__.partition(".")[0] == "spatialdata"
        for cls in type(data).__mro__
    )


def _import_spatialdata():
    try:
        import spatialdata
    except ImportError as error:
        raise ImportError(SPATIAL_EXTRA) from error
    return spatialdata


def _check_table(sdata: SpatialData, table_key: str, key_added: str, out: Any) -> tuple[AnnData, dict[str, Any]]:
    """The table to predict from and its region / region_key / instance_key, checked before anything is written."""
    from spatialdata.models import TableModel

    if out is not None:
        msg = "`out` writes the predictions of an AnnData of cells or spots; a SpatialData gets a new table."
        raise ValueError(msg)
    if table_key not in sdata.tables:
        msg = f"Table {table_key!r} not found in the SpatialData; available tables: {list(sdata.tables)}. Pass `table_key=`."
        raise KeyError(msg)
    if key_added == table_key:
        msg = f"`key_added={key_added!r}` would replace the table the expression is read from; choose another name."
        raise ValueError(msg)
    table = sdata.tables[table_key]
    attrs = table.uns.get(TableModel.ATTRS_KEY)
    keys = (TableModel.REGION_KEY, TableModel.REGION_KEY_KEY, TableModel.INSTANCE_KEY)
    if not isinstance(attrs, dict) or any(attrs.get(k) is None for k in keys):
        msg = (
            f"Table {table_key!r} does not say which shapes or labels it annotates (no {TableModel.ATTRS_KEY!r} with "
            "region, region_key and instance_key in its uns): parse it with "
            "`spatialdata.models.TableModel.parse(table, region=..., region_key=..., instance_key=...)`."
        )
        raise ValueError(msg)
    missing = [attrs[k] for k in keys[1:] if attrs[k] not in table.obs]
    if missing:
        msg = f"Table {table_key!r} lacks the obs columns {missing} its {TableModel.ATTRS_KEY!r} name."
        raise KeyError(msg)
    return table, {k: attrs[k] for k in keys}


def _predict_spatialdata(
    sdata: SpatialData,
    model: ExpressionPredictor,
    *,
    table_key: str,
    key_added: str,
    out: Any,
    copy: bool,
    params: dict[str, Any],
    options: dict[str, Any],
    cpgs: Sequence[str] | None,
    layer: str | None,
) -> SpatialData | None:
    """Predict from `sdata.tables[table_key]` and write the betas as the new table `sdata.tables[key_added]`."""
    import numpy as np
    import pandas as pd
    from spatialdata import SpatialData as SpatialDataType
    from spatialdata.models import TableModel

    from epiformer.models.expression_predictor import predict_expression_only

    table, attrs = _check_table(sdata, table_key, key_added, out)
    with timed("ef.tl.predict_methylation") as written:
        betas, coords, n_missing, n_nonfinite = predict_expression_only(table, model, cpgs=cpgs, layer=layer, **options)
        obs = table.obs[[attrs[TableModel.REGION_KEY_KEY], attrs[TableModel.INSTANCE_KEY]]].copy()
        var = pd.DataFrame(
            {"chrom": coords["chrom"].to_numpy(), "pos": coords["pos"].to_numpy()}, index=coords.index.copy()
        )
        maps = AnnData(X=np.ascontiguousarray(betas.to_numpy(), dtype=np.float32), obs=obs, var=var)
        record_params(
            maps,
            key_added,
            {**params, "table_key": table_key},
            outputs={"X": n_nonfinite},
            n_genes_missing=n_missing,
        )
        maps = TableModel.parse(
            maps,
            region=attrs[TableModel.REGION_KEY],
            region_key=attrs[TableModel.REGION_KEY_KEY],
            instance_key=attrs[TableModel.INSTANCE_KEY],
        )
        if copy:
            sdata = SpatialDataType(
                images=dict(sdata.images),
                labels=dict(sdata.labels),
                points=dict(sdata.points),
                shapes=dict(sdata.shapes),
                tables={name: t.copy() for name, t in sdata.tables.items()},
                attrs=dict(sdata.attrs),
            )
        sdata.tables[key_added] = maps
        written.append(f"tables['{key_added}']")
    return sdata if copy else None


@doc_params(layer=doc_layer, copy=doc_copy)
def predict_methylation(
    data: AnnData | MuData | SpatialData,
    model: ExpressionPredictor,
    *,
    cpgs: Sequence[str] | None = None,
    layer: str | None = None,
    mod: str | None = None,
    table_key: str = "table",
    key_added: str = Key.layers.predicted_methylation,
    cpg_batch: int = 256,
    sample_batch: int = 256,
    device: str = "auto",
    progress: bool = True,
    out: str | PathLike | None = None,
    copy: bool = False,
) -> AnnData | MuData | SpatialData | None:
    """Predict methylation of the model's CpGs from expression: of samples, single cells or spatial spots.

    The expression must be log expression on the scale of the model's training data (for
    :func:`epiformer.datasets.synthetic_multiome`, ``log1p`` of counts per 10,000, i.e.
    :func:`scanpy.pp.normalize_total` with ``target_sum=1e4`` then :func:`scanpy.pp.log1p`). Genes are matched
    by `var_names`; model genes missing from the data are reported and set to 0 after scaling. CpG sequences
    and distances come from the model, so expression-only data needs nothing else.

    Cells or spots are streamed `sample_batch` at a time: only one chunk of the expression (a dense, sparse or
    backed matrix) is made dense, for the model's genes, and predicted in blocks of `cpg_batch` CpGs, so any
    number of rows and CpGs fits. The results equal those of one pass over the whole matrix with the same batches.
    For results too large for memory, pass `out` (AnnData only): they are written chunk by chunk to a new
    AnnData zarr store instead of `obsm`.

    A :class:`spatialdata.SpatialData` (Visium spots, Visium HD bins, Xenium cells...) is read from its table
    `table_key`, and the map is written as a new table `key_added` that annotates the same shapes or labels as the
    input table (the same `region`, `region_key` and `instance_key`, taken from that table, and the same region and
    instance columns in `obs`), so that spatialdata-plot or squidpy draw any CpG over the image, e.g.
    ``sdata.pl.render_shapes("spots", color="cg00000001", table_name="predicted_methylation")``. This needs the
    ``spatial`` extra (``pip install 'epiformer[spatial]'``).

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` (predictions are written into its methylation modality), an
        expression-only :class:`~anndata.AnnData` of cells or spots, or a :class:`~spatialdata.SpatialData`
        whose table `table_key` holds the expression.
    model
        A trained :class:`epiformer.models.ExpressionPredictor`.
    cpgs
        Names of the CpGs to predict; default all the model's CpGs (with a MuData, those of its methylation
        modality that the model knows).
    {layer}
        Of the expression.
    mod
        With a MuData, the expression modality (default: the model's).
    table_key
        With a SpatialData, the table of expression to predict from (it must annotate a region: parsed by
        :meth:`spatialdata.models.TableModel.parse`); ignored otherwise.
    key_added
        Layer (MuData), `obsm` key (AnnData) or new table (SpatialData) written, and the `uns` key of the settings.
    cpg_batch
        CpGs per block.
    sample_batch
        Samples, cells or spots per block: also the chunk of rows read, made dense and predicted at a time.
    device
        Where to compute (``"auto"``: CUDA, then MPS, then the CPU).
    progress
        Show a progress bar (over rows).
    out
        With an AnnData, a new path (e.g. ``"betas.zarr"``, refused if it exists) of an AnnData zarr store that
        receives the predictions instead of `obsm`: its `X` is the cells or spots x CpGs betas (float32, zarr
        chunks of `sample_batch` rows), `obs` the row names, `var` the CpGs' `chrom` and `pos`. Read it with
        :func:`anndata.read_zarr`, or slice it without loading it: ``zarr.open_group(out, mode="r")["X"][:100]``.
        The store is removed if the prediction fails.
    {copy}

    Returns
    -------
    `None`, or with ``copy=True`` the modified copy. With a MuData, writes `mod['methyl'].layers[key_added]`
    (float32 betas, NaN for CpGs the model does not know or samples without expression) and
    `mod['methyl'].uns[key_added]`. With an AnnData, writes `obsm[key_added]` (a DataFrame of float32 betas,
    cells or spots x CpGs, columns named by CpG; copy a column into `obs` to draw it with
    :func:`squidpy.pl.spatial_scatter`) and `uns[key_added]` with `params`, `n_genes_missing` and `cpgs` (the CpGs'
    `chrom` and `pos`). With `out`, no `obsm` entry is written (an earlier run's `obsm[key_added]` is removed) and
    `uns[key_added]['path']` records the store.
    Nothing else of the data (e.g. `obsm['spatial']`, `uns['spatial']`) is changed.
    """
    spatial = is_spatialdata(data)
    if spatial:
        _import_spatialdata()  # before anything else: the clear message of a missing extra
    from epiformer.models.expression_predictor import check_predictor, predict_expression_only, predict_paired

    check_predictor(model)
    options: dict[str, Any] = {
        "cpg_batch": cpg_batch,
        "sample_batch": sample_batch,
        "device": device,
        "progress": progress,
    }
    params = {"architecture": model.architecture, "layer": layer, "checkpoint": model.checkpoint.get("path")}
    if spatial:
        return _predict_spatialdata(
            data,
            model,
            table_key=table_key,
            key_added=key_added,
            out=out,
            copy=copy,
            params=params,
            options=options,
            cpgs=cpgs,
            layer=layer,
        )
    with timed("ef.tl.predict_methylation") as written:
        if isinstance(data, AnnData):
            betas, coords, n_missing, n_nonfinite = predict_expression_only(
                data, model, cpgs=cpgs, layer=layer, out=out, **options
            )
            data, target = output(data, copy=copy, mod=None, default=Key.mod.rna)
            extra: dict[str, Any] = {"n_genes_missing": n_missing, "cpgs": coords}
            if betas is None:
                where = f"zarr store {str(out)!r}"
                extra["path"] = str(Path(out).resolve())
                if target.obsm.pop(key_added, None) is not None:  # an earlier run's map, which the store replaces
                    written.append(f"removed the earlier obsm['{key_added}']")
            else:
                where = f"obsm[{key_added!r}]"
                target.obsm[key_added] = betas
                written.append(f"obsm['{key_added}']")
            record_params(
                target, key_added, {**params, "out": extra.get("path")}, outputs={where: n_nonfinite}, **extra
            )
            written.append(f"uns['{key_added}']")
            if betas is None:
                written.append(extra["path"])
        else:
            if out is not None:
                msg = "`out` writes the predictions of an AnnData of cells or spots; a MuData gets a layer."
                raise ValueError(msg)
            full, extra = predict_paired(data, model, cpgs=cpgs, layer=layer, mod=mod, **options)
            data, target = output(data, copy=copy, mod=model.methyl_mod, default=Key.mod.methyl)
            target.layers[key_added] = full
            n_nonfinite = extra.pop("n_nonfinite")  # of the predicted CpGs and samples; the rest is NaN by design
            record_params(
                target,
                key_added,
                {**params, "rna_mod": extra.pop("rna_mod")},
                outputs={f"layers[{key_added!r}]": n_nonfinite},
                **extra,
            )
            written += [
                f"mod['{model.methyl_mod}'].layers['{key_added}']",
                f"mod['{model.methyl_mod}'].uns['{key_added}']",
            ]
    return data if copy else None
