from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.special import logit

import epiformer as ef


def test_blood_gse41169(blood):
    assert blood.shape == (10, 20000)
    assert blood.X.dtype == np.float32
    assert blood.obs["age"].iloc[:5].tolist() == [32, 24, 65, 25, 32]
    assert blood.obs["age"].iloc[5:].isna().all()
    assert blood.obs["sex"].iloc[:5].tolist() == ["male"] * 4 + ["female"]
    assert blood.obs["disease"].iloc[0] == "schizophrenia"
    assert np.nanmin(blood.X) >= 0 and np.nanmax(blood.X) <= 1


def test_pbmc_small():
    adata = ef.datasets.pbmc_small()
    assert adata.shape == (80, 230)
    assert sparse.issparse(adata.layers["counts"])
    counts = adata.layers["counts"].toarray()
    assert (counts >= 0).all() and np.allclose(counts, np.round(counts))
    assert adata.var.loc["MS4A1", ["chrom", "start", "strand"]].tolist() == ["chr11", 60223225, "+"]
    assert "RNA_snn_res.1" in adata.obs


def test_visium_small():
    adata = ef.datasets.visium_small()
    assert adata.shape == (100, 100)
    assert adata.obsm["spatial"].shape == (100, 2)
    assert "spatial" in adata.uns and len(adata.uns["spatial"]) == 1
    images = next(iter(adata.uns["spatial"].values()))["images"]
    assert {name: image.dtype for name, image in images.items()} == {"hires": np.uint8, "lowres": np.uint8}
    assert images["lowres"].shape == (600, 600, 3) and images["lowres"].max() == 193  # the PNG's values
    assert adata.layers["counts"].sum() == adata.X.sum() > 0


def test_genome_tables_and_segment():
    genes = ef.datasets.hg19_genes()
    assert genes.shape == (57820, 6)
    assert list(genes.columns) == ["gene_name", "chrom", "start", "end", "strand", "gene_type"]
    islands = ef.datasets.hg19_cpg_islands()
    assert islands.shape == (30344, 3)
    seg = ef.datasets.hg19_chr22_segment()
    assert seg.fasta.is_file() and seg.fasta.with_suffix(".fa.fai").is_file()
    assert (seg.chrom, seg.start, seg.end, seg.build) == ("22", 20_000_001, 21_000_000, "hg19")


def test_synthetic_methylome_ground_truth():
    adata = ef.datasets.synthetic_methylome(400, 600, n_tissues=3, missing_rate=0.05, random_state=3)
    assert adata.shape == (400, 600)
    assert adata.var_names.is_unique and adata.var_names.str.match(r"^cg\d{8}$").all()
    assert list(adata.var_names) == sorted(adata.var_names)
    assert set(adata.obs["tissue"].cat.categories) == {"blood", "buccal", "liver"}
    missing = np.isnan(adata.X).mean()
    assert 0.04 < missing < 0.06
    # age-linked CpGs: the fitted logit slope recovers the planted slope
    age_cpgs = np.flatnonzero(adata.var["effect"] == "age")[:10]
    age = adata.obs["age"].to_numpy()
    for j in age_cpgs:
        y = logit(np.clip(adata.X[:, j], 1e-6, 1 - 1e-6))
        ok = ~np.isnan(y)
        slope = np.polyfit(age[ok], y[ok], 1)[0]
        assert slope == pytest.approx(adata.var["age_slope"].iloc[j], abs=0.01)
    assert (adata.var.loc[adata.var["effect"] != "age", "age_slope"] == 0).all()
    # a tissue CpG separates its tissue from the others by about its planted effect
    j = np.flatnonzero(adata.var["effect"] == "tissue")[0]
    in_tissue = (adata.obs["tissue"] == adata.var["tissue"].iloc[j]).to_numpy()
    y = logit(np.clip(adata.X[:, j], 1e-6, 1 - 1e-6))
    diff = np.nanmean(y[in_tissue]) - np.nanmean(y[~in_tissue])
    assert diff == pytest.approx(adata.var["tissue_effect"].iloc[j], abs=0.4)


def test_synthetic_methylome_seeded_and_validated():
    a = ef.datasets.synthetic_methylome(50, 100, random_state=7)
    b = ef.datasets.synthetic_methylome(50, 100, random_state=7)
    c = ef.datasets.synthetic_methylome(50, 100, random_state=8)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(np.nan_to_num(a.X), np.nan_to_num(c.X))
    pd.testing.assert_frame_equal(a.var, b.var)
    with pytest.raises(ValueError, match="n_tissues"):
        ef.datasets.synthetic_methylome(10, 10, n_tissues=0)
    with pytest.raises(ValueError, match="fractions"):
        ef.datasets.synthetic_methylome(10, 10, frac_age=0.8, frac_tissue=0.5)


def test_imr90_wgbs_is_real_cpg_counts_on_the_bundled_segment():
    imr = ef.datasets.imr90_wgbs_chr22()
    assert imr.shape == (2, 12_914) and imr.X is None
    assert sparse.issparse(imr.layers["cov"]) and imr.layers["cov"].dtype == np.int32
    first = imr[:, "chr22:20000093"]
    assert first.layers["mc"].toarray().ravel().tolist() == [6, 5]  # M_r1, M_r2 of the source table
    assert first.layers["cov"].toarray().ravel().tolist() == [8, 7]
    genome = ef.io.Genome.open(ef.datasets.hg19_chr22_segment())
    codes = genome.codes("chr22")
    idx = imr.var["pos"].to_numpy() - genome.bounds("chr22")[0]
    on_cpg = (codes[idx] == 1) & (codes[idx + 1] == 2)
    assert on_cpg.mean() >= 0.99
    beta = ef.datasets.imr90_wgbs_chr22(beta=True).X
    assert beta[0, 0] == np.float32(6 / 8) and np.isnan(beta).sum() == (imr.layers["cov"].toarray() == 0).sum()
