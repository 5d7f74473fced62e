"""`ef.tl.attention`: the attention each CpG receives in a MethylGPT encoder layer, per sample and per group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats
from tqdm import tqdm

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_layer, doc_params
from epiformer._utils import record_params
from epiformer.models.methylgpt._module import check_missing_mode
from epiformer.tl._model_inputs import ModelInputs, check_model, copy_data, model_on, prepare_inputs, provenance

if TYPE_CHECKING:
    import torch

    from epiformer.models import MethylGPT

#: Attention scores held at once by :func:`received_attention` (floats).
CHUNK_SCORES = 1 << 24


def received_attention(
    q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None, *, chunk_scores: int = CHUNK_SCORES
) -> torch.Tensor:
    """Softmax attention received by every key, averaged over the real queries and the heads.

    ``softmax(q k^T / sqrt(head_dim))`` over the keys that are not masked, computed for chunks of queries so
    that at most `chunk_scores` scores exist at once (never a ``seq x seq`` matrix per sample); masked tokens
    are neither keys nor counted queries.

    Parameters
    ----------
    q, k
        ``(batch, heads, seq, head_dim)``.
    key_padding_mask
        ``(batch, seq)``, `True` for tokens that are not attended; `None` when all are.
    chunk_scores
        Scores held at once.

    Returns
    -------
    ``(batch, seq)`` float32: for each key, the mean over queries and heads of its attention probability
    (each row sums to 1 over the keys).
    """
    import torch

    b, h, s, d = q.shape
    scale = d**-0.5
    keep = torch.ones(b, s, dtype=torch.bool, device=q.device) if key_padding_mask is None else ~key_padding_mask
    total = torch.zeros(b, s, dtype=torch.float32, device=q.device)
    step = max(1, chunk_scores // max(b * h * s, 1))
    for start in range(0, s, step):
        scores = (q[:, :, start : start + step].float() * scale) @ k.float().transpose(-2, -1)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1) * keep[:, None, start : start + step, None]  # real queries only
        total += probs.sum(dim=(1, 2))
    return total / (h * keep.sum(dim=1, keepdim=True).clamp(min=1))


def _per_sample(
    model: MethylGPT, inputs: ModelInputs, *, layer_index: int, missing: str, batch_size: int, progress: bool
) -> np.ndarray:
    """``(n_obs, n_found)``: attention received by each vocabulary CpG of the data in each sample (0 if missing)."""
    import torch

    n_found = len(inputs.in_data)
    out = np.zeros((inputs.X.shape[0], n_found), dtype=np.float32)
    # token id -> column of `out`
    column = np.full(len(model.vocab), -1, dtype=np.int64)
    column[np.asarray(model.vocab.probe_ids)[inputs.in_vocab]] = np.arange(n_found)
    column = torch.as_tensor(column)
    found_ids = torch.as_tensor(np.asarray(model.vocab.probe_ids)[inputs.in_vocab])
    attention = model.transformer_encoder.layers[layer_index].self_attn
    with tqdm(total=inputs.X.shape[0], desc="MethylGPT attention", unit="sample", disable=not progress) as bar:
        for start, betas in inputs.chunks():
            for i in range(0, len(betas), batch_size):
                rows = np.arange(i, min(i + batch_size, len(betas)))
                ids, values, kpm = model.tokenize(
                    torch.from_numpy(betas[rows]), cpg_ids=found_ids, missing=missing, compact=missing == "mask"
                )
                tokens, _ = model.embed_tokens(ids, values)
                hidden = model.transform(tokens, key_padding_mask=kpm, n_layers=layer_index)
                q, k, _ = attention.project(hidden)
                received = received_attention(q, k, kpm).cpu()
                cols = column[ids.cpu()]
                real = cols >= 0  # drops <cls> and <pad>
                sample = torch.as_tensor(start + rows)[:, None].expand_as(cols)
                out[sample[real].numpy(), cols[real].numpy()] = received[real].numpy()
                bar.update(len(rows))
    return out


def _group_table(per_sample: np.ndarray, labels: pd.Categorical, cpgs: pd.Index, n_top: int) -> pd.DataFrame:
    """Top CpGs per group by mean attention received, with a one-vs-rest Mann-Whitney test (BH-adjusted)."""
    frames = []
    for group in labels.categories:
        inside = np.asarray(labels == group)
        score = per_sample[inside].mean(axis=0)
        rest = per_sample[~inside].mean(axis=0) if (~inside).any() else np.full_like(score, np.nan)
        if inside.sum() and (~inside).sum():
            pval = stats.mannwhitneyu(per_sample[inside], per_sample[~inside], axis=0).pvalue
            pval = np.where(np.isnan(pval), 1.0, pval)
            pval_adj = stats.false_discovery_control(pval)
        else:
            pval = pval_adj = np.full_like(score, np.nan, dtype=np.float64)
        top = np.argsort(-score, kind="stable")[:n_top]
        frames.append(
            pd.DataFrame(
                {
                    "group": str(group),
                    "rank": np.arange(1, len(top) + 1),
                    "cpg": cpgs[top],
                    "score": score[top],
                    "score_rest": rest[top],
                    "pval": pval[top],
                    "pval_adj": pval_adj[top],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@doc_params(layer=doc_layer, copy=doc_copy)
def attention(
    adata: AnnData,
    model: MethylGPT,
    *,
    groupby: str | None = None,
    encoder_layer: int = -1,
    layer: str | None = None,
    var_key: str | None = None,
    missing: str = "mask",
    n_top: int = 20,
    batch_size: int = 8,
    device: str | torch.device = "auto",
    progress: bool = True,
    key_added: str = Key.uns.attention,
    copy: bool = False,
) -> AnnData | None:
    """Attention received by each CpG in a MethylGPT encoder layer, averaged per group of samples.

    For every sample, the chosen layer's softmax attention ``softmax(q k^T / sqrt(head_dim))`` is computed over
    the tokens the model attends (missing CpGs are not keys with ``missing="mask"``), a chunk of queries at a
    time, so a 49,157-token sample never holds a ``seq x seq`` matrix. The attention a CpG receives is its
    attention probability averaged over all queries and heads (a sample's values sum to 1 over its tokens, the
    ``<cls>`` token included); missing CpGs receive 0. Those values are averaged over the samples of each group.

    The published function (``get_attention_map``) skips the softmax and the ``1/sqrt(d)`` scaling and
    overwrites its token ids; this one does neither.

    Parameters
    ----------
    adata
        Samples x CpGs of beta values (backed AnnData works).
    model
        A :class:`~epiformer.models.MethylGPT`.
    groupby
        Categorical `obs` column; `None` puts every sample in one group, ``"all"``.
    encoder_layer
        Index of the encoder layer whose attention is read (negative counts from the last).
    {layer}
    var_key
        `var` column holding the probe IDs, if not `var_names`.
    missing
        ``"mask"`` (missing CpGs are not attended, as in pretraining) or ``"legacy"`` (attended with value -2).
    n_top
        CpGs listed per group.
    batch_size
        Samples per forward pass.
    device
        ``"auto"`` (CUDA, then MPS, then CPU) or any :class:`torch.device` specification.
    progress
        Show a progress bar.
    key_added
        Key of the outputs in `varm` and `uns`.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes

    - `varm[key_added]`: DataFrame (CpGs x groups) of the mean attention received, NaN for CpGs outside the
      model's vocabulary;
    - `uns[key_added]`: `params` (checkpoint, layer, coverage, ...), `groups`, and `top`, a DataFrame with the
      `n_top` CpGs of each group ranked by attention received (`group`, `rank`, `cpg`, `score`, `score_rest`
      (mean over the other samples), `pval` and `pval_adj`: two-sided Mann-Whitney U test of the group against
      the other samples, Benjamini-Hochberg adjusted over all CpGs; NaN with a single group).
    """
    check_model(model, batch_size)
    check_missing_mode(missing)
    n_layers = model.n_layers
    if not isinstance(encoder_layer, int | np.integer) or not -n_layers <= encoder_layer < n_layers:
        msg = f"`encoder_layer` must be an integer in [{-n_layers}, {n_layers - 1}], got {encoder_layer!r}."
        raise ValueError(msg)
    if n_top < 1:
        msg = f"`n_top` must be a positive integer, got {n_top!r}."
        raise ValueError(msg)
    if groupby is None:
        labels = pd.Categorical(["all"] * adata.n_obs)
    elif groupby not in adata.obs:
        msg = f"`groupby` column {groupby!r} is not in `adata.obs` (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    else:
        column = adata.obs[groupby]
        if column.isna().any():
            msg = f"`obs[{groupby!r}]` has {int(column.isna().sum())} missing labels; fill or drop those samples."
            raise ValueError(msg)
        labels = pd.Categorical(column.astype(str))
    inputs = prepare_inputs(adata, model, layer=layer, var_key=var_key)
    layer_index = int(encoder_layer) % n_layers

    with model_on(model, device) as dev:
        per_sample = _per_sample(
            model, inputs, layer_index=layer_index, missing=missing, batch_size=int(batch_size), progress=progress
        )
    cpgs = adata.var_names[inputs.in_data]
    table = _group_table(per_sample, labels, cpgs, min(int(n_top), len(cpgs)))
    means = np.full((adata.n_vars, len(labels.categories)), np.nan, dtype=np.float32)
    for j, group in enumerate(labels.categories):
        means[inputs.in_data, j] = per_sample[np.asarray(labels == group)].mean(axis=0)

    params = provenance(
        model,
        inputs,
        groupby=groupby,
        encoder_layer=layer_index,
        missing=missing,
        layer=layer,
        var_key=var_key,
        device=str(dev),
    )
    adata = copy_data(adata) if copy else adata
    adata.varm[key_added] = pd.DataFrame(means, index=adata.var_names, columns=[str(g) for g in labels.categories])
    record_params(adata, key_added, params, groups=[str(g) for g in labels.categories], top=table)
    return adata if copy else None
