"""Reader for plain methylation matrices (CSV, TSV, parquet; gzip too) in either orientation."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Literal, get_args

import pandas as pd
from anndata import AnnData

from epiformer._files import readable
from epiformer._probe_ids import probe_like_fraction
from epiformer._validation import check_choice

from ._common import Values, betas_to_anndata, check_path, numeric_frame

Orientation = Literal["auto", "cpgs_in_rows", "cpgs_in_columns"]


def _read_table(path: Path) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    try:
        if kind in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
            if (
                isinstance(frame.index, pd.RangeIndex)
                and frame.shape[1]
                and not pd.api.types.is_numeric_dtype(frame.dtypes.iloc[0])
            ):
                frame = frame.set_index(frame.columns[0])
            return frame
        sep = "," if kind == ".csv" else "\t"
        frame = pd.read_csv(path, sep=sep, index_col=0)
    except pd.errors.EmptyDataError as err:
        msg = f"{path} has no table (it is empty or holds only blank lines)."
        raise ValueError(msg) from err
    # pandas renames repeated column names ("S1", "S1.1"); restore them so duplicates are caught, not hidden
    frame.columns = _raw_header(path, sep)[1 : frame.shape[1] + 1]
    return frame


def _raw_header(path: Path, sep: str) -> list[str]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        return next(csv.reader(handle, delimiter=sep))


def read_methylation_matrix(path: str | Path, *, orientation: Orientation = "auto", values: Values = "beta") -> AnnData:
    """Read a methylation matrix from CSV, TSV or parquet (optionally gzip-compressed).

    The first column (or the parquet index) holds row names. The orientation is detected from which axis
    carries probe-like IDs (``cg00000029``, ``ch.1.1000F``, ``rs123``, ``chr1:10468``) and can be set
    explicitly for other identifiers.

    Parameters
    ----------
    path
        ``.csv``, ``.tsv`` / ``.txt`` (tab-separated) or ``.parquet`` file, ``.gz`` allowed for the text formats.
    orientation
        ``"auto"``, ``"cpgs_in_rows"`` (rows are CpGs, columns samples) or ``"cpgs_in_columns"``.
    values
        What the file holds: ``"beta"`` (validated to lie in [0, 1]) or ``"mvalue"`` (converted with
        :func:`epiformer.pp.to_beta`).

    Returns
    -------
    AnnData with obs = samples, var = CpGs and float32 beta values in `.X` (NaN = missing); the source and
    any samples without observed values are recorded in `uns['epiformer_read']`.

    Raises
    ------
    ValueError
        For an empty file, non-numeric cells, duplicated sample or probe names, no probe-like IDs on either
        axis with ``orientation="auto"``, or values outside [0, 1] with ``values="beta"``.
    """
    check_choice(orientation, get_args(Orientation), name="orientation")
    check_choice(values, get_args(Values), name="values")
    path = check_path(path)
    with readable(path, what="a methylation matrix"):
        frame = _read_table(path)
    if orientation == "auto":
        rows, cols = probe_like_fraction(frame.index), probe_like_fraction(frame.columns)
        if max(rows, cols) < 0.5:
            msg = (
                f"{path}: neither the row names nor the column names look like CpG IDs (e.g. 'cg00000029' or "
                "'chr1:10468'). Pass `orientation='cpgs_in_rows'` or `'cpgs_in_columns'` to read it anyway."
            )
            raise ValueError(msg)
        orientation = "cpgs_in_rows" if rows >= cols else "cpgs_in_columns"
    if orientation == "cpgs_in_rows":
        frame = frame.T
    return betas_to_anndata(numeric_frame(frame, source=str(path)), values=values, source=str(path))
