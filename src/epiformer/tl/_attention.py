"""`ef.tl.attention`: the attention each CpG receives in a MethylGPT encoder layer, per sample and per group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import stats

from epiformer._constants import Key
from epiformer._docs import doc_methylgpt_run, doc_params
from epiformer._logging import timed
from epiformer._utils import output, record_params, renamed_options

if TYPE_CHECKING:
    import torch

    from epiformer.models import MethylGPT


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


@doc_params(**doc_methylgpt_run)
@renamed_options(adata="data")
def attention(
    data: AnnData | MuData,
    model: MethylGPT,
    *,
    groupby: str | None = None,
    encoder_layer: int = -1,
    layer: str | None = None,
    var_key: str | None = None,
    mod: str | None = None,
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
    {data}
    model
        A :class:`~epiformer.models.MethylGPT`.
    groupby
        Categorical `obs` column; `None` puts every sample in one group, ``"all"``.
    encoder_layer
        Index of the encoder layer whose attention is read (negative counts from the last).
    {layer}
    {var_key}
    {mod}
    {missing}
    n_top
        CpGs listed per group.
    {model_run}
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
    from epiformer.models import methylgpt

    with timed("ef.tl.attention") as written:
        adata, inputs = methylgpt.checked_inputs(
            data, model, mod=mod, layer=layer, var_key=var_key, batch_size=batch_size, missing=missing
        )
        n_layers = model.n_layers
        if not isinstance(encoder_layer, int | np.integer) or not -n_layers <= encoder_layer < n_layers:
            msg = f"`encoder_layer` must be an integer in [{-n_layers}, {n_layers - 1}], got {encoder_layer!r}."
            raise ValueError(msg)
        if n_top < 1:
            msg = f"`n_top` must be a positive integer, got {n_top!r}."
            raise ValueError(msg)
        labels = _labels(adata, groupby)
        layer_index = int(encoder_layer) % n_layers
        per_sample, dev = methylgpt.attention(
            model,
            inputs,
            layer_index=layer_index,
            missing=missing,
            batch_size=int(batch_size),
            device=device,
            progress=progress,
        )
        cpgs = adata.var_names[inputs.in_data]
        table = _group_table(per_sample, labels, cpgs, min(int(n_top), len(cpgs)))
        means = np.full((adata.n_vars, len(labels.categories)), np.nan, dtype=np.float32)
        for j, group in enumerate(labels.categories):
            means[inputs.in_data, j] = per_sample[np.asarray(labels == group)].mean(axis=0)
        params = methylgpt.provenance(
            model,
            inputs,
            groupby=groupby,
            encoder_layer=layer_index,
            missing=missing,
            layer=layer,
            var_key=var_key,
            device=dev,
        )
        groups = [str(g) for g in labels.categories]
        data, adata = output(data, copy=copy, mod=mod, default=Key.mod.methyl)
        adata.varm[key_added] = pd.DataFrame(means, index=adata.var_names, columns=groups)
        record_params(adata, key_added, params, outputs={f"varm[{key_added!r}]": per_sample}, groups=groups, top=table)
        written += [f"varm[{key_added!r}]", f"uns[{key_added!r}]"]
    return data if copy else None


def _labels(adata: AnnData, groupby: str | None) -> pd.Categorical:
    """The sample groups: `obs[groupby]` as categories, or one group ``"all"``."""
    if groupby is None:
        return pd.Categorical(["all"] * adata.n_obs)
    if groupby not in adata.obs:
        msg = f"`groupby` column {groupby!r} is not in `adata.obs` (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    column = adata.obs[groupby]
    if column.isna().any():
        msg = f"`obs[{groupby!r}]` has {int(column.isna().sum())} missing labels; fill or drop those samples."
        raise ValueError(msg)
    return pd.Categorical(column.astype(str))
