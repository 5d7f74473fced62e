"""Metrics of predictions against the truth, as published for methylation clocks and disease classifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_data, doc_mod_methyl, doc_params
from epiformer._logging import timed
from epiformer._metrics import classification_metrics, regression_metrics
from epiformer._targets import Task, resolve_target
from epiformer._utils import renamed_options, select_modality


@doc_params(data=doc_data, mod=doc_mod_methyl)
@renamed_options(adata="data")
def evaluate(
    data: AnnData | MuData,
    *,
    mod: str | None = None,
    truth: str,
    pred: str | list[str],
    split: str | None = "test",
    split_key: str = Key.obs.split,
    task: Task | str = "auto",
) -> pd.DataFrame:
    """Score one or more prediction columns against the truth, on the same samples.

    Parameters
    ----------
    {data}
    {mod}
    truth
        `obs` column with the true values or labels.
    pred
        `obs` column(s) written by :func:`epiformer.tl.predict`; several are scored side by side (a
        fine-tuned model next to its baseline). For classification, the probabilities are read from
        `obsm[f"{{pred}}_proba"]`.
    split
        Score only the samples whose `obs[split_key]` equals this (``"test"`` by default); `None` scores
        every sample with a truth value.
    split_key
        `obs` column holding the split (see :func:`epiformer.pp.split_samples`).
    task
        ``"auto"``, ``"regression"`` or ``"classification"``.

    Returns
    -------
    One row per prediction column: `n` and, for regression, `medae`, `mae`, `rmse`, `pearson`,
    `spearman`, `r2`; for classification, `accuracy`, `balanced_accuracy`, `auroc`.
    """
    with timed("ef.tl.evaluate"):
        adata = select_modality(data, mod, default=Key.mod.methyl)
        target = resolve_target(adata, truth, task=task)
        rows = target.rows
        if split is not None:
            if split_key not in adata.obs:
                msg = f"Did not find `adata.obs[{split_key!r}]`. Run `ef.pp.split_samples` first, or pass `split=None`."
                raise ValueError(msg)
            in_split = (adata.obs[split_key].iloc[rows] == split).to_numpy()
            if not in_split.any():
                msg = f"No sample with a {truth!r} value has `obs[{split_key!r}] == {split!r}`."
                raise ValueError(msg)
            rows, values = rows[in_split], target.values[in_split]
        else:
            values = target.values
        table = {}
        for key in [pred] if isinstance(pred, str) else pred:
            if key not in adata.obs:
                msg = f"Did not find `adata.obs[{key!r}]`. Run `ef.tl.predict(adata, predictor, key_added={key!r})` first."
                raise ValueError(msg)
            if target.task == "regression":
                scores = regression_metrics(values, adata.obs[key].to_numpy(dtype=float)[rows])
            else:
                proba = _probabilities(adata, key, target.classes)[rows]
                scores = classification_metrics(values, proba)
            table[key] = {"n": len(rows), **scores}
        return pd.DataFrame.from_dict(table, orient="index")


def _probabilities(adata: AnnData, key: str, classes: list[str]) -> np.ndarray:
    """Class probabilities of `key` in the order of `classes` (one-hot of the labels when none were stored)."""
    name = f"{key}_proba"
    if name in adata.obsm:
        frame = pd.DataFrame(adata.obsm[name], index=adata.obs_names)
        missing = set(classes) - set(map(str, frame.columns))
        if missing:
            msg = f"`obsm[{name!r}]` has no column for the classes {sorted(missing)}."
            raise ValueError(msg)
        frame.columns = frame.columns.astype(str)
        return frame[classes].to_numpy(dtype=float)
    labels = adata.obs[key].astype(str).to_numpy()
    return (labels[:, None] == np.asarray(classes)[None, :]).astype(float)
