"""Shared steps of the readers: validate a samples x CpGs table and turn it into an AnnData of betas."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._beta import DEFAULT_OFFSET, mvalue_to_beta
from epiformer._constants import Key
from epiformer._validation import check_betas, check_unique, first_items, warn_all_missing_rows

Values = Literal["beta", "mvalue"]


def numeric_frame(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """A samples x CpGs `frame` as float, after checking names are unique and listing cells that are not numbers."""
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    check_unique(frame.index, what="sample names")
    check_unique(frame.columns, what="probe IDs")
    bad: list[str] = []
    out = {}
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            out[col] = values.astype(np.float64)
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        offenders = values[parsed.isna() & values.notna() & (values.astype(str).str.strip() != "")]
        bad.extend(f"{row!r}/{col!r} = {val!r}" for row, val in offenders.head(5).items())
        out[col] = parsed
    if bad:
        msg = f"{source}: non-numeric cells (row/column = value): {first_items(bad)}. Fix or blank them (blank = missing)."
        raise ValueError(msg)
    return pd.DataFrame(out, index=frame.index)


def betas_to_anndata(frame: pd.DataFrame, *, values: Values, source: str) -> AnnData:
    """Build AnnData (obs = samples, var = CpGs, float32 betas) from the output of :func:`numeric_frame`."""
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        msg = f"{source}: no data (found {frame.shape[0]} samples x {frame.shape[1]} CpGs)."
        raise ValueError(msg)
    X = frame.to_numpy(dtype=np.float64)
    if values == "mvalue":
        X = np.clip(mvalue_to_beta(X, DEFAULT_OFFSET), 0.0, 1.0)
    check_betas(X, what=source)
    X = X.astype(np.float32)
    all_missing = warn_all_missing_rows(X, frame.index)
    adata = AnnData(X=X, obs=pd.DataFrame(index=frame.index), var=pd.DataFrame(index=frame.columns))
    adata.uns[Key.uns.read] = {"source": source, "values": values, "all_missing_samples": np.asarray(all_missing, str)}
    return adata


def check_path(path: str | Path) -> Path:
    """The path as a :class:`~pathlib.Path`, with clear errors for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        msg = f"No such file: {path}"
        raise FileNotFoundError(msg)
    if path.stat().st_size == 0:
        msg = f"{path} is empty."
        raise ValueError(msg)
    return path
