from __future__ import annotations

import gzip
from functools import cache

import mudata as md
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse

import epiformer as ef
from epiformer._sites import counts_anndata

# seven sites: a CpG read on both strands (chr1:5 +, chr1:6 -), and sites on two chromosomes
SITES = pd.DataFrame(
    {
        "chrom": ["chr1", "chr1", "chr1", "chr1", "chr1", "chr2", "chr2"],
        "pos": [5, 6, 10, 11, 25, 3, 1000],
        "strand": ["+", "-", "+", ".", ".", ".", "."],
    },
    index=[f"s{i}" for i in range(7)],
)
MC = np.array([[1, 2, 0, 3, 1, 0, 4], [0, 1, 1, 0, 0, 2, 0]])
COV = np.array([[2, 2, 1, 3, 1, 0, 5], [1, 1, 1, 0, 2, 2, 1]])


def _tiny() -> AnnData:
    obs = pd.DataFrame({"group": ["a", "b"]}, index=["c0", "c1"])
    return counts_anndata(sparse.csr_matrix(MC), sparse.csr_matrix(COV), obs=obs, var=SITES.copy(), beta=False)


def _expected(sites: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return MC[:, sites].sum(axis=1), COV[:, sites].sum(axis=1)


def _assert_region(out: AnnData, name: str, sites: list[int]) -> None:
    mc, cov = _expected(sites)
    np.testing.assert_array_equal(out[:, name].layers["mc"].toarray().ravel(), mc)
    np.testing.assert_array_equal(out[:, name].layers["cov"].toarray().ravel(), cov)
    assert out.var.loc[name, "n_sites"] == len(sites)


def test_bins_hand_checked(unchanged):
    adata = _tiny()
    with unchanged(adata):
        out = ef.pp.aggregate_regions(adata, regions="10bp")
    assert list(out.var_names) == ["chr1:1-10", "chr1:11-20", "chr1:21-30", "chr2:1-10", "chr2:991-1000"]
    assert out.var["start"].tolist() == [1, 11, 21, 1, 991] and out.var["end"].tolist() == [10, 20, 30, 10, 1000]
    for name, sites in zip(out.var_names, [[0, 1, 2], [3], [4], [5], [6]], strict=True):
        _assert_region(out, name, sites)  # both strands of chr1:5-6 add up in the first bin
    np.testing.assert_allclose(out.X, [[3 / 5, 1, 1, np.nan, 0.8], [2 / 3, np.nan, 0, 1, 0]])
    assert out.obs.equals(adata.obs) and out.obs is not adata.obs
    info = out.uns["aggregate_regions"]
    assert info["params"]["regions"] == "bins of 10 bp"
    assert (info["n_regions"], info["n_sites_assigned"], info["n_sites_outside"]) == (5, 7, 0)


def test_sites_in_any_order():
    """Sites need not be sorted: a shuffled `var` gives the same region sums (bins and overlapping regions)."""
    order = [4, 6, 0, 3, 5, 2, 1]
    adata = _tiny()[:, order].copy()
    out = ef.pp.aggregate_regions(adata, regions="10bp")
    ref = ef.pp.aggregate_regions(_tiny(), regions="10bp")
    assert list(out.var_names) == ["chr1:1-10", "chr1:11-20", "chr1:21-30", "chr2:1-10", "chr2:991-1000"]
    assert (out.layers["mc"] != ref.layers["mc"]).nnz == 0 and (out.layers["cov"] != ref.layers["cov"]).nnz == 0
    table = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [5, 6], "end": [10, 11], "name": ["A", "B"]})
    with pytest.warns(UserWarning, match=r"on chromosomes without any region \('chr2'\)"):
        _assert_region(ef.pp.aggregate_regions(adata, regions=table, coordinates="1-based"), "B", [2, 3])


@pytest.mark.parametrize(("spec", "size"), [("10kb", 10_000), ("1Mb", 1_000_000), ("5000bp", 5000), (250, 250)])
def test_bin_sizes(spec, size):
    out = ef.pp.aggregate_regions(_tiny(), regions=spec, fraction=False)
    assert out.uns["aggregate_regions"]["params"]["regions"] == f"bins of {size} bp"
    assert out.var["end"].iloc[0] == size and out.X is None


