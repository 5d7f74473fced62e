"""Sample embeddings from MethylGPT: the ``<cls>`` output of every sample."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from anndata import AnnData
from mudata import MuData
from tqdm import tqdm

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_mod, doc_params
from epiformer._utils import record_params, select_modality
from epiformer.tl._model_inputs import check_model, copy_data, model_on, prepare_inputs, provenance

if TYPE_CHECKING:
    import torch

    from epiformer.models import MethylGPT


@doc_params(mod=doc_mod, layer=doc_layer, copy=doc_copy)
def embed(
    data: AnnData | MuData,
    model: MethylGPT,
    *,
    layer: str | None = None,
    var_key: str | None = None,
    mod: str | None = None,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    missing: Literal["mask", "legacy"] = "mask",
    key_added: str = Key.obsm.methylgpt,
    progress: bool = True,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Embed every sample with MethylGPT: the ``<cls>`` token's output.

    The data are matched to the model's CpG vocabulary (probe IDs in `var_names` or `var[var_key]`); vocabulary
    CpGs absent from the data count as missing. The coverage is reported: none found raises, under 50 % warns
    with the number. Samples without any observed vocabulary CpG are reported (a warning, and
    `all_missing_samples` in `uns`) and still embedded. The model runs batched under
    :func:`torch.inference_mode` (bf16 autocast on CUDA); rows are read in chunks, so backed AnnData works.

    With ``missing="mask"`` the missing CpGs are left out of the sequence: they are never attention keys, as in
    the authors' pretraining, and without positional encodings this gives exactly the ``<cls>`` output of the
    key-masked full sequence (samples are batched by number of observed CpGs, so little is padded). With
    ``missing="legacy"`` every vocabulary CpG is a token and missing ones are attended with value -2, as in the
    authors' embedding tutorial and fine-tuning code: use it to reproduce published embeddings.

    Memory grows linearly with the number of CpGs: a full 49,156-CpG sample of the published d = 64 model takes
    about 200 MB and 40 s on two CPU cores (see ``benchmarks/bench_methylgpt.py``).

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
        ``"mask"`` (missing CpGs are not attended) or ``"legacy"`` (attended with value -2).
    key_added
        `obsm` key of the embedding.
    progress
        Show a progress bar.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes into the (methylation) AnnData

    `obsm[key_added]`
        float32 ``(n_obs, d_model)`` sample embeddings.
    `uns['methylgpt']` (or `uns[key_added]` for a custom `key_added`)
        `params`: `checkpoint` (path) and `checkpoint_sha256`, `d_model`, `n_layers`, `n_heads`, the coverage
        (`n_vocab`, `n_found`, `fraction_found`, `n_unused`), `missing`, `layer`, `var_key`, `batch_size`,
        `device`, `epiformer_version`; and `all_missing_samples`.
    """
    import torch

    from epiformer.models.methylgpt._module import check_missing_mode

    check_model(model, batch_size)
    check_missing_mode(missing)
    adata = select_modality(data, mod, default=Key.mod.methyl)
    inputs = prepare_inputs(adata, model, layer=layer, var_key=var_key)

    n_vocab = inputs.coverage["n_vocab"]
    probe_ids = torch.as_tensor(model.vocab.probe_ids)
    found_ids = probe_ids[torch.as_tensor(inputs.in_vocab)]
    emb = np.empty((adata.n_obs, model.d_model), dtype=np.float32)
    with (
        model_on(model, device) as dev,
        tqdm(total=adata.n_obs, desc="MethylGPT embedding", unit="sample", disable=not progress) as bar,
    ):
        for start, betas in inputs.chunks():
            # batch samples with similar numbers of observed CpGs, so compacted sequences carry little padding
            order = np.argsort(inputs.n_observed[start : start + len(betas)], kind="stable")
            for i in range(0, len(order), batch_size):
                rows = order[i : i + batch_size]
                if missing == "mask":
                    ids, values, kpm = model.tokenize(
                        torch.from_numpy(betas[rows]), cpg_ids=found_ids, missing="mask", compact=True
                    )
                else:
                    full = np.full((len(rows), n_vocab), np.nan, dtype=np.float32)
                    full[:, inputs.in_vocab] = betas[rows]
                    ids, values, kpm = model.tokenize(torch.from_numpy(full), missing="legacy")
                out = model.encode(ids, values, key_padding_mask=kpm, cls_only=True)
                emb[start + rows] = out.float().cpu().numpy()
                bar.update(len(rows))

    params = provenance(
        model, inputs, missing=missing, layer=layer, var_key=var_key, batch_size=int(batch_size), device=str(dev)
    )
    data = copy_data(data) if copy else data
    adata = select_modality(data, mod, default=Key.mod.methyl)
    adata.obsm[key_added] = emb
    uns_key = Key.uns.methylgpt if key_added == Key.obsm.methylgpt else key_added
    record_params(adata, uns_key, params, all_missing_samples=list(inputs.all_missing))
    return data if copy else None
