"""How much of a model's CpG vocabulary a data set measures, reported before any model run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from epiformer._constants import Key
from epiformer._docs import doc_layer, doc_mod_methyl, doc_params, doc_var_key
from epiformer._probe_ids import SUFFIX, collapse_suffixes, var_ids
from epiformer._probe_ids import vocab_coverage as coverage_counts
from epiformer._utils import get_matrix, read_columns, select_modality
from epiformer._validation import refuse_sparse_betas


def vocab_probes(model: Any) -> pd.Index:
    """The vocabulary CpG IDs of `model`.

    `model` is an object with ``.vocab.probes`` (a MethylGPT model), one with ``.probes`` (a MethylGPT
    vocabulary), or a sequence of probe IDs.

    Raises
    ------
    TypeError
        If `model` is none of these (a model without a CpG vocabulary, a single string, a data object).
    """
    probes = getattr(getattr(model, "vocab", None), "probes", None)
    if probes is None:
        probes = getattr(model, "probes", None)
    if probes is None and isinstance(model, Sequence | pd.Index | np.ndarray) and not isinstance(model, str | bytes):
        probes = model
    if probes is None or isinstance(probes, str | bytes):
        msg = (
            f"`model` must be a methylation model with a CpG vocabulary (such as `ef.models.MethylGPT`), a "
            f"vocabulary (`ef.models.MethylGPTVocab`) or a list of probe IDs, not {type(model).__name__}."
        )
        raise TypeError(msg)
    return pd.Index(np.asarray(probes, dtype=str), dtype=str)


@doc_params(mod=doc_mod_methyl, layer=doc_layer, var_key=doc_var_key)
def vocab_coverage(
    data: AnnData | MuData,
    model: Any,
    *,
    var_key: str | None = None,
    mod: str | None = None,
    layer: str | None = None,
) -> dict[str, Any]:
    """Report how many of a model's vocabulary CpGs the data measures, overall and per sample, before any run.

    A pure report: the data is not modified. EPICv2 design suffixes (``cg00000029_TC21``) are collapsed to the
    classic ID for the count, as :func:`epiformer.pp.harmonize_probes` does (run it before a model run; a
    vocabulary CpG measured by several EPICv2 replicates counts once). After ``harmonize_probes``,
    :func:`epiformer.pp.align_to_vocab` records the same counts in ``uns['vocab_coverage']``.
    :func:`epiformer.tl.embed` and :func:`epiformer.tl.impute` check them and record them in their parameters.
    No overlap at all is reported, not refused (the model runs refuse it).

    Parameters
    ----------
    data
        AnnData of beta values (samples x CpGs), or a MuData holding one.
    model
        The model whose vocabulary is counted: a MethylGPT model (anything with ``.vocab.probes``), a
        :class:`~epiformer.models.MethylGPTVocab` (anything with ``.probes``) or a sequence of probe IDs.
    {var_key}
    {mod}
    {layer}

    Returns
    -------
    A dict with

    `n_vocab`
        CpGs in the vocabulary.
    `n_found`
        Vocabulary CpGs among the data's CpG IDs (suffixes collapsed).
    `fraction_found`
        `n_found / n_vocab`.
    `n_unused`
        Data CpG IDs (suffixes collapsed) that are not in the vocabulary: the model never reads them.
    `n_suffixed`
        Data probe IDs carrying an EPICv2 design suffix.
    `per_sample`
        DataFrame indexed by `obs_names`: `n_vocab_observed` (vocabulary CpGs with a non-NaN value in the
        sample) and `fraction_vocab_observed` (of `n_vocab`).

    Raises
    ------
    TypeError
        If `data` is not an AnnData or MuData, its values are a sparse matrix (implicit zeros would read as
        observed), or `model` has no CpG vocabulary.
    KeyError
        If `var_key`, `mod` or `layer` is not in the data.
    """
    if not isinstance(data, AnnData | MuData):
        msg = f"`data` must be an AnnData or a MuData, not {type(data).__name__}."
        raise TypeError(msg)
    probes = vocab_probes(model)
    adata = select_modality(data, mod, default=Key.mod.methyl)
    raw = var_ids(adata, var_key)
    X = get_matrix(adata, layer)
    refuse_sparse_betas(X, what=f"`{layer or 'X'}`")
    ids = collapse_suffixes(raw)
    codes = pd.Index(probes).get_indexer(ids)
    cols = np.flatnonzero(codes >= 0)
    n_ids = ids.nunique()
    n_found = len(np.unique(codes[cols]))
    summary = coverage_counts(len(probes), n_found, n_ids)
    summary["n_suffixed"] = int(raw.str.contains(SUFFIX).sum())

    per_sample = np.zeros(adata.n_obs, dtype=np.int64)
    if cols.size and adata.n_obs:
        order = cols[np.argsort(codes[cols], kind="stable")]
        starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
        observed = ~np.isnan(read_columns(X, order))
        per_sample = np.logical_or.reduceat(observed, starts, axis=1).sum(axis=1)
    summary["per_sample"] = pd.DataFrame(
        {
            "n_vocab_observed": per_sample.astype(np.int64),
            "fraction_vocab_observed": per_sample / max(len(probes), 1),
        },
        index=adata.obs_names.copy(),
    )
    return summary
