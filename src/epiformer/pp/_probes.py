"""Probe identifiers across platforms: EPICv2 suffix collapse, duplicate averaging, model-vocabulary alignment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._docs import doc_adata, doc_layer, doc_params
from epiformer._probe_ids import SUFFIX, collapse_suffixes, match_vocab, var_ids, vocab_coverage
from epiformer._utils import get_matrix, layer_names, read_columns, to_dense_float
from epiformer._validation import first_items


class HasProbes(Protocol):
    """Anything with an ordered list of probe IDs, such as :class:`epiformer.models.MethylGPTVocab`."""

    probes: Sequence[str]


def _group_mean(X: np.ndarray, codes: np.ndarray, first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Column means of `X` within groups `codes`, ignoring NaN (NaN where a group has no observed value).

    Singleton groups are copied; only the columns of replicated groups are sorted and reduced.
    """
    out = X[:, first]
    multi = np.flatnonzero(counts > 1)
    if multi.size:
        cols = np.flatnonzero(counts[codes] > 1)
        order = cols[np.argsort(codes[cols], kind="stable")]
        starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
        block = X[:, order]
        observed = ~np.isnan(block)
        total = np.add.reduceat(np.where(observed, block, 0), starts, axis=1)
        n = np.add.reduceat(observed.astype(np.float32), starts, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, multi] = total / n
    return out


@doc_params(adata=doc_adata)
def harmonize_probes(adata: AnnData, *, var_key: str | None = None) -> AnnData:
    """Harmonise probe IDs across 27k / 450k / EPIC / EPICv2 arrays.

    EPICv2 design suffixes collapse to the classic ID (``cg00000029_TC21`` -> ``cg00000029``), and probes that
    then share an ID are averaged (NaN-aware: the mean of the observed replicates). The data set changes
    shape, so a new object is returned and `adata` is left untouched.

    Parameters
    ----------
    {adata}
    var_key
        Column of `adata.var` holding the probe IDs; `None` uses `adata.var_names`.

    Returns
    -------
    A new AnnData with one variable per harmonised ID (in order of first appearance), `.X` and every layer
    averaged, the first replicate's `var` annotations plus `var['n_probes_merged']`, and the counts in
    `uns['harmonize_probes']` (`n_input`, `n_output`, `n_suffixed`, `n_ids_averaged`, `n_probes_averaged`).
    """
    raw = var_ids(adata, var_key)
    suffixed = raw.str.contains(SUFFIX)
    codes, uniques = pd.factorize(collapse_suffixes(raw))
    n_out = len(uniques)
    counts = np.bincount(codes, minlength=n_out)
    first = np.full(n_out, len(codes))
    np.minimum.at(first, codes, np.arange(len(codes)))

    out = AnnData(
        X=_group_mean(to_dense_float(get_matrix(adata)), codes, first, counts),
        obs=adata.obs.copy(),
        var=adata.var.iloc[first].copy(),
        obsm={k: v.copy() for k, v in adata.obsm.items()},
        uns=dict(adata.uns.items()),
    )
    out.var_names = pd.Index(uniques, dtype=str)
    out.var[Key.var.n_probes_merged] = counts
    for name in layer_names(adata):
        out.layers[name] = _group_mean(to_dense_float(adata.layers[name]), codes, first, counts)
    out.uns[Key.uns.harmonize] = {
        "n_input": int(len(raw)),
        "n_output": int(n_out),
        "n_suffixed": int(suffixed.sum()),
        "n_ids_averaged": int((counts > 1).sum()),
        "n_probes_averaged": int(counts[counts > 1].sum()),
    }
    return out


@doc_params(adata=doc_adata, layer=doc_layer)
def align_to_vocab(
    adata: AnnData, vocab: HasProbes | Sequence[str], *, layer: str | None = None, var_key: str | None = None
) -> AnnData:
    """Put the data into a model vocabulary's CpG order, NaN where a vocabulary CpG is absent.

    Parameters
    ----------
    {adata}
    vocab
        The model vocabulary: an object with a ``probes`` attribute (such as a MethylGPT vocabulary) or a
        sequence of probe IDs in model order.
    {layer}
    var_key
        Column of `adata.var` holding the probe IDs; `None` uses `adata.var_names`.

    Returns
    -------
    A new AnnData (same `obs`, `var` = the vocabulary's probes) with the coverage in
    `uns['vocab_coverage']`: `n_vocab`, `n_found`, `fraction_found` (of the vocabulary) and
    `n_unused` (data CpGs that are not in the vocabulary).

    Raises
    ------
    ValueError
        If probe IDs are duplicated or still carry EPICv2 suffixes (run :func:`epiformer.pp.harmonize_probes`).
    """
    probes = pd.Index(getattr(vocab, "probes", vocab), dtype=str)
    names = var_ids(adata, var_key)
    suffixed = list(names[names.str.contains(SUFFIX)])
    if suffixed:
        msg = (
            f"{len(suffixed)} probe IDs carry EPICv2 suffixes ({first_items(suffixed)}); collapse them first with "
            "`adata = ef.pp.harmonize_probes(adata)`."
        )
        raise ValueError(msg)
    in_data, in_vocab = match_vocab(names, probes)
    X = np.full((adata.n_obs, len(probes)), np.nan, dtype=np.float32)
    X[:, in_vocab] = read_columns(get_matrix(adata, layer), in_data)
    out = AnnData(X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=probes))
    out.uns[Key.uns.vocab_coverage] = vocab_coverage(len(probes), len(in_data), len(names))
    return out
