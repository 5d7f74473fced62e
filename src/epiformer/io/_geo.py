"""Reader for GEO series matrix files (``GSEnnnn_series_matrix.txt[.gz]``)."""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
from anndata import AnnData

from epiformer._constants import Key
from epiformer._files import readable
from epiformer._validation import check_choice

from ._common import Values, betas_to_anndata, check_path, numeric_frame

_MISSING = {"", "null", "NA", "NaN", "nan", "N/A"}


def _typed(values: list[str | None]) -> pd.Series:
    """Numeric where every present value parses as a number, categorical otherwise."""
    series = pd.Series([np.nan if v is None or v.strip() in _MISSING else v.strip() for v in values], dtype=object)
    numeric = pd.to_numeric(series, errors="coerce")
    if series.notna().any() and numeric.notna().sum() == series.notna().sum():
        return numeric
    return series.astype("category")


def _storable(name: str) -> str:
    """`name` with ``/`` (the group separator of .h5ad / .zarr files) replaced, so it can be a column or `uns` key."""
    return name.replace("/", "_")


def _parse_header(lines: list[list[str]]) -> tuple[dict[str, object], dict[str, list[str | None]], list[str]]:
    series: dict[str, list[str]] = defaultdict(list)
    fields: dict[str, list[list[str]]] = defaultdict(list)
    characteristics: list[list[str]] = []
    for row in lines:
        tag, cells = row[0], row[1:]
        if tag.startswith("!Series_"):
            series[tag.removeprefix("!Series_")].append("\t".join(cells))
        elif tag == "!Sample_characteristics_ch1":
            characteristics.append(cells)
        elif tag.startswith("!Sample_"):
            fields[tag.removeprefix("!Sample_")].append(cells)
    if "geo_accession" not in fields:
        msg = "No `!Sample_geo_accession` line: this does not look like a GEO series matrix file."
        raise ValueError(msg)
    samples = fields.pop("geo_accession")[0]
    columns: dict[str, list[str | None]] = {}
    for name, rows in fields.items():
        columns[name] = ["; ".join(r[i] for r in rows if i < len(r) and r[i]) for i in range(len(samples))]
    keyed: dict[str, list[str | None]] = defaultdict(lambda: [None] * len(samples))
    for cells in characteristics:
        for i, cell in enumerate(cells[: len(samples)]):
            if ":" in cell:
                key, value = cell.split(":", 1)
                key = key.strip() if key.strip() not in columns else f"{key.strip()}_characteristic"
                keyed[key][i] = value.strip()
    columns.update(keyed)
    columns = {_storable(name): vals for name, vals in columns.items()}
    meta = {_storable(k): v[0] if len(v) == 1 else v for k, v in series.items()}
    return meta, columns, samples


def read_geo_series_matrix(path: str | Path, *, values: Values = "beta") -> AnnData:
    """Read a GEO series matrix file: the methylation table and every sample annotation.

    Parameters
    ----------
    path
        A ``*_series_matrix.txt`` or ``*_series_matrix.txt.gz`` file as served by GEO.
    values
        What the table holds: ``"beta"`` (validated to lie in [0, 1]) or ``"mvalue"`` (converted with
        :func:`epiformer.pp.to_beta`).

    Returns
    -------
    AnnData with obs = samples (GSM accessions), var = CpGs (`ID_REF`), float32 betas in `.X`. `obs` holds
    one column per ``!Sample_characteristics_ch1`` key (``"age: 32"`` -> column `age`), numeric where every
    value parses as a number and categorical otherwise, and one column per other ``!Sample_*`` field
    (``!Sample_title`` -> `title`). The ``!Series_*`` fields are in `uns['geo_series']`.
    """
    check_choice(values, get_args(Values), name="values")
    path = check_path(path)
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    header: list[list[str]] = []
    table: list[str] = []
    with (
        readable(path, what="a GEO series matrix"),
        opener(path, "rt", encoding="utf-8", errors="replace", newline="") as handle,
    ):
        in_table = False
        for line in handle:
            if line.startswith("!series_matrix_table_begin"):
                in_table = True
            elif line.startswith("!series_matrix_table_end"):
                in_table = False
            elif in_table:
                table.append(line)
            elif line.startswith("!"):
                header.append(next(csv.reader([line.rstrip("\r\n")], delimiter="\t")))
    meta, columns, samples = _parse_header(header)
    if len(table) < 2:
        msg = f"{path}: the series matrix table (between `!series_matrix_table_begin` and `_end`) holds no rows."
        raise ValueError(msg)
    frame = pd.read_csv(io.StringIO("".join(table)), sep="\t", index_col=0, na_values=sorted(_MISSING), quotechar='"')
    frame.index = frame.index.astype(str)
    missing = sorted(set(frame.columns) - set(samples))
    if missing:
        msg = f"{path}: table columns {missing[:5]} have no `!Sample_geo_accession` entry."
        raise ValueError(msg)
    adata = betas_to_anndata(numeric_frame(frame.T, source=str(path)), values=values, source=str(path))
    obs = pd.DataFrame({name: _typed(vals) for name, vals in columns.items()})
    obs.index = pd.Index(samples, dtype=str)
    adata.obs = obs.loc[adata.obs_names]
    adata.uns[Key.uns.geo_series] = meta
    return adata
