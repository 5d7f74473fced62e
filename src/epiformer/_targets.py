"""Validation of supervised targets taken from an `obs` column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._logging import warn
from epiformer._validation import check_choice

Task = Literal["regression", "classification"]


@dataclass
class Target:
    """A validated target: which samples have it, its values, the task and (for classification) the classes."""

    name: str
    task: Task
    rows: np.ndarray
    """Positions of the samples with a target value."""
    values: np.ndarray
    """Float targets (regression) or integer class codes (classification) of those samples."""
    classes: list[str] | None


def resolve_target(adata: AnnData, target: str, *, task: Task | Literal["auto"] = "auto") -> Target:
    """Read `obs[target]`, drop (and count, in a warning) samples without a value, and check it can be learnt.

    ``task="auto"`` picks regression for numeric columns and classification otherwise.

    Raises
    ------
    KeyError
        If `target` is not an `obs` column.
    ValueError
        If no sample has a value, a regression target is constant, or a classification target has one class.
    """
    if target not in adata.obs:
        msg = f"`target={target!r}` is not a column of `adata.obs` (columns: {list(adata.obs.columns)})."
        raise KeyError(msg)
    column = adata.obs[target]
    check_choice(task, ("auto", "regression", "classification"), name="task")
    if task == "auto":
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        task = "regression" if numeric else "classification"
    present = column.notna().to_numpy()
    if not present.any():
        msg = f"`obs[{target!r}]` has no values."
        raise ValueError(msg)
    if not present.all():
        warn(
            f"{int((~present).sum())} of {adata.n_obs} samples have no {target!r} value and are left out.",
            UserWarning,
        )
    rows = np.flatnonzero(present)
    if task == "regression":
        values = pd.to_numeric(column.iloc[rows], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            msg = f"`obs[{target!r}]` holds values that are not numbers; use task='classification'."
            raise ValueError(msg)
        if np.ptp(values) == 0:
            msg = f"`obs[{target!r}]` is constant ({values[0]!r}); there is nothing to learn."
            raise ValueError(msg)
        return Target(target, task, rows, values, None)
    labels = column.iloc[rows].astype(str)
    classes = sorted(labels.unique())
    if len(classes) < 2:
        msg = f"`obs[{target!r}]` has a single class ({classes[0]!r}); classification needs at least two."
        raise ValueError(msg)
    codes = pd.Categorical(labels, categories=classes).codes.astype(np.int64)
    return Target(target, task, rows, codes, classes)
