"""`ef.tl.predict`: apply a sample-level predictor (a fine-tuned model or a baseline) to every sample."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_data, doc_layer, doc_mod_methyl, doc_params
from epiformer._logging import timed
from epiformer._utils import output, record_params, renamed_options, select_modality

if TYPE_CHECKING:
    from epiformer.models import Predictor


@doc_params(data=doc_data, layer=doc_layer, copy=doc_copy, mod=doc_mod_methyl)
@renamed_options(adata="data")
def predict(
    data: AnnData | MuData,
    predictor: Predictor,
    *,
    layer: str | None = None,
    mod: str | None = None,
    key_added: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = True,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Apply a trained predictor (a fine-tuned model or a baseline) to every sample.

    Parameters
    ----------
    {data}
    predictor
        A model returned by :func:`epiformer.tl.finetune` or :func:`epiformer.tl.fit_baseline`.
    {layer}
    {mod}
    key_added
        `obs` column written; default ``f"{{predictor.target}}_pred"``.
    batch_size, device
        Samples per forward pass and where the network runs (``"auto"``: CUDA, then MPS, then CPU), for
        predictors that run one (a fine-tuned MethylGPT).
    progress
        Show a progress bar (predictors that run a network).
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes into the (methylation) AnnData

    `obs[key_added]`
        Predicted values (regression) or the most probable class (classification, categorical).
    `obsm[f"{{key_added}}_proba"]`
        Classification only: a DataFrame of class probabilities, one column per class.
    `uns[key_added]['params']`
        The predictor's settings.
    """
    with timed("ef.tl.predict") as written:
        from epiformer.models import Predictor

        if not isinstance(predictor, Predictor):
            msg = (
                f"`predictor` must be a trained predictor (from `ef.tl.finetune` or `ef.tl.fit_baseline`), got "
                f"{type(predictor).__name__}."
            )
            raise TypeError(msg)
        adata = select_modality(data, mod, default=Key.mod.methyl)
        options = {"batch_size": batch_size, "device": device, "progress": progress}
        values = np.asarray(predictor.predict_values(adata, layer=layer, **options))
        key = key_added or f"{predictor.target}_pred"
        data, adata = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
        if predictor.task == "regression":
            adata.obs[key] = values.astype(np.float64)
        else:
            classes = list(predictor.classes or [])
            adata.obs[key] = pd.Categorical(np.asarray(classes)[values.argmax(axis=1)], categories=classes)
            adata.obsm[f"{key}_proba"] = pd.DataFrame(values, index=adata.obs_names, columns=classes)
        record_params(adata, key, {**predictor.describe(), "layer": layer}, outputs={f"obs[{key!r}]": values})
        written += [f"obs[{key!r}]", f"uns[{key!r}]"]
    return data if copy else None
