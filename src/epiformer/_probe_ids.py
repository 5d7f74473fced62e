"""Recognising and normalising CpG identifiers: Illumina probe IDs (27k / 450k / EPIC / EPICv2) and loci."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

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
