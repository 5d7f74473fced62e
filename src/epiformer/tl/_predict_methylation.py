"""Predict methylation maps from expression: of samples, single cells or spatial spots."""

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

    from epiformer.models import ExpressionPredictor


@doc_params(layer=doc_layer, copy=doc_copy)
def predict_methylation(
    data: AnnData | MuData,
    model: ExpressionPredictor,
    *,
    cpgs: Sequence[str] | None = None,
    layer: str | None = None,
    mod: str | None = None,
    key_added: str = Key.layers.predicted_methylation,
    cpg_batch: int = 256,
    sample_batch: int = 256,
    device: str = "auto",
    progress: bool = True,
    out: str | PathLike | None = None,
    copy: bool = False,
) -> AnnData | MuData | None:
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

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` (predictions are written into its methylation modality) or an
        expression-only :class:`~anndata.AnnData` of cells or spots.
    model
        A trained :class:`epiformer.models.ExpressionPredictor`.
    cpgs
        Names of the CpGs to predict; default all the model's CpGs (with a MuData, those of its methylation
        modality that the model knows).
    {layer}
        Of the expression.
    mod
        With a MuData, the expression modality (default: the model's).
    key_added
        Layer (MuData) or `obsm` key (AnnData) written, and the `uns` key of the settings.
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
    :func:`scanpy.pl.spatial`) and `uns[key_added]` with `params`, `n_genes_missing` and `cpgs` (the CpGs'
    `chrom` and `pos`). With `out`, no `obsm` entry is written and `uns[key_added]['path']` records the store.
    Nothing else of the data (e.g. `obsm['spatial']`, `uns['spatial']`) is changed.
    """
    from epiformer.models.expression_predictor import check_predictor, predict_expression_only, predict_paired

    check_predictor(model)
    options: dict[str, Any] = {
        "cpg_batch": cpg_batch,
        "sample_batch": sample_batch,
        "device": device,
        "progress": progress,
    }
    params = {"architecture": model.architecture, "layer": layer, "checkpoint": model.checkpoint.get("path")}
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
