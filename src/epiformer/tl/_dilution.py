"""The spatial dilution simulation: how a trained predictor degrades as expression gets sparser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from epiformer._constants import Key
from epiformer._docs import doc_copy, doc_params
from epiformer._logging import timed, warn
from epiformer._utils import copy_data, get_matrix, record_params
from epiformer._validation import check_choice

if TYPE_CHECKING:
    from mudata import MuData

    from epiformer.models import ExpressionPredictor


@doc_params(copy=doc_copy)
def dilution_curve(
    mdata: MuData,
    model: ExpressionPredictor,
    *,
    retention: Sequence[int] = (20000, 15000, 10000, 5000, 1000, 100),
    n_iter: int = 10,
    method: Literal["hypergeometric", "multinomial", "legacy"] = "hypergeometric",
    layer: str | None = None,
    split: str | None = "test",
    split_key: str = Key.obs.split,
    cpgs: Sequence[str] | None = None,
    target_sum: float = 1e4,
    random_state: int = 0,
    progress: bool = True,
    device: str = "auto",
    key_added: str = Key.uns.dilution,
    copy: bool = False,
) -> MuData | None:
    """Dilute the expression of held-out samples to each retention level and score the predictions.

    For every level and iteration (seeded ``random_state + iteration``, as the study seeded each iteration),
    the expression of the `split` samples is diluted with :func:`epiformer.pp.dilute`, turned back into the
    model's input and used to predict the `split` CpGs:

    - ``method="hypergeometric"`` (the default) captures `retention` of each sample's molecules without
      replacement (`layer`, default ``"counts"``; samples with fewer molecules are kept as they are, counted
      per level in `n_below_retention`), then re-normalises as in training: ``log1p(counts per target_sum)``;
    - ``method="multinomial"`` draws `retention` molecules with replacement instead, then re-normalises;
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
        Molecules (``hypergeometric``, ``multinomial``) or gene draws (``legacy``) kept per sample.
    n_iter
        Dilutions per level.
    method
        ``"hypergeometric"``, ``"multinomial"`` or ``"legacy"``; see :func:`epiformer.pp.dilute`.
    layer
        Expression layer to dilute; see above for the defaults.
    split
        Samples and CpGs to evaluate; `None` uses all.
    split_key
        Column written by :func:`epiformer.pp.split_pairs`.
    cpgs
        Only these CpGs (names) of the split, e.g. those whose methylation follows expression.
    target_sum
        Counts per sample after re-normalisation (``hypergeometric``, ``multinomial``).
    random_state
        Seed of the first iteration.
    progress
        Show a progress bar over levels and iterations.
    device
        Where the model predicts (``"auto"``: CUDA, then MPS, then the CPU).
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
    `n_below_retention`
        Per level (as a string), the samples with fewer molecules than the level (kept as they are by
        ``hypergeometric``).
    `params`
        The settings.
    """
    from epiformer.models import expression_predictor as engine

    engine.check_predictor(model)
    check_choice(method, ("hypergeometric", "multinomial", "legacy"), name="method")
    levels = [int(r) for r in retention]
    if not levels or min(levels) < 1 or n_iter < 1:
        msg = "`retention` must list positive integers and `n_iter` be positive."
        raise ValueError(msg)
    rna, methyl = mdata.mod[model.rna_mod], mdata.mod[model.methyl_mod]
    if layer is None:
        layer = model.rna_layer if method == "legacy" else Key.layers.counts
    source = get_matrix(rna, layer)
    rows, cols, _, _ = engine.split_block(mdata, methyl, split=split, split_key=split_key, mod=model.methyl_mod)
    cols = cols[methyl.var_names[cols].isin(model.cpgs)]
    if cpgs is not None:
        cols = cols[methyl.var_names[cols].isin([str(c) for c in cpgs])]
    if not len(rows) or not len(cols):
        msg = f"No samples or model CpGs in split {split!r}."
        raise ValueError(msg)
    rna_rows = rna.obs_names.get_indexer(methyl.obs_names[rows])
    if (rna_rows < 0).any():
        msg = "Some evaluated samples have no expression."
        raise ValueError(msg)
    with timed("ef.tl.dilution_curve") as written:
        table, undiluted, short = engine.dilution_scores(
            model,
            rna[rna_rows],
            methyl[rows, cols],
            source[rna_rows],
            levels=levels,
            n_iter=n_iter,
            method=method,
            target_sum=target_sum,
            random_state=random_state,
            device=device,
            progress=progress,
        )
        data = copy_data(mdata) if copy else mdata
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
            table=table,
            undiluted=undiluted,
            n_below_retention=short,
        )
        if method != "legacy" and any(short.values()):
            below = ", ".join(f"{n} at {int(level):,}" for level, n in short.items() if n)
            warn(
                f"Some samples have fewer molecules than a retention level and were not diluted there ({below}); "
                f"counted in uns[{key_added!r}]['n_below_retention'].",
                UserWarning,
            )
        written.append(f"uns['{key_added}']")
    return data if copy else None
