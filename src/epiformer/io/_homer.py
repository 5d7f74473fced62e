"""Readers for HOMER motif libraries (``.motif``) and the EpiGePT authors' motif-to-TF table.

The HOMER format (http://homer.ucsd.edu/homer/motif/creatingCustomMotifs.html): each motif starts with a
header line ``>consensus<TAB>name<TAB>log-odds threshold[<TAB>log p-value<TAB>...]``, followed by one row
per position holding the probabilities of A, C, G and T.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from epiformer._files import open_text, readable

from ._common import check_path


@dataclass(frozen=True)
class HomerMotif:
    """One motif of a HOMER library.

    Attributes
    ----------
    name
        The motif's name (second header column), e.g. ``"CTCF(Zf)/CD4+-CTCF-ChIP-Seq/Homer"``.
    consensus
        Consensus sequence (first header column, without the ``>``).
    threshold
        Log-odds detection threshold (natural log, third header column): a site is a hit where its score
        reaches it.
    probabilities
        ``(length, 4)`` read-only float64 array, columns A, C, G, T, as written in the file (not renormalised).
    """

    name: str
    consensus: str
    threshold: float
    probabilities: np.ndarray = field(repr=False)

    @property
    def length(self) -> int:
        """Number of positions."""
        return int(self.probabilities.shape[0])


def _lines(path: Path, *, what: str) -> list[str]:
    with readable(path, what=what), open_text(path) as handle:
        return handle.read().splitlines()


def read_homer_motifs(path: str | Path) -> list[HomerMotif]:
    """Read a HOMER motif file (``.motif``, optionally gzipped) into a list of :class:`HomerMotif`.

    Header fields are tab-separated (names may contain spaces); probability rows may be separated by tabs
    or spaces. Blank lines and lines starting with ``#`` are skipped.

    Parameters
    ----------
    path
        The motif file, e.g. the EpiGePT authors' ``all_motif_rmdup.motif`` or HOMER's ``known.motifs``.

    Returns
    -------
    The motifs in file order.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is empty or malformed (the message names the file and line): a header without name or
        a numeric threshold, a row that is not 4 non-negative numbers, a row before the first header or a
        motif without rows.
    """
    path = check_path(path)
    motifs: list[HomerMotif] = []
    header: tuple[str, str, float, int] | None = None
    rows: list[list[float]] = []

    def finish() -> None:
        if header is None:
            return
        consensus, name, threshold, line_no = header
        if not rows:
            msg = f"{path}, line {line_no}: motif {name!r} has no probability rows."
            raise ValueError(msg)
        probabilities = np.array(rows, dtype=np.float64)
        probabilities.setflags(write=False)
        motifs.append(HomerMotif(name=name, consensus=consensus, threshold=threshold, probabilities=probabilities))

    for line_no, raw in enumerate(_lines(path, what="a HOMER motif file"), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(">"):
            finish()
            cols = line[1:].split("\t")
            if len(cols) < 3 or not cols[1].strip():
                msg = (
                    f"{path}, line {line_no}: a HOMER motif header needs '>consensus<TAB>name<TAB>threshold' "
                    f"(tab-separated), got {line[:80]!r}."
                )
                raise ValueError(msg)
            try:
                threshold = float(cols[2])
            except ValueError:
                msg = f"{path}, line {line_no}: the log-odds threshold {cols[2]!r} is not a number."
                raise ValueError(msg) from None
            if not np.isfinite(threshold):
                msg = f"{path}, line {line_no}: the log-odds threshold {cols[2]!r} is not finite."
                raise ValueError(msg)
            header, rows = (cols[0].strip(), cols[1].strip(), threshold, line_no), []
            continue
        if header is None:
            msg = f"{path}, line {line_no}: probabilities before the first '>' motif header."
            raise ValueError(msg)
        fields = line.split()
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        if len(values) != 4 or not all(np.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
            msg = f"{path}, line {line_no}: expected 4 non-negative probabilities (A C G T), got {line[:80]!r}."
            raise ValueError(msg)
        rows.append(values)
    finish()
    if not motifs:
        msg = f"{path} holds no HOMER motif (no line starts with '>')."
        raise ValueError(msg)
    return motifs


def _mat_strings(cell: object) -> str:
    """A MATLAB cell entry (char array, possibly nested in object arrays) as a Python string."""
    while isinstance(cell, np.ndarray):
        if cell.dtype.kind in "US":
            return "".join(str(x) for x in cell.ravel())
        if cell.size != 1:
            msg = f"expected one string per cell, got an array of shape {cell.shape}"
            raise ValueError(msg)
        cell = cell.ravel()[0]
    return str(cell)


def read_motif_to_tf(path: str | Path, *, variable: str = "Match2") -> pd.DataFrame:
    """Read a motif-to-TF table: the EpiGePT authors' ``MotifMatch_human_rmdup.mat`` or a two-column TSV.

    Parameters
    ----------
    path
        A MATLAB ``.mat`` file holding an ``n x 2`` cell array (motif name, TF name), as the authors'
        ``data/motif/MotifMatch_human_rmdup.mat``; or a tab-separated text file of two columns (motif, TF).
        A first TSV row reading ``motif<TAB>tf`` (any case) is taken as a header.
    variable
        Name of the cell array inside a ``.mat`` file.

    Returns
    -------
    DataFrame with columns `motif` and `tf` (strings, surrounding spaces removed), one row per pair, in
    file order.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the ``.mat`` file lacks `variable` or it is not ``n x 2``, or a TSV row does not have 2 columns
        (the message names the line).
    """
    path = check_path(path)
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        try:
            content = loadmat(path)
        except Exception as err:  # scipy raises several types for a file that is not MATLAB
            msg = f"{path} is not a readable MATLAB file: {err}"
            raise ValueError(msg) from err
        if variable not in content:
            found = sorted(k for k in content if not k.startswith("__"))
            msg = f"{path} has no variable {variable!r} (it holds {found}); pass `variable=`."
            raise ValueError(msg)
        table = np.asarray(content[variable], dtype=object)
        if table.ndim != 2 or table.shape[1] != 2:
            msg = f"{path}: {variable!r} must be an n x 2 cell array (motif, TF), got shape {table.shape}."
            raise ValueError(msg)
        try:
            pairs = [(_mat_strings(a).strip(), _mat_strings(b).strip()) for a, b in table]
        except ValueError as err:
            msg = f"{path}: {variable!r} must hold strings (motif, TF): {err}."
            raise ValueError(msg) from None
    else:
        pairs = []
        for line_no, raw in enumerate(_lines(path, what="a motif-to-TF table"), start=1):
            if not raw.strip() or raw.startswith("#"):
                continue
            cols = [c.strip() for c in raw.split("\t")]
            if len(cols) != 2 or not cols[0] or not cols[1]:
                msg = f"{path}, line {line_no}: expected 2 tab-separated columns (motif, TF), got {raw[:80]!r}."
                raise ValueError(msg)
            if not pairs and [c.lower() for c in cols] == ["motif", "tf"]:
                continue
            pairs.append((cols[0], cols[1]))
    if not pairs:
        msg = f"{path} holds no (motif, TF) pair."
        raise ValueError(msg)
    return pd.DataFrame(pairs, columns=["motif", "tf"])