def test_layers_are_csr_int32():
    out = ef.pp.aggregate_regions(_tiny(), regions="10bp")
    for key in ("mc", "cov"):
        assert isinstance(out.layers[key], sparse.csr_matrix) and out.layers[key].dtype == np.int32
    assert out.X.dtype == np.float32


def _write_bed(path, lines, *, gz=False):
    text = "".join(lines)
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_bed_zero_based_and_overlapping(tmp_path, gz):
    lines = [
        'track name="regions"\n',
        "# a comment\n",
        "chr1\t4\t10\tA\n",  # 1-based 5..10: chr1:5 (BED start + 1) is inside
        "chr1\t5\t11\tB\n",  # 1-based 6..11: the CpG at chr1:5 (its - C at 6 too) is outside; overlaps A on chr1:10
        "chr1\t100\t200\tempty\n",
        "chr3\t0\t50\tother_chrom\n",
    ]
    path = _write_bed(tmp_path / ("r.bed.gz" if gz else "r.bed"), lines, gz=gz)
    adata = _tiny()
    with pytest.warns(UserWarning, match="chromosomes without any region"):
        out = ef.pp.aggregate_regions(adata, regions=path)
    assert list(out.var_names) == ["A", "B"]  # regions without a site are dropped
    assert out.var["start"].tolist() == [5, 6] and out.var["end"].tolist() == [10, 11]
    _assert_region(out, "A", [0, 1, 2])
    _assert_region(out, "B", [2, 3])  # a CpG counts where its + C lies, with both strands
    info = out.uns["aggregate_regions"]
    assert (info["n_sites_assigned"], info["n_sites_outside"]) == (4, 3)
    assert info["params"]["regions"] == f"BED file {path}"


def test_one_convention_for_bed_files_and_frames(tmp_path):
    """chr1 0 10 in a BED file = a 0-based frame = a 1-based frame chr1 1 10: the same bases, the same sums."""
    bed = ef.pp.aggregate_regions(_tiny(), regions=_write_bed(tmp_path / "r.bed", ["chr1\t0\t10\n"]))
    zero = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]})
    one = pd.DataFrame({"chrom": ["chr1"], "start": [1], "end": [10]})
    marked = one.copy()
    marked.attrs["coordinates"] = "1-based"
    for out in (
        ef.pp.aggregate_regions(_tiny(), regions=zero, coordinates="0-based"),
        ef.pp.aggregate_regions(_tiny(), regions=one, coordinates="1-based"),
        ef.pp.aggregate_regions(_tiny(), regions=marked),
    ):
        assert out.var[["start", "end"]].values.tolist() == bed.var[["start", "end"]].values.tolist() == [[1, 10]]
        assert (out.layers["cov"] != bed.layers["cov"]).nnz == 0
    with pytest.raises(ValueError, match="contradicts"):
        ef.pp.aggregate_regions(_tiny(), regions=marked, coordinates="0-based")


def test_bed_three_columns_and_header_row(tmp_path):
    path = _write_bed(tmp_path / "r.bed", ["chrom\tstart\tend\n", "chr1\t0\t5\n", "chr2\t2\t3\n"])
    out = ef.pp.aggregate_regions(_tiny(), regions=str(path))
    assert list(out.var_names) == ["chr1:1-5", "chr2:3-3"]
    _assert_region(out, "chr1:1-5", [0, 1])  # the - C at chr1:6 belongs to the CpG at chr1:5
    _assert_region(out, "chr2:3-3", [5])


