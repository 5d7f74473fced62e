"""The spatial dilution simulation: how a trained predictor degrades as expression gets sparser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse
from tqdm.auto import tqdm

from epiformer._annotations import pair_split
from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_params
from epiformer._utils import as_generator, get_matrix, record_params
from epiformer.pp._dilute import DiluteMethod, _dilute_legacy, _dilute_multinomial
from epiformer.tl._expression_predictor import _aligned_expression, _scores

if TYPE_CHECKING:
    from mudata import MuData

    from epiformer.models import ExpressionPredictor


def _log_normalize(counts, target_sum: float) -> np.ndarray:
    """``log1p(counts / total * target_sum)`` per row (rows without counts stay 0)."""
    dense = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    totals = dense.sum(axis=1, keepdims=True)
    return np.log1p(np.divide(dense, totals, out=np.zeros_like(dense, dtype=np.float64), where=totals > 0) * target_sum)


@doc_params(copy=doc_copy)
def dilution_curve(
    mdata: MuData,
    model: ExpressionPredictor,
    *,
    retention: Sequence[int] = (20000, 15000, 10000, 5000, 1000, 100),
    n_iter: int = 10,
    method: DiluteMethod = "multinomial",
    layer: str | None = None,
    split: str | None = "test",
    split_key: str = Key.obs.split,
    cpgs: Sequence[str] | None = None,
    target_sum: float = 1e4,
    random_state: int = 0,
    key_added: str = Key.uns.dilution,
    copy: bool = False,
):
    """Dilute the expression of held-out samples to each retention level and score the predictions.

    For every level and iteration (seeded ``random_state + iteration``, as the study seeded each iteration),
    the expression of the `split` samples is diluted with :func:`epiformer.pp.dilute`, turned back into the
    model's input and used to predict the `split` CpGs:

    - ``method="multinomial"`` thins the counts (`layer`, default ``"counts"``) to `retention` molecules,
      then re-normalises as in training: ``log1p(counts per target_sum)``;
    - ``method="legacy"`` applies the study's rule to the log expression (`layer`, default the model's
      expression layer) and uses the result directly.

    Scaling is the model's own, fit on training samples (the study re-fit it on the diluted test set).

    Parameters
    ----------
    mdata
        The MuData the model was trained on (or one laid out the same way), split by
        :func:`epiformer.pp.split_pairs`.
    model
        A trained :class:`epiformer.models.ExpressionPredictor`.
    retention
        Molecules (``multinomial``) or gene draws (``legacy``) kept per sample.
    n_iter
        Dilutions per level.
    method
        ``"multinomial"`` or ``"legacy"``.
    layer
        Expression layer to dilute; see above for the defaults.
    split
        Samples and CpGs to evaluate; `None` uses all.
    split_key
        Column written by :func:`epiformer.pp.split_pairs`.
    cpgs
        Only these CpGs (names) of the split, e.g. those whose methylation follows expression.
    target_sum
        Counts per sample after re-normalisation (``multinomial``).
    random_state
        Seed of the first iteration.
    key_added
        `mdata.uns` key written.
    {copy}

    Returns
    -------
    `None` or, with ``copy=True``, the modified copy. Writes `mdata.uns[key_added]` with

    `table`
        Tidy DataFrame, one row per level and iteration: `retention`, `iteration`, `n_genes_kept` (mean
        genes with a non-zero value per sample), `n_pairs`, `mae`, `spearman` (pooled), `per_cpg_spearman` (median
        across-sample correlation over CpGs), `per_sample_spearman`.
    `undiluted`
        The same scores without dilution.
    `params`
        The settings.
    """
    if method not in ("multinomial", "legacy"):
        msg = f"`method` must be 'multinomial' or 'legacy', got {method!r}."
        raise ValueError(msg)
    levels = [int(r) for r in retention]
    if not levels or min(levels) < 1 or n_iter < 1:
        msg = "`retention` must list positive integers and `n_iter` be positive."
        raise ValueError(msg)
    rna, methyl = mdata.mod[model._rna_mod], mdata.mod[model._methyl_mod]
    if layer is None:
        layer = Key.layers.counts if method == "multinomial" else model.registry_["setup_args"]["rna_layer"]
    source = get_matrix(rna, layer)
    sample_split, cpg_split = pair_split(mdata, split_key=split_key, mod=model._methyl_mod)
    rows = np.arange(methyl.n_obs) if split is None else np.flatnonzero(sample_split == split)
    cols = np.arange(methyl.n_vars) if split is None else np.flatnonzero(cpg_split == split)
    cols = cols[methyl.var_names[cols].isin(model.cpgs_)]
    if cpgs is not None:
        cols = cols[methyl.var_names[cols].isin([str(c) for c in cpgs])]
    if not len(rows) or not len(cols):
        msg = f"No samples or model CpGs in split {split!r}."
        raise ValueError(msg)
    rna_rows = rna.obs_names.get_indexer(methyl.obs_names[rows])
    if (rna_rows < 0).any():
        msg = "Some evaluated samples have no expression."
        raise ValueError(msg)
    cpg_pos = pd.Index(model.cpgs_).get_indexer(methyl.var_names[cols])
    truth = np.asarray(methyl.X[np.ix_(rows, cols)], dtype=np.float32)
    gene_pos = rna.var_names.get_indexer(model.genes_)
    present = gene_pos >= 0

    def score(values) -> dict[str, float]:
        expr = np.zeros((len(rows), len(model.genes_)), dtype=np.float32)
        expr[:, present] = np.asarray(values)[:, gene_pos[present]]
        return _scores(truth, model.predict(expr, present=present, cpgs=cpg_pos))

    base_expr, _ = _aligned_expression(rna[rna_rows], model, model.registry_["setup_args"]["rna_layer"])
    undiluted = _scores(truth, model.predict(base_expr, present=present, cpgs=cpg_pos))
    subset = source[rna_rows]
    records = []
    with tqdm(total=len(levels) * n_iter, desc="dilution", leave=False) as bar:
        for level in levels:
            for iteration in range(n_iter):
                rng = as_generator(random_state + iteration)
                if method == "multinomial":
                    diluted = _dilute_multinomial(subset, level, rng)
                    values = _log_normalize(diluted, target_sum)
                else:
                    diluted = _dilute_legacy(subset, level, rng)
                    values = diluted.toarray() if sparse.issparse(diluted) else diluted
                kept = float(np.mean(np.asarray((diluted != 0).sum(axis=1)).ravel()))
                records.append({"retention": level, "iteration": iteration, "n_genes_kept": kept, **score(values)})
                bar.update()
    data = mdata.copy() if copy else mdata
    record_params(
        data,
        key_added,
        {
            "retention": levels,
            "n_iter": n_iter,
            "method": method,
            "layer": layer,
            "split": split,
            "n_cpgs": len(cols),
            "target_sum": target_sum,
        },
        table=pd.DataFrame.from_records(records),
        undiluted=undiluted,
    )
    return data if copy else None
