"""Imputation of missing beta values with MethylGPT's masked-value (MLM) head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from anndata import AnnData
from mudata import MuData
from tqdm import tqdm

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_mod, doc_params
from epiformer._utils import record_params, select_modality, to_dense_float
from epiformer.tl._model_inputs import check_model, copy_data, model_on, prepare_inputs, provenance

if TYPE_CHECKING:
    import torch

    from epiformer.models import MethylGPT


@doc_params(mod=doc_mod, layer=doc_layer, copy=doc_copy)
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
    data
        AnnData of beta values (samples x CpGs), or a MuData holding one.
    model
        A MethylGPT, for example from :meth:`epiformer.models.MethylGPT.from_pretrained`. It is moved to
        `device` for the call and back afterwards.
    {layer}
    var_key
        Column of `var` holding the probe IDs; `None` uses `var_names`.
    {mod} Default ``"methyl"``.
    batch_size
        Samples per forward pass.
    device
        ``"auto"`` (CUDA, then MPS, then CPU), or any :class:`torch.device` specification.
    missing
        How vocabulary CpGs absent from the data enter: ``"mask"`` leaves them out (never attended, as in
        pretraining), ``"legacy"`` gives them value -2 and attends them, as the authors' tutorials do.
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
        `params` (checkpoint, model shape, coverage, `missing`, `layer`, `var_key`, `batch_size`, `device`,
        `epiformer_version`), `n_imputed` (values filled), `n_samples_imputed`, `n_left_missing` (missing
        values of CpGs outside the vocabulary) and `all_missing_samples`.
    """
    import torch

    from epiformer.models.methylgpt._module import check_missing_mode

    check_model(model, batch_size)
    check_missing_mode(missing)
    adata = select_modality(data, mod, default=Key.mod.methyl)
    inputs = prepare_inputs(adata, model, layer=layer, var_key=var_key)
    X = inputs.X
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32

    n_vocab, n_found = inputs.coverage["n_vocab"], inputs.coverage["n_found"]
    found_ids = torch.as_tensor(model.vocab.probe_ids)[torch.as_tensor(inputs.in_vocab)]
    # token positions (after <cls>) of the data's vocabulary CpGs
    positions = inputs.in_vocab if missing == "legacy" else np.arange(n_found)
    out = np.empty(adata.shape, dtype=dtype)
    n_imputed = n_samples = 0
    with (
        model_on(model, device) as dev,
        tqdm(total=adata.n_obs, desc="MethylGPT imputation", unit="sample", disable=not progress) as bar,
    ):
        for start, betas in inputs.chunks():
            stop = start + len(betas)
            out[start:stop] = to_dense_float(X[start:stop], dtype=dtype)
            holes = np.isnan(betas)
            todo = np.flatnonzero(holes.any(axis=1))
            bar.update(len(betas) - len(todo))
            for i in range(0, len(todo), batch_size):
                rows = todo[i : i + batch_size]
                masked = np.where(holes[rows], np.float32(model.mask_value), betas[rows])
                if missing == "mask":
                    ids, values, kpm = model.tokenize(torch.from_numpy(masked), cpg_ids=found_ids, missing="mask")
                else:
                    full = np.full((len(rows), n_vocab), np.nan, dtype=np.float32)
                    full[:, inputs.in_vocab] = masked
                    ids, values, kpm = model.tokenize(torch.from_numpy(full), missing="legacy")
                pred = model.mlm(model.encode(ids, values, key_padding_mask=kpm))[:, 1:]
                pred = pred[:, torch.as_tensor(positions, device=pred.device)].float().clamp(0.0, 1.0).cpu().numpy()
                block = out[start + rows][:, inputs.in_data]
                fill = holes[rows]
                block[fill] = pred[fill]
                out[(start + rows)[:, None], inputs.in_data[None, :]] = block
                n_imputed += int(fill.sum())
                n_samples += len(rows)
                bar.update(len(rows))

    params = provenance(
        model, inputs, missing=missing, layer=layer, var_key=var_key, batch_size=int(batch_size), device=str(dev)
    )
    data = copy_data(data) if copy else data
    adata = select_modality(data, mod, default=Key.mod.methyl)
    adata.layers[key_added] = out
    record_params(
        adata,
        Key.uns.imputed if key_added == Key.layers.imputed else key_added,
        params,
        n_imputed=n_imputed,
        n_samples_imputed=n_samples,
        n_left_missing=int(np.isnan(out).sum()),
        all_missing_samples=list(inputs.all_missing),
    )
    return data if copy else None
