from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

import epiformer as ef


def _frame(rows: int = 4, cols: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.uniform(0, 1, (rows, cols)),
        index=pd.Index([f"cg{i:08d}" for i in range(rows)], name="ID_REF"),
        columns=[f"GSM{i}" for i in range(cols)],
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz", ".txt.gz", ".parquet"])
def test_cpgs_in_rows_detected(tmp_path, suffix):
    frame = _frame()
    path = tmp_path / f"m{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="," if ".csv" in suffix else "\t")
    adata = ef.io.read_methylation_matrix(path)
    assert adata.shape == (3, 4)
    assert list(adata.obs_names) == ["GSM0", "GSM1", "GSM2"]
    assert adata.X.dtype == np.float32
    np.testing.assert_allclose(adata.X, frame.T.to_numpy(), rtol=1e-6)


def test_cpgs_in_columns_and_override(tmp_path):
    frame = _frame().T
    frame.to_csv(tmp_path / "m.csv")
    adata = ef.io.read_methylation_matrix(tmp_path / "m.csv")
    assert adata.shape == (3, 4) and adata.var_names[0] == "cg00000000"
    # identifiers without a probe pattern: explicit orientation reads them
    other = _frame()
    other.index = [f"site{i}" for i in range(4)]
    other.to_csv(tmp_path / "o.csv")
    with pytest.raises(ValueError, match="orientation="):
        ef.io.read_methylation_matrix(tmp_path / "o.csv")
    forced = ef.io.read_methylation_matrix(tmp_path / "o.csv", orientation="cpgs_in_rows")
    assert list(forced.var_names) == ["site0", "site1", "site2", "site3"]


def test_mvalues_rejected_or_converted(tmp_path):
    frame = np.log2(_frame() / (1 - _frame()))
    frame.to_csv(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="ef.pp.to_beta"):
        ef.io.read_methylation_matrix(tmp_path / "m.csv")
    adata = ef.io.read_methylation_matrix(tmp_path / "m.csv", values="mvalue")
    np.testing.assert_allclose(adata.X, _frame().T.to_numpy(), atol=1e-5)


def test_options_are_checked_before_the_file_is_read(tmp_path):
    with pytest.raises(ValueError, match="`orientation` must be 'auto', 'cpgs_in_rows' or 'cpgs_in_columns'"):
        ef.io.read_methylation_matrix(tmp_path / "absent.csv", orientation="rows")
    with pytest.raises(ValueError, match="`values` must be 'beta' or 'mvalue', got 'm'"):
        ef.io.read_methylation_matrix(tmp_path / "absent.csv", values="m")
    with pytest.raises(ValueError, match="`values` must be 'beta' or 'mvalue', got 'm'"):
        ef.io.read_geo_series_matrix(tmp_path / "absent_series_matrix.txt", values="m")


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        ef.io.read_methylation_matrix(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("ID_REF,GSM1\n")
    with pytest.raises(ValueError, match="no data|CpG IDs"):
        ef.io.read_methylation_matrix(tmp_path / "h.csv", orientation="cpgs_in_rows")


def test_non_numeric_cells_listed(tmp_path):
    frame = _frame().astype(object)
    frame.iloc[1, 2] = "failed"
    frame.to_csv(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="non-numeric.*failed"):
        ef.io.read_methylation_matrix(tmp_path / "m.csv")


def test_duplicated_names(tmp_path):
    frame = _frame()
    frame.columns = ["GSM0", "GSM1", "GSM0"]
    frame.to_csv(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="Duplicated sample names: 'GSM0'"):
        ef.io.read_methylation_matrix(tmp_path / "m.csv")
    frame = _frame()
    frame.index = ["cg00000001", "cg00000001", "cg00000002", "cg00000003"]
    with gzip.open(tmp_path / "d.tsv.gz", "wt") as handle:
        frame.to_csv(handle, sep="\t")
    with pytest.raises(ValueError, match="Duplicated probe IDs: 'cg00000001'"):
        ef.io.read_methylation_matrix(tmp_path / "d.tsv.gz")


def test_all_missing_sample_warned_and_kept(tmp_path):
    frame = _frame()
    frame["GSM1"] = np.nan
    frame.to_csv(tmp_path / "m.csv")
    with pytest.warns(UserWarning, match="1 samples have no observed value.*GSM1"):
        adata = ef.io.read_methylation_matrix(tmp_path / "m.csv")
    assert adata.n_obs == 3
    assert list(adata.uns["epiformer_read"]["all_missing_samples"]) == ["GSM1"]


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        ef.io.read_methylation_matrix("does/not/exist.csv")


def test_real_blood_parquet():
    path = ef.datasets._real.DATA / "GSE41169_blood_betas_20k.parquet"
    adata = ef.io.read_methylation_matrix(path)
    assert adata.shape == (10, 20000)
    assert adata.obs_names[0] == "GSM1009660" and adata.var_names[0] == "cg00000029"
    expected = pd.read_parquet(path).loc["cg00000029", "GSM1009660"]
    assert float(adata[0, "cg00000029"].X[0, 0]) == pytest.approx(expected, abs=1e-6)
