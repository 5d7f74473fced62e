"""Imputation of missing beta values with MethylGPT's masked-value (MLM) head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_methylgpt_run, doc_params
from epiformer._logging import timed
from epiformer._utils import output, record_params

if TYPE_CHECKING:
    import torch

    from epiformer.models import MethylGPT


@doc_params(**doc_methylgpt_run)
def impute(
    data: AnnData | MuData,
    model: MethylGPT,
    *,
    layer: str | None = None,
    var_key: str | None = None,
    mod: str | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    missing: Literal["mask", "legacy"] = "mask",
    key_added: str = Key.layers.imputed,
    progress: bool = True,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Fill missing beta values with MethylGPT's prediction.

    Each missing value of a vocabulary CpG enters the model as a masked token (value -1, attended), as in the
    authors' pretraining and imputation guide; the MLM head's output at that position, clipped to [0, 1], fills
    it. Observed values are copied unchanged, bit for bit, and missing values of CpGs outside the vocabulary
    stay NaN. Samples without missing vocabulary CpGs are not run through the model.

    Parameters
    ----------
    {data}
    model
        A MethylGPT, for example from :meth:`epiformer.models.MethylGPT.from_pretrained`. It is moved to
        `device` for the call and back afterwards.
    {layer}
    {var_key}
    {mod}
    {model_run}
    {missing}
    key_added
        Layer written.
    progress
        Show a progress bar.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes into the (methylation) AnnData

    `layers[key_added]`
        The input matrix (dense, its float dtype; float32 otherwise) with missing values of vocabulary CpGs
        imputed.
    `uns[key_added]`
        `params` (checkpoint, `weights`: ``"checkpoint"``, ``"trained"`` or ``"random"``, model shape, coverage, `missing`, `layer`, `var_key`, `batch_size`, `device`,
        `epiformer_version`), `n_imputed` (values filled), `n_samples_imputed`, `n_left_missing` (missing
        values of CpGs outside the vocabulary), `all_missing_samples`, and `n_nonfinite` where predictions came
        out NaN (warned).
    """
    from epiformer.models import methylgpt

    with timed("ef.tl.impute") as written:
        _, inputs = methylgpt.checked_inputs(
            data, model, mod=mod, layer=layer, var_key=var_key, batch_size=batch_size, missing=missing
        )
        model.warn_if_random()
        out, counts, dev = methylgpt.impute(
            model, inputs, missing=missing, batch_size=int(batch_size), device=device, progress=progress
        )
        params = methylgpt.provenance(
            model, inputs, missing=missing, layer=layer, var_key=var_key, batch_size=int(batch_size), device=dev
        )
        data, adata = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
        adata.layers[key_added] = out
        uns_key = Key.uns.imputed if key_added == Key.layers.imputed else key_added
        record_params(
            adata,
            uns_key,
            params,
            outputs={f"layers[{key_added!r}]": counts.pop("n_nonfinite")},
            **counts,
            all_missing_samples=list(inputs.all_missing),
        )
        written += [f"layers[{key_added!r}]", f"uns[{uns_key!r}]"]
    return data if copy else None
