"""Score predicted methylation on held-out CpGs x held-out samples, beside two baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._logging import timed
from epiformer._utils import get_matrix, renamed_options, select_modality, to_dense_float

if TYPE_CHECKING:
    from mudata import MuData


@renamed_options(mdata="data")
def evaluate_methylation(
    data: AnnData | MuData,
    *,
    layer: str = Key.layers.predicted_methylation,
    split: str | None = "test",
    mod: str | None = None,
    truth_layer: str | None = None,
    split_key: str = Key.obs.split,
    groupby: str | None = None,
    baselines: bool = True,
    seq_key: str = Key.varm.seq_codes,
) -> pd.DataFrame:
    """Score predicted methylation on held-out CpGs x held-out samples, beside two baselines.

    Metrics: the pooled MAE and Spearman correlation over all pairs (the published metric, dominated by
    differences between CpGs), the median over CpGs of the across-sample Spearman correlation (does the
    prediction follow each CpG's variation between samples?) and the median over samples of the across-CpG
    Spearman correlation. Baselines, fit on training CpGs x training samples: ``sequence_only`` (ridge
    regression of each CpG's mean on dinucleotide counts around it) and ``cpg_mean`` (the mean of the
    nearest training CpG). Both are constant across samples, so their per-CpG correlation is 0.

    Parameters
    ----------
    data
        MuData (or methylation AnnData) with predictions in `layers[layer]` (see :func:`predict_methylation`).
    layer
        Layer of predictions.
    split
        Evaluate the CpGs and samples of this split; `None` uses all.
    mod
        With a MuData, the methylation modality (default ``"methyl"``).
    truth_layer
        Layer of observed betas (`None` = `.X`).
    split_key
        Column written by :func:`epiformer.pp.split_pairs`.
    groupby
        Optional categorical or boolean CpG `var` column: one block of rows per group (e.g. the synthetic
        data's `expression_driven`).
    baselines
        Add the ``sequence_only`` and ``cpg_mean`` baselines (need training CpGs and samples).
    seq_key
        `varm` key of the sequence codes (for the sequence-only baseline).

    Returns
    -------
    DataFrame indexed by predictor (the layer name and the baselines), or by (group, predictor) with
    `groupby`, with columns `n_pairs`, `mae`, `spearman`, `per_cpg_spearman`, `per_sample_spearman`.
    Nothing is written.
    """
    from epiformer.models import expression_predictor as engine

    methyl = select_modality(data, mod, default=Key.mod.methyl)
    pred = to_dense_float(get_matrix(methyl, layer))
    truth = to_dense_float(get_matrix(methyl, truth_layer))
    rows, cols, sample_split, cpg_split = engine.split_block(
        data, methyl, split=split, split_key=split_key, mod=None if isinstance(data, AnnData) else mod or Key.mod.methyl
    )
    if not len(rows) or not len(cols):
        msg = f"No samples or CpGs in split {split!r}."
        raise ValueError(msg)
    if groupby is not None and groupby not in methyl.var:
        msg = f"`groupby={groupby!r}` is not a column of the CpG `var`."
        raise KeyError(msg)
    with timed("ef.tl.evaluate_methylation"):
        predictions = {layer: pred[np.ix_(rows, cols)]}
        if baselines:
            train_s, train_c = np.flatnonzero(sample_split == "train"), np.flatnonzero(cpg_split == "train")
            predictions.update(engine.baselines(methyl, truth, rows, cols, train_s, train_c, seq_key=seq_key))
        labels = None if groupby is None else methyl.var[groupby].to_numpy()[cols]
        return engine.score_table(truth[np.ix_(rows, cols)], predictions, labels, groupby=groupby or "group")
