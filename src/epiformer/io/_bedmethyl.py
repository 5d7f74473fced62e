"""Reader for per-sample sequencing methylation calls: bedMethyl (ENCODE, modkit) and Bismark coverage files."""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from epiformer._constants import Key
from epiformer._validation import check_unique, first_items, warn_all_missing_rows

from ._common import check_path

_FORMATS = {6: "bismark", 11: "bedmethyl"}


def _header_lines(path: Path) -> int:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    n = 0
    with opener(path, "rt") as handle:
        for line in handle:
            if not (line.startswith(("track", "browser", "#")) or not line.strip()):
                break
            n += 1
    return n


def _read_calls(path: Path, modification: str) -> pd.DataFrame:
    """One file as a frame with columns chrom, pos (1-based C), methylated, coverage."""
    try:
        raw = pd.read_csv(path, sep=r"\s+", header=None, skiprows=_header_lines(path), dtype={0: str})
    except pd.errors.EmptyDataError as err:
        msg = f"{path} holds no methylation calls."
        raise ValueError(msg) from err
    n_cols = raw.shape[1]
    kind = _FORMATS.get(n_cols, "modkit" if n_cols >= 18 else None)
    if kind is None:
        msg = (
            f"{path}: {n_cols} columns; expected a Bismark coverage file (6 columns), an ENCODE bedMethyl "
            "file (11 columns) or a modkit bedMethyl file (18 columns)."
        )
        raise ValueError(msg)
    if kind == "bismark":  # chrom, start (1-based), end, percent, count methylated, count unmethylated
        meth, unmeth = raw[4], raw[5]
        frame = pd.DataFrame({"chrom": raw[0], "pos": raw[1], "methylated": meth, "coverage": meth + unmeth})
    elif kind == "bedmethyl":  # ..., 9: read count, 10: percent methylated; 0-based start
        coverage = raw[9]
        frame = pd.DataFrame(
            {
                "chrom": raw[0],
                "pos": raw[1] + 1,
                "methylated": np.rint(coverage * raw[10] / 100.0),
                "coverage": coverage,
            }
        )
    else:  # modkit: 3: modification code, 9: valid coverage, 11: modified count; 0-based start
        raw = raw[raw[3].astype(str) == modification]
        frame = pd.DataFrame({"chrom": raw[0], "pos": raw[1] + 1, "methylated": raw[11], "coverage": raw[9]})
    for col in ("pos", "methylated", "coverage"):
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any():
            msg = f"{path}: non-numeric values in the {col} column (first at line {int(values.isna().argmax()) + 1})."
            raise ValueError(msg)
        frame[col] = values.astype(np.int64)
    if (frame[["methylated", "coverage"]] < 0).any().any() or (frame["methylated"] > frame["coverage"]).any():
        msg = f"{path}: negative counts or more methylated reads than reads covering a site."
        raise ValueError(msg)
    keys = frame["chrom"] + ":" + frame["pos"].astype(str)
    if keys.duplicated().any():
        msg = f"{path}: sites listed more than once: {first_items(list(keys[keys.duplicated()]))}."
        raise ValueError(msg)
    return frame


def _natural(chrom: str) -> tuple:
    name = re.sub(r"^chr", "", chrom)
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def read_bedmethyl(
    paths: str | Path | Sequence[str | Path], *, sample_names: Sequence[str] | None = None, modification: str = "m"
) -> AnnData:
    """Read per-sample methylation calls from sequencing into one samples x CpGs AnnData.

    Accepts ENCODE bedMethyl (11 columns, 0-based starts), modkit bedMethyl (18 columns; rows of one
    modification code are kept) and Bismark coverage files (6 columns, 1-based), gzip allowed. Sites are
    the union over samples; a site a sample does not cover has coverage 0 and a missing beta.

    Parameters
    ----------
    paths
        One file per sample.
    sample_names
        Names of the samples, in the order of `paths`; default: the file names without extensions.
    modification
        For modkit files, the modification code to keep (``"m"`` = 5mC, ``"h"`` = 5hmC).

    Returns
    -------
    AnnData with obs = samples, var = sites named ``chrom:pos`` with columns `chrom` and `pos` (1-based
    position of the C), in genome order; layers `methylated` and `coverage` (sparse integer counts) and
    `.X` = methylated / coverage (float32, NaN where coverage is 0).
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        msg = "`paths` is empty: pass one file per sample."
        raise ValueError(msg)
    paths = [check_path(p) for p in paths]
    if sample_names is None:
        sample_names = [p.name.split(".")[0] for p in paths]
    if len(sample_names) != len(paths):
        msg = f"{len(sample_names)} sample names for {len(paths)} files."
        raise ValueError(msg)
    check_unique(list(sample_names), what="sample names")

    frames = [_read_calls(p, modification).assign(sample=i) for i, p in enumerate(paths)]
    calls = pd.concat(frames, ignore_index=True)
    sites = calls[["chrom", "pos"]].drop_duplicates()
    rank = {c: i for i, c in enumerate(sorted(sites["chrom"].unique(), key=_natural))}
    sites = sites.assign(rank=sites["chrom"].map(rank)).sort_values(["rank", "pos"])
    names = pd.Index(sites["chrom"] + ":" + sites["pos"].astype(str))
    col = names.get_indexer(calls["chrom"] + ":" + calls["pos"].astype(str))
    shape = (len(paths), len(names))

    def counts(values: pd.Series) -> sparse.csr_matrix:
        return sparse.csr_matrix((values.to_numpy(np.int32), (calls["sample"].to_numpy(), col)), shape=shape)

    methylated, coverage = counts(calls["methylated"]), counts(calls["coverage"])
    with np.errstate(invalid="ignore", divide="ignore"):
        X = (methylated.toarray() / coverage.toarray()).astype(np.float32)
    X[coverage.toarray() == 0] = np.nan
    var = pd.DataFrame({Key.var.chrom: sites["chrom"].to_numpy(), Key.var.pos: sites["pos"].to_numpy()}, index=names)
    adata = AnnData(X=X, obs=pd.DataFrame(index=pd.Index(sample_names, dtype=str)), var=var)
    adata.layers[Key.layers.methylated] = methylated
    adata.layers[Key.layers.coverage] = coverage
    all_missing = warn_all_missing_rows(X, adata.obs_names)
    adata.uns[Key.uns.read] = {
        "source": [str(p) for p in paths],
        "values": "beta",
        "all_missing_samples": np.asarray(all_missing, str),
    }
    return adata
