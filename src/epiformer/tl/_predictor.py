"""What every sample-level predictor (fine-tuned model or baseline) offers, and the tool that applies one."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._docs import doc_adata, doc_copy, doc_layer, doc_params
from epiformer._utils import record_params
from epiformer.tl._targets import Task


class Predictor(ABC):
    """A trained model that predicts one `obs` column of a samples x CpGs methylation matrix.

    Subclasses set `target`, `task` and `classes` and implement :meth:`predict_values`;
    :func:`epiformer.tl.predict` writes the result into the AnnData.
    """

    target: str
    """The `obs` column the model was trained on."""
    task: Task
    """``"regression"`` or ``"classification"``."""
    classes: list[str] | None
    """Class labels in output order (classification) or `None`."""

    @abstractmethod
    def predict_values(self, adata: AnnData, *, layer: str | None = None) -> np.ndarray:
        """Predictions for every sample: values ``(n_obs,)`` or class probabilities ``(n_obs, n_classes)``."""

    def describe(self) -> dict:
        """Settings recorded in `uns` next to the predictions."""
        return {"predictor": type(self).__name__, "target": self.target, "task": self.task}


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
