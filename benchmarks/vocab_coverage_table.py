"""How many of the MethylGPT vocabulary CpGs each array measures: a markdown table from public files.

Nothing is downloaded here; pass the files' paths. Where each comes from (docs/pretrained.md says the same):

- the vocabulary: ``vocab.json`` of the authors' repository, ``albert-ying/MethylGPT`` at commit 7e82fcc,
  ``pretrained_models/dev_pretraining_test-dataset_CpGs_type3-preprocessing_False-Sep26-10-27/vocab.json``;
- EPICv2: ``epicv2io/resources/peters_epicv2_manifest.parquet`` in the ``epicv2-io`` 1.0.5 wheel (PyPI; the Peters
  et al. 2024 EPICv2 manifest, column ``IlmnID``), ``pip download epicv2-io==1.0.5 --no-deps`` and unzip.

Any other probe list: a parquet / CSV / TSV (optionally gzipped) with a probe-ID column (``IlmnID``, ``Name``,
``Probe_ID``, ``probe_id``, ``illumina_probe_id``, ``Probe``, ``CpG`` or ``id``) or the IDs as its index (a CpGs x samples
matrix), or a text file with one ID a line.

Usage::

    python benchmarks/vocab_coverage_table.py --vocab /tmp/vocab.json \\
        --list "EPICv2 (epicv2-io 1.0.5, Peters et al. 2024)=/tmp/peters_epicv2_manifest.parquet"
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

import epiformer as ef
from epiformer.models import MethylGPTVocab

ID_COLUMNS = ("IlmnID", "Name", "Probe_ID", "probe_id", "illumina_probe_id", "Probe", "CpG", "id")


def read_probe_list(path: Path) -> pd.Index:
    """The probe IDs of a public list, in file order (duplicates kept: they are counted, not hidden)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pd.read_parquet(path)
    else:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt") as fh:
            first = fh.readline()
        sep = "\t" if "\t" in first else ","
        if not any(c in first.replace('"', "").strip().split(sep) for c in ID_COLUMNS):
            return pd.Index(pd.read_csv(path, header=None, sep=sep).iloc[:, 0].astype(str))
        table = pd.read_csv(path, sep=sep, dtype=str, low_memory=False)
    column = next((c for c in ID_COLUMNS if c in table.columns), None)
    if column is None and not isinstance(table.index, pd.RangeIndex):
        return pd.Index(table.index.astype(str))  # a CpGs x samples matrix: the IDs are its index
    if column is None:
        msg = f"{path}: no probe-ID column; expected one of {ID_COLUMNS}, found {list(table.columns)[:10]}."
        raise ValueError(msg)
    return pd.Index(table[column].dropna().astype(str))


def coverage_row(label: str, probes: pd.Index, vocab: MethylGPTVocab) -> dict[str, object]:
    """One row of the table, counted by `ef.pp.vocab_coverage` (suffixes collapsed, replicates counted once)."""
    var = pd.DataFrame({"probe": probes.to_numpy()}, index=pd.RangeIndex(len(probes)).astype(str))
    empty = AnnData(np.zeros((0, len(probes)), dtype=np.float32), var=var)
    cov = ef.pp.vocab_coverage(empty, vocab, var_key="probe")
    return {
        "array (probe list)": label,
        "probe IDs in the list": f"{len(probes):,}",
        "distinct CpG IDs (suffixes collapsed)": f"{cov['n_found'] + cov['n_unused']:,}",
        "vocabulary CpGs measured": f"{cov['n_found']:,}",
        "% of the vocabulary": f"{100 * cov['fraction_found']:.1f}",
        "measured CpGs outside the vocabulary": f"{cov['n_unused']:,}",
    }


def markdown(rows: list[dict[str, object]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=Path, required=True, help="the authors' vocab.json")
    parser.add_argument(
        "--list",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a public probe list and the label of its row; repeat for each array",
    )
    args = parser.parse_args(argv)
    vocab = MethylGPTVocab.from_json(args.vocab)
    n_cg = int(vocab.probes.str.startswith("cg").sum())
    rows = []
    for item in args.list:
        label, sep, path = item.rpartition("=")
        if not sep:
            parser.error(f"--list takes LABEL=PATH, got {item!r}")
        rows.append(coverage_row(label, read_probe_list(Path(path)), vocab))
    text = (
        f"MethylGPT vocabulary: {len(vocab.probes):,} CpGs ({n_cg:,} `cg`, {len(vocab.probes) - n_cg:,} other), "
        f"from {args.vocab.name}.\n\n"
    )
    text += markdown(rows) if rows else "(no probe list given)"
    print(text)
    return text


if __name__ == "__main__":
    main()