def test_dataframe_one_based_names_and_chrom_matching():
    regions = pd.DataFrame(
        {
            "chrom": ["1", "1", "chr1", "2", "1"],  # "1" matches the data's "chr1"
            "start": [5, 11, 5, 1000, 6],
            "end": [10, 11, 6, 1000, 6],
            "name": ["p", "q", "p", np.nan, "r"],
            "score": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    before = regions.copy()
    out = ef.pp.aggregate_regions(_tiny(), regions=regions, coordinates="1-based")
    # in (start, end) order, names made unique in that order
    # "r" (chr1:6) holds only the - C of the CpG at chr1:5, which counts at 5: r is empty and dropped
    assert list(out.var_names) == ["p", "p-1", "q", "chr2:1000-1000"]
    assert out.var["chrom"].tolist() == ["chr1"] * 3 + ["chr2"]  # named as in the data
    _assert_region(out, "p", [0, 1])  # chr1:5-6
    _assert_region(out, "p-1", [0, 1, 2])  # chr1:5-10
    _assert_region(out, "q", [3])
    _assert_region(out, "chr2:1000-1000", [6])
    assert out.var.loc["q", "score"] == 2.0 and out.var.loc["p-1", "score"] == 1.0 and out.var.loc["p-1", "name"] == "p"
    pd.testing.assert_frame_equal(regions, before)


def test_min_sites():
    out = ef.pp.aggregate_regions(_tiny(), regions="10bp", min_sites=2)
    assert list(out.var_names) == ["chr1:1-10"]
    assert out.uns["aggregate_regions"]["n_sites_outside"] == 4
    with pytest.raises(ValueError, match="lower `min_sites`"):
        ef.pp.aggregate_regions(_tiny(), regions="10bp", min_sites=4)


# --- the bundled hg19 annotations on real IMR90 WGBS ---


@cache
def _imr90() -> AnnData:
    return ef.datasets.imr90_wgbs_chr22()


def _direct_sums(adata: AnnData, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-region sums with one mask per region (1-based, inclusive bounds)."""
    pos = adata.var["pos"].to_numpy()
    mc, cov = adata.layers["mc"].toarray(), adata.layers["cov"].toarray()
    inside = (pos[None, :] >= starts[:, None]) & (pos[None, :] <= ends[:, None])
    return inside.sum(axis=1), mc @ inside.T, cov @ inside.T


def _check_against_direct(out: AnnData, adata: AnnData, starts: np.ndarray, ends: np.ndarray) -> None:
    n_sites, mc, cov = _direct_sums(adata, starts, ends)
    keep = n_sites > 0
    assert out.n_vars == keep.sum()
    order = np.lexsort((ends[keep], starts[keep]))
    assert out.var["start"].tolist() == starts[keep][order].tolist()
    assert out.var["end"].tolist() == ends[keep][order].tolist()
    assert out.var["n_sites"].tolist() == n_sites[keep][order].tolist()
    np.testing.assert_array_equal(out.layers["mc"].toarray(), mc[:, keep][:, order])
    np.testing.assert_array_equal(out.layers["cov"].toarray(), cov[:, keep][:, order])


def test_cpg_islands_match_direct_computation():
    adata = _imr90()
    out = ef.pp.aggregate_regions(adata, regions="cpg_islands")
    islands = ef.datasets.hg19_cpg_islands()
    islands = islands[islands["chrom"] == "chr22"]
    _check_against_direct(out, adata, islands["start"].to_numpy(), islands["end"].to_numpy())
    info = out.uns["aggregate_regions"]
    assert info["n_sites_assigned"] + info["n_sites_outside"] == adata.n_vars == 12_914
    assert out.var_names[0] == f"chr22:{out.var['start'].iloc[0]}-{out.var['end'].iloc[0]}"


def test_cpg_island_starts_are_cpgs_in_the_reference():
    """Every island inside the bundled hg19 segment begins with the C of a CpG and ends on its G (1-based)."""
    seg = ef.datasets.hg19_chr22_segment()
    genome = ef.io.Genome.open(seg)
    islands = ef.datasets.hg19_cpg_islands()
    islands = islands[(islands["chrom"] == "chr22") & (islands["start"] > seg.start) & (islands["end"] < seg.end)]
    assert len(islands) > 20
    first = np.stack([genome.fetch("22", s, s + 1) for s in islands["start"]])
    last = np.stack([genome.fetch("22", e - 1, e) for e in islands["end"]])
    cg = np.array([1, 2])  # codes of C, G
    assert (first == cg).all() and (last == cg).all()


def test_promoters_and_genes_match_direct_computation():
    adata = _imr90()
    genes = ef.datasets.hg19_genes()
    genes = genes[genes["chrom"] == "chr22"]
    plus = (genes["strand"] == "+").to_numpy()
    tss = np.where(plus, genes["start"], genes["end"])
    out = ef.pp.aggregate_regions(adata, regions="promoters", promoter=(1000, 200))
    _check_against_direct(out, adata, np.where(plus, tss - 1000, tss - 200), np.where(plus, tss + 200, tss + 1000))
    assert out.var_names.is_unique and set(out.var["name"]) <= set(genes["gene_name"])
    assert {"strand", "gene_type", "tss"} <= set(out.var.columns)
    assert out.uns["aggregate_regions"]["params"]["promoter"] == [1000, 200]
    body = ef.pp.aggregate_regions(adata, regions="genes")
    _check_against_direct(body, adata, genes["start"].to_numpy(), genes["end"].to_numpy())
    row = body.var.iloc[0]
    assert body.var_names[0] == row["name"]  # genes are named by gene


def test_chromosome_names_without_chr():
    adata = _imr90().copy()
    adata.var["chrom"] = "22"
    out = ef.pp.aggregate_regions(adata, regions="cpg_islands")
    ref = ef.pp.aggregate_regions(_imr90(), regions="cpg_islands")
    assert (out.layers["cov"] != ref.layers["cov"]).nnz == 0
    assert set(out.var["chrom"]) == {"22"} and out.var_names[0].startswith("22:")


def test_fraction_is_mc_over_cov():
    out = ef.pp.aggregate_regions(_imr90(), regions="100kb")
    mc, cov = out.layers["mc"].toarray(), out.layers["cov"].toarray()
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(out.X, np.where(cov > 0, mc / np.maximum(cov, 1), np.nan), rtol=1e-6)
    assert out.var["n_sites"].sum() == 12_914


# --- MuData ---


@pytest.mark.filterwarnings("ignore:Cannot join columns with the same name:UserWarning")  # mudata, on reading
def test_mudata_in_mudata_out(tmp_path, unchanged):
    cg, ch = _tiny(), _tiny()
    ch.layers["mc"] = sparse.csr_matrix(np.minimum(MC, 1))
    ch.var_names = [f"ch{i}" for i in range(ch.n_vars)]  # each context has its own sites
    mdata = md.MuData({"mCG": cg, "mCH": ch})
    mdata.obs["batch"] = ["x", "y"]
    with unchanged(mdata):
        out = ef.pp.aggregate_regions(mdata, regions="10bp")
    assert isinstance(out, md.MuData) and list(out.mod) == ["mCG", "mCH"]
    assert out["mCG"].shape == out["mCH"].shape == (2, 5)
    _assert_region(out["mCG"], "chr1:1-10", [0, 1, 2])
    np.testing.assert_array_equal(out["mCH"].layers["mc"].toarray()[:, 0], np.minimum(MC, 1)[:, :3].sum(axis=1))
    assert out.obs["batch"].tolist() == ["x", "y"]
    out.write(tmp_path / "regions.h5mu")  # what it records can be written
    assert md.read_h5mu(tmp_path / "regions.h5mu")["mCG"].uns["aggregate_regions"]["n_regions"] == 5


def test_mudata_mod_picks_modalities():
    rna = AnnData(X=np.ones((2, 3), dtype=np.float32), obs=pd.DataFrame(index=["c0", "c1"]))
    mdata = md.MuData({"mCG": _tiny(), "rna": rna})
    with pytest.raises(KeyError, match="Pass `mod=`"):
        ef.pp.aggregate_regions(mdata, regions="10bp")
    out = ef.pp.aggregate_regions(mdata, regions="10bp", mod="mCG")
    assert list(out.mod) == ["mCG"]
    with pytest.raises(KeyError, match="'mCH' not found"):
        ef.pp.aggregate_regions(mdata, regions="10bp", mod=["mCH"])


# --- errors leave the input unchanged ---


def test_errors(tmp_path, unchanged):
    adata = _tiny()
    with unchanged(adata):
        with pytest.raises(ValueError, match="Unknown `regions='enhancers'`"):
            ef.pp.aggregate_regions(adata, regions="enhancers")
        with pytest.raises(FileNotFoundError, match="No such BED file"):
            ef.pp.aggregate_regions(adata, regions=tmp_path / "missing.bed")
        with pytest.raises(ValueError, match="not a whole number"):
            ef.pp.aggregate_regions(adata, regions="1.5bp")
        zero_start = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]})
        with pytest.raises(ValueError, match="does not say how its coordinates count"):
            ef.pp.aggregate_regions(adata, regions=zero_start)
        with pytest.raises(ValueError, match="read as 1-based; pass `coordinates=`"):
            ef.pp.aggregate_regions(adata, regions=zero_start, coordinates="1-based")
        with pytest.raises(ValueError, match="lacks columns"):
            ef.pp.aggregate_regions(adata, regions=pd.DataFrame({"chrom": ["chr1"], "begin": [1], "end": [10]}))
        bad = _write_bed(tmp_path / "bad.bed", ["chr1\t10\t5\n"])
        with pytest.raises(ValueError, match="not BED regions"):
            ef.pp.aggregate_regions(adata, regions=bad)
        elsewhere = _write_bed(tmp_path / "x.bed", ["chrX\t0\t100\n"])
        with pytest.raises(ValueError, match="chromosome names"):
            ef.pp.aggregate_regions(adata, regions=elsewhere)
        with pytest.raises(ValueError, match="No site of the data falls in any region"):
            ef.pp.aggregate_regions(adata, regions="cpg_islands")  # chr1:5-1000 holds no island


def test_missing_layers_and_positions():
    adata = _tiny()
    del adata.layers["cov"]
    with pytest.raises(KeyError, match="no layer 'cov'"):
        ef.pp.aggregate_regions(adata, regions="10kb")
    assert "cov" not in adata.layers and "mc" in adata.layers
    no_pos = _tiny()
    del no_pos.var["pos"]
    with pytest.raises(KeyError, match=r"var\['pos'\]"):
        ef.pp.aggregate_regions(no_pos, regions="10kb")
    assert "pos" not in no_pos.var
    zero = _tiny()
    zero.var["pos"] = zero.var["pos"] - 5  # 0-based by mistake
    with pytest.raises(ValueError, match="1-based"):
        ef.pp.aggregate_regions(zero, regions="10kb")
    with pytest.raises(ValueError, match="`min_sites` must be at least 1"):
        ef.pp.aggregate_regions(_tiny(), regions="10kb", min_sites=0)


def test_huge_region_ends_stay_on_their_chromosome():
    regions = pd.DataFrame({"chrom": ["chr1"], "start": [1], "end": [2**40]})
    regions.attrs["coordinates"] = "1-based"
    with pytest.warns(UserWarning, match="without any region"):
        out = ef.pp.aggregate_regions(_tiny(), regions=regions)
    assert out.var["n_sites"].tolist() == [5]  # the chr1 sites only


def test_bed_compression_read_from_the_bytes(tmp_path):
    plain = _write_bed(tmp_path / "r.bed.gz", ["chr1\t0\t30\n"], gz=False)  # named .gz, not compressed
    with pytest.warns(UserWarning, match="without any region"):
        out = ef.pp.aggregate_regions(_tiny(), regions=plain)
    assert out.var_names.tolist() == ["chr1:1-30"]


def test_counts_beyond_int32_are_refused():
    big = np.full((1, 3), 2**30 + 1)
    var = pd.DataFrame({"chrom": "chr1", "pos": [1, 3, 5], "strand": "."}, index=["a", "b", "c"])
    adata = counts_anndata(
        sparse.csr_matrix(big // 2), sparse.csr_matrix(big), obs=pd.DataFrame(index=["x"]), var=var, beta=False
    )
    with pytest.raises(ValueError, match="int32"):
        ef.pp.aggregate_regions(adata, regions="1Mb")
