"""`ef.tl.predict`: apply a sample-level predictor (a fine-tuned model or a baseline) to every sample."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._docs import doc_adata, doc_copy, doc_layer, doc_params
from epiformer._utils import record_params

if TYPE_CHECKING:
    from epiformer.models import Predictor


@doc_params(adata=doc_adata, layer=doc_layer, copy=doc_copy)
def predict(
    adata: AnnData,
    predictor: Predictor,
    *,
    layer: str | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Apply a trained predictor (a fine-tuned model or a baseline) to every sample.

    Parameters
    ----------
    {adata}
    predictor
        A model returned by :func:`epiformer.tl.finetune` or :func:`epiformer.tl.fit_baseline`.
    {layer}
    key_added
        `obs` column written; default ``f"{{predictor.target}}_pred"``.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes

    `obs[key_added]`
        Predicted values (regression) or the most probable class (classification, categorical).
    `obsm[f"{{key_added}}_proba"]`
        Classification only: a DataFrame of class probabilities, one column per class.
    `uns[key_added]['params']`
        The predictor's settings.
    """
    values = np.asarray(predictor.predict_values(adata, layer=layer))
    key = key_added or f"{predictor.target}_pred"
    adata = adata.copy() if copy else adata
    if predictor.task == "regression":
        adata.obs[key] = values.astype(np.float64)
    else:
        classes = list(predictor.classes or [])
        adata.obs[key] = pd.Categorical(np.asarray(classes)[values.argmax(axis=1)], categories=classes)
        adata.obsm[f"{key}_proba"] = pd.DataFrame(values, index=adata.obs_names, columns=classes)
    record_params(adata, key, {**predictor.describe(), "layer": layer})
    return adata if copy else None
