"""`ef.pp.vocab_coverage`: exact counts on a hand-made vocabulary, EPICv2 suffixes, NaN per sample, no changes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse

import epiformer as ef
from epiformer.models import EpiGePT, MethylGPT, MethylGPTVocab

VOCAB = ["cg00000001", "cg00000002", "cg00000003", "cg00000004", "ch.1.100F"]
NAN = np.nan


def _data() -> AnnData:
    """3 samples x 6 CpGs: 3 vocabulary CpGs (one by two EPICv2 replicates), 2 outside it."""
    names = ["cg00000001", "cg00000002_TC21", "cg00000002_BC21", "ch.1.100F", "cg99999999", "cg88888888_TC11"]
    X = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # all observed: 3 vocabulary CpGs
            [NAN, NAN, 0.3, NAN, 0.5, 0.6],  # cg00000002 by its second replicate only: 1
            [NAN, NAN, NAN, NAN, 0.5, NAN],  # no vocabulary CpG observed: 0
        ],
        dtype=np.float32,
    )
    adata = AnnData(X, obs=pd.DataFrame(index=["s1", "s2", "s3"]), var=pd.DataFrame(index=names))
    adata.var["probe"] = names
    adata.var_names = [f"v{i}" for i in range(len(names))]
    adata.layers["betas"] = X.copy()
    return adata


def _snapshot(adata: AnnData) -> tuple:
    return adata.X.copy(), adata.obs.copy(), adata.var.copy(), dict(adata.uns), list(adata.layers)


def _check(cov: dict) -> None:
    assert {k: cov[k] for k in ("n_vocab", "n_found", "n_unused", "n_suffixed")} == {
        "n_vocab": 5,
        "n_found": 3,
        "n_unused": 2,
        "n_suffixed": 3,
    }
    assert cov["fraction_found"] == pytest.approx(3 / 5)
    per_sample = cov["per_sample"]
    assert list(per_sample.index) == ["s1", "s2", "s3"]
    assert per_sample["n_vocab_observed"].tolist() == [3, 1, 0]
    np.testing.assert_allclose(per_sample["fraction_vocab_observed"], [0.6, 0.2, 0.0])


def test_exact_counts_with_var_key_suffixes_and_nan():
    adata = _data()
    before = _snapshot(adata)
    _check(ef.pp.vocab_coverage(adata, MethylGPTVocab.from_probes(VOCAB), var_key="probe"))
    after = _snapshot(adata)
    np.testing.assert_array_equal(after[0], before[0])
    pd.testing.assert_frame_equal(after[1], before[1])
    pd.testing.assert_frame_equal(after[2], before[2])
    assert after[3:] == before[3:], "the report changed the data"


@pytest.mark.parametrize("kind", ["model", "vocab", "list", "index"])
def test_model_vocab_or_probe_list(kind):
    vocab = MethylGPTVocab.from_probes(VOCAB)
    model = {
        "model": lambda: MethylGPT(vocab, d_model=16, n_layers=1, n_heads=2),
        "vocab": lambda: vocab,
        "list": lambda: list(VOCAB),
        "index": lambda: pd.Index(VOCAB),
    }[kind]()
    _check(ef.pp.vocab_coverage(_data(), model, var_key="probe"))


def test_layer_sparse_and_mudata():
    adata = _data()
    adata.X = np.zeros_like(adata.X)  # .X fully observed: the layer must be the one read
    assert ef.pp.vocab_coverage(adata, VOCAB, var_key="probe")["per_sample"]["n_vocab_observed"].tolist() == [3] * 3
    _check(ef.pp.vocab_coverage(adata, VOCAB, var_key="probe", layer="betas"))
    packed = _data()
    packed.X = sparse.csr_matrix(np.nan_to_num(packed.X, nan=0.0))  # implicit zeros: beta 0, or missing?
    with pytest.raises(TypeError, match="sparse matrix"):
        ef.pp.vocab_coverage(packed, VOCAB, var_key="probe")
    mdata = md.MuData({"methyl": _data(), "rna": AnnData(np.zeros((3, 2), dtype=np.float32))})
    _check(ef.pp.vocab_coverage(mdata, VOCAB, var_key="probe"))
    with pytest.raises(KeyError, match="no_such_layer"):
        ef.pp.vocab_coverage(_data(), VOCAB, layer="no_such_layer")
    with pytest.raises(KeyError, match="not_a_column"):
        ef.pp.vocab_coverage(_data(), VOCAB, var_key="not_a_column")


def test_no_overlap_is_reported_not_refused():
    adata = AnnData(np.ones((2, 2), dtype=np.float32), var=pd.DataFrame(index=["cg12345678", "cg23456789"]))
    cov = ef.pp.vocab_coverage(adata, VOCAB)
    assert (cov["n_found"], cov["fraction_found"], cov["n_unused"], cov["n_suffixed"]) == (0, 0.0, 2, 0)
    assert cov["per_sample"]["n_vocab_observed"].tolist() == [0, 0]


def test_agrees_with_align_to_vocab_after_harmonizing():
    adata = _data()
    adata.var_names = adata.var["probe"].to_numpy()
    aligned = ef.pp.align_to_vocab(ef.pp.harmonize_probes(adata), VOCAB)
    cov = ef.pp.vocab_coverage(adata, VOCAB)
    assert aligned.uns["vocab_coverage"] == {k: cov[k] for k in aligned.uns["vocab_coverage"]}
    observed = (~np.isnan(aligned.X)).sum(axis=1)
    assert cov["per_sample"]["n_vocab_observed"].tolist() == observed.tolist()


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: EpiGePT(), id="EpiGePT"),
        pytest.param(lambda: "cg00000001", id="str"),
        pytest.param(lambda: object(), id="object"),
        pytest.param(lambda: 3, id="int"),
    ],
)
def test_not_a_methylation_model_is_a_type_error(model):
    with pytest.raises(TypeError, match="CpG vocabulary"):
        ef.pp.vocab_coverage(_data(), model())


def test_not_data_is_a_type_error():
    with pytest.raises(TypeError, match="AnnData or a MuData"):
        ef.pp.vocab_coverage(pd.DataFrame(np.ones((2, 2))), VOCAB)


def test_table_script(tmp_path, capsys):
    """The docs' table script counts a vocab.json against parquet, CSV and one-ID-a-line lists."""
    spec = importlib.util.spec_from_file_location(
        "vocab_coverage_table", Path(__file__).parents[1] / "benchmarks" / "vocab_coverage_table.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(["<pad>", "<cls>", "<eoc>", *VOCAB])}))
    pd.DataFrame({"IlmnID": ["cg00000001_TC21", "cg00000001_BC21", "cg00000002_TC21", "cg77777777_TC21"]}).to_parquet(
        tmp_path / "v2.parquet"
    )
    (tmp_path / "list.txt").write_text("cg00000001\ncg00000003\nch.1.100F\n")
    pd.DataFrame({"Name": ["cg00000004", "cg66666666"], "CHR": ["1", "2"]}).to_csv(tmp_path / "m.csv", index=False)
    text = script.main(
        [
            "--vocab",
            str(vocab),
            "--list",
            f"v2={tmp_path / 'v2.parquet'}",
            "--list",
            f"txt={tmp_path / 'list.txt'}",
            "--list",
            f"csv={tmp_path / 'm.csv'}",
        ]
    )
    assert "5 CpGs (4 `cg`, 1 other)" in text
    assert "| v2 | 4 | 3 | 2 | 40.0 | 1 |" in text
    assert "| txt | 3 | 3 | 3 | 60.0 | 0 |" in text
    assert "| csv | 2 | 2 | 1 | 20.0 | 1 |" in text
    assert text in capsys.readouterr().out
