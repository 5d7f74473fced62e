"""Sample embeddings from MethylGPT: the ``<cls>`` output of every sample, or the mean of its CpG tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_methylgpt_run, doc_params
from epiformer._logging import timed
from epiformer._utils import output, record_params
from epiformer._validation import check_choice

if TYPE_CHECKING:
    import torch

    from epiformer.models import MethylGPT


@doc_params(**doc_methylgpt_run)
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
    readout: Literal["cls", "mean"] = "cls",
    key_added: str = Key.obsm.methylgpt,
    progress: bool = True,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Embed every sample with MethylGPT: the ``<cls>`` token's output (or the mean of the CpG tokens' outputs).

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
    readout
        ``"cls"``: the ``<cls>`` token's output, the published sample embedding. ``"mean"``: the mean output of
        the sample's observed CpG tokens (a sample without any gets zeros).
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
        `params`: `checkpoint` (path), `checkpoint_sha256` and `weights` (``"checkpoint"``, ``"trained"`` or
        ``"random"``: never loaded nor trained, which is warned once per model), `d_model`, `n_layers`, `n_heads`, the coverage
        (`n_vocab`, `n_found`, `fraction_found`, `n_unused`), `missing`, `readout`, `layer`, `var_key`, `batch_size`,
        `device`, `epiformer_version`; `all_missing_samples`; and `n_nonfinite` where the embedding holds NaN or
        infinite values (warned).
    """
    from epiformer.models import methylgpt

    check_choice(readout, ("cls", "mean"), name="readout")
    with timed("ef.tl.embed") as written:
        _, inputs = methylgpt.checked_inputs(
            data, model, mod=mod, layer=layer, var_key=var_key, batch_size=batch_size, missing=missing
        )
        model.warn_if_random()
        emb, dev = methylgpt.embed(
            model,
            inputs,
            missing=missing,
            batch_size=int(batch_size),
            device=device,
            progress=progress,
            readout=readout,
        )
        params = methylgpt.provenance(
            model,
            inputs,
            missing=missing,
            readout=readout,
            layer=layer,
            var_key=var_key,
            batch_size=int(batch_size),
            device=dev,
        )
        data, adata = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
        adata.obsm[key_added] = emb
        uns_key = Key.uns.methylgpt if key_added == Key.obsm.methylgpt else key_added
        record_params(
            adata,
            uns_key,
            params,
            outputs={f"obsm[{key_added!r}]": emb},
            all_missing_samples=list(inputs.all_missing),
        )
        written += [f"obsm[{key_added!r}]", f"uns[{uns_key!r}]"]
    return data if copy else None
