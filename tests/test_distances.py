from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import epiformer as ef
from epiformer._annotations import legacy_code


def _mdata(positions, chroms=None) -> md.MuData:
    genes = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "1", "chr2"],
            "start": [10_000, 30_000, 50_000, 10_000],
            "end": [20_000, 40_000, 52_000, 11_000],
            "strand": ["+", "-", "+", "-"],
        },
        index=["plus", "minus", "far", "other"],
    )
    rna = ad.AnnData(np.zeros((2, 4), dtype=np.float32), var=genes)
    methyl = ad.AnnData(np.zeros((2, len(positions)), dtype=np.float32))
    methyl.var_names = [f"c{i}" for i in range(len(positions))]
    methyl.var["chrom"] = chroms or ["chr1"] * len(positions)
    methyl.var["pos"] = positions
    return md.MuData({"rna": rna, "methyl": methyl})


def test_signed_bp_strand_aware_tss():
    mdata = _mdata([9_000, 10_000, 15_000, 39_000, 41_000])
    ef.pp.cpg_gene_distances(mdata, window=5_000)
    dist = mdata["methyl"].varm["gene_dist"]
    assert sparse.isspmatrix_csr(dist) and dist.dtype == np.float32 and dist.shape == (5, 4)
    genes = mdata["methyl"].uns["gene_dist"]["genes"]
    assert genes == ["plus", "minus", "far", "other"]
    # "+" gene: TSS = start 10,000; "-" gene: TSS = end 40,000; negative = upstream
    expected = {(0, 0): -1_000, (1, 0): 0, (2, 0): 5_000, (3, 1): 1_000, (4, 1): -1_000}
    coo = dist.tocoo()
    assert {(int(r), int(c)): float(v) for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)} == expected
    assert dist.nnz == 5  # the CpG on the TSS is an explicit 0


def test_gene_start_anchor_and_window():
    mdata = _mdata([39_000, 41_000])
    ef.pp.cpg_gene_distances(mdata, window=2_000, anchor="gene_start")
    dist = mdata["methyl"].varm["gene_dist"].toarray()
    assert dist.sum() == 0 and mdata["methyl"].varm["gene_dist"].nnz == 0  # start of "minus" is 30,000
    ef.pp.cpg_gene_distances(mdata, window=10_000, anchor="gene_start")
    # strand-blind start 30,000: the minus-strand sign flip still orients "upstream" along the gene
    np.testing.assert_array_equal(mdata["methyl"].varm["gene_dist"].toarray()[:, 1], [-9_000, 0])


def test_legacy_code_matches_published_buckets():
    offsets = np.array([0, 1, -2_000, 2_001, -4_000, 4_001, 19_999, -20_000, 20_001])
    expected = [1, 1, -1, 0.5, -0.5, 0.25, 0.5**9, -(0.5**9), 0]
    np.testing.assert_allclose(legacy_code(offsets), expected)
    mdata = _mdata([9_000, 21_000, 60_000])
    ef.pp.cpg_gene_distances(mdata, encoding="legacy_halving_2kb", anchor="gene_start")
    dist = mdata["methyl"].varm["gene_dist"]
    assert mdata["methyl"].uns["gene_dist"]["params"]["window"] == 20_000
    # CpG 9,000 vs gene_start 10,000 -> offset +1,000 (code +1); vs 30,000 -> +21,000 (beyond 20 kb)
    np.testing.assert_allclose(dist.toarray()[0], [1, 0, 0, 0])
    np.testing.assert_allclose(dist.toarray()[1], [-(0.5**5), 0.5**4, 0, 0])
    np.testing.assert_allclose(dist.toarray()[2], [0, 0, -(0.5**4), 0])  # 10 kb past the start of "far"
    with pytest.raises(ValueError, match="at most 20,000"):
        ef.pp.cpg_gene_distances(mdata, encoding="legacy_halving_2kb", window=50_000)


def test_real_hg19_genes_near_chr22_segment():
    genes = ef.datasets.hg19_genes()
    chr22 = genes[(genes["chrom"] == "chr22") & genes["start"].between(19_900_000, 21_100_000)]
    cpgs = ad.AnnData(np.zeros((1, 3), dtype=np.float32))
    cpgs.var_names = ["a", "b", "c"]
    cpgs.var["chrom"] = "chr22"
    cpgs.var["pos"] = [20_000_093, 20_500_000, 20_999_000]
    out = ef.pp.cpg_gene_distances(cpgs, genes=chr22, window=100_000, copy=True)
    dist = out.varm["gene_dist"].tocsr()
    names = out.uns["gene_dist"]["genes"]
    table = chr22.set_index("gene_name").loc[names]
    tss = np.where(table["strand"] == "+", table["start"], table["end"])
    sign = np.where(table["strand"] == "+", 1, -1)
    for row, pos in enumerate(cpgs.var["pos"]):
        near = np.flatnonzero(np.abs(pos - tss) <= 100_000)
        assert set(dist[row].indices) == set(near)
        np.testing.assert_array_equal(dist[row].toarray()[0, near], (pos - tss[near]) * sign[near])
    assert "gene_dist" not in cpgs.varm  # copy=True left the input alone


def test_errors_and_missing_coordinates():
    mdata = _mdata([9_000])
    with pytest.raises(ValueError, match="encoding"):
        ef.pp.cpg_gene_distances(mdata, encoding="inverse")
    with pytest.raises(ValueError, match="anchor"):
        ef.pp.cpg_gene_distances(mdata, anchor="middle")
    with pytest.raises(ValueError, match="pass `genes=`"):
        ef.pp.cpg_gene_distances(mdata["methyl"])
    mdata["rna"].var.loc["far", "chrom"] = np.nan
    with pytest.warns(UserWarning, match="1 of 4 genes have no coordinates.*'far'"):
        ef.pp.cpg_gene_distances(mdata)
    mdata["rna"].var.loc["far", "chrom"] = "chr1"
    mdata["rna"].var["strand"] = ["+", ".", "+", "-"]
    with pytest.raises(ValueError, match="strand"):
        ef.pp.cpg_gene_distances(mdata, window=1000)
    del mdata["methyl"].var["pos"]
    with pytest.raises(KeyError, match="pos"):
        ef.pp.cpg_gene_distances(mdata)


def test_synthetic_driver_is_within_promoter(synthetic_small):
    mdata = synthetic_small
    ef.pp.cpg_gene_distances(mdata)
    dist = mdata["methyl"].varm["gene_dist"].tocsr()
    genes = pd.Index(mdata["methyl"].uns["gene_dist"]["genes"])
    var = mdata["methyl"].var
    driven = np.flatnonzero(var["expression_driven"].to_numpy())
    assert len(driven) > 20
    for i in driven:
        j = genes.get_loc(var["driver_gene"].iloc[i])
        assert dist[i, j] == var["tss_offset"].iloc[i]
        assert -1000 <= dist[i, j] <= 500
