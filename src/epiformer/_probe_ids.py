"""Recognising and normalising CpG identifiers: Illumina probe IDs (27k / 450k / EPIC / EPICv2) and loci."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._logging import warn
from epiformer._validation import check_unique

#: EPICv2 appends a design suffix to the classic ID: ``cg00000029_TC21`` is ``cg00000029``.
SUFFIX = re.compile(r"_[A-Z]{2}\d+$")

#: One CpG identifier: a probe (``cg``, ``ch.``, ``rs``), optionally with an EPICv2 suffix, or a ``chrom:pos`` locus.
PROBE_ID = re.compile(
    r"^(?:cg\d{8}|ch\.[0-9A-Za-z]+\.\d+[A-Z]?|rs\d+|(?:chr)?[0-9A-Za-z_]+:\d+(?:-\d+)?)(?:_[A-Z]{2}\d+)?$"
)


def probe_like_fraction(names: Iterable) -> float:
    """Fraction of `names` that look like CpG identifiers."""
    values = [str(n) for n in names]
    if not values:
        return 0.0
    return float(np.mean([PROBE_ID.match(v) is not None for v in values]))


def collapse_suffixes(names: Iterable) -> pd.Index:
    """Strip EPICv2 design suffixes: ``cg00000029_TC21`` -> ``cg00000029``; other IDs are kept."""
    return pd.Index(pd.Index(names).astype(str).str.replace(SUFFIX, "", regex=True))


def var_ids(adata: AnnData, var_key: str | None) -> pd.Index:
    """The CpG IDs of `adata`: `var_names`, or the `var[var_key]` column."""
    if var_key is None:
        return pd.Index(adata.var_names.astype(str))
    if var_key not in adata.var:
        msg = f"`var_key={var_key!r}` is not a column of `adata.var` (columns: {list(adata.var.columns)})."
        raise KeyError(msg)
    return pd.Index(adata.var[var_key].astype(str))


def match_vocab(names: Sequence[str] | pd.Index, probes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(in_data, in_vocab)`` of the probes found in both `names` and the vocabulary `probes`."""
    names = pd.Index(names)
    check_unique(names, what="probe IDs")
    in_vocab = pd.Index(probes).get_indexer(names)
    found = np.flatnonzero(in_vocab >= 0)
    return found, in_vocab[found]


def vocab_coverage(n_vocab: int, n_found: int, n_data: int) -> dict[str, int | float]:
    """How much of a model's CpG vocabulary the data measures, as recorded in `uns`.

    `n_vocab`, `n_found` (vocabulary CpGs in the data), `fraction_found` (of the vocabulary) and `n_unused`
    (data CpGs outside the vocabulary).
    """
    return {
        "n_vocab": int(n_vocab),
        "n_found": int(n_found),
        "fraction_found": float(n_found / max(n_vocab, 1)),
        "n_unused": int(n_data - n_found),
    }


def check_coverage(coverage: dict, *, who: str, fallback: str, hint: str = "") -> None:
    """Refuse data holding none of a model's CpGs; warn when it holds under half (`fallback`: what the rest become).

    Raises
    ------
    ValueError
        If not one of the model's CpGs is in the data: every prediction would be the same guess.
    """
    if coverage["n_found"] == 0:
        msg = (
            f"None of {who}'s {coverage['n_vocab']:,} CpGs is in the data: every sample would get the same guess. "
            f"{hint or 'Check that the CpG IDs are the probe IDs the model was trained on.'}"
        )
        raise ValueError(msg)
    if coverage["fraction_found"] < 0.5:
        warn(
            f"Only {coverage['n_found']:,} of {who}'s {coverage['n_vocab']:,} CpGs ({coverage['fraction_found']:.1%}) "
            f"are in the data; the others are {fallback}. {hint}".rstrip(),
            UserWarning,
        )
