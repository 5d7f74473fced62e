from __future__ import annotations

import gzip
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import epiformer as ef


def test_series_matrix_excerpt():
    adata = ef.io.read_geo_series_matrix(ef.datasets.geo_series_matrix_example())
    assert adata.shape == (5, 37)
    assert list(adata.obs_names) == [f"GSM100966{i}" for i in range(5)]
    assert pd.api.types.is_numeric_dtype(adata.obs["age"])
    assert adata.obs["age"].tolist() == [32, 24, 65, 25, 32]
    assert isinstance(adata.obs["gender"].dtype, pd.CategoricalDtype)
    assert adata.obs["gender"].tolist() == ["Male", "Male", "Male", "Male", "Female"]
    # a characteristic present for only some samples: NaN elsewhere, categorical
    assert adata.obs["cancer type (icd-10)"].isna().tolist() == [True, True, False, True, False]
    # other !Sample_* fields
    assert adata.obs["source_name_ch1"].iloc[0] == "whole blood 6"
    assert "contact_zip_postal_code" in adata.obs  # "/" is not allowed in .h5ad keys
    assert adata.uns["geo_series"]["geo_accession"] == "GSE41169"
    assert adata.X[0, 0] == pytest.approx(0.4549308)
    assert adata.X.dtype == np.float32


def test_series_matrix_gz_and_roundtrip(tmp_path):
    src = ef.datasets.geo_series_matrix_example()
    with open(src, "rb") as fin, gzip.open(tmp_path / "x_series_matrix.txt.gz", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    adata = ef.io.read_geo_series_matrix(tmp_path / "x_series_matrix.txt.gz")
    assert adata.shape == (5, 37)
    assert "contact_zip_postal_code" in adata.uns["geo_series"]  # "/" separates groups in .h5ad files
    adata.write_h5ad(tmp_path / "x.h5ad")  # every obs column and uns entry is writable
    back = ad.read_h5ad(tmp_path / "x.h5ad")
    assert back.uns["geo_series"]["contact_zip_postal_code"] == adata.uns["geo_series"]["contact_zip_postal_code"]


def test_series_matrix_without_table(tmp_path):
    text = ef.datasets.geo_series_matrix_example().read_text()
    head = text.split("!series_matrix_table_begin")[0]
    (tmp_path / "n.txt").write_text(head + "!series_matrix_table_begin\n!series_matrix_table_end\n")
    with pytest.raises(ValueError, match="holds no rows"):
        ef.io.read_geo_series_matrix(tmp_path / "n.txt")
    (tmp_path / "bad.txt").write_text("hello\tworld\n")
    with pytest.raises(ValueError, match="GEO series matrix"):
        ef.io.read_geo_series_matrix(tmp_path / "bad.txt")


def test_series_matrix_null_values(tmp_path):
    text = ef.datasets.geo_series_matrix_example().read_text()
    text = text.replace('"cg00000029"\t0.4549308', '"cg00000029"\tnull')
    (tmp_path / "n.txt").write_text(text)
    adata = ef.io.read_geo_series_matrix(tmp_path / "n.txt")
    assert np.isnan(adata[0, "cg00000029"].X[0, 0])
