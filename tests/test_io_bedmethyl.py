"""The sequencing readers: every format in its tool's published layout, strands, coordinates, sparse output, bad input.

One CpG is written by hand in each layout (chr22:20,000,093-20,000,094 of the bundled hg19 segment: + C with 3 of
4 reads methylated, - C with 2 of 3), and the real IMR90 WGBS calls are written out in each layout and read back.
"""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import epiformer as ef
from epiformer.io._call_formats import CHUNK_ROWS

SEGMENT = ef.datasets.hg19_chr22_segment()
PLUS, MINUS = 20_000_093, 20_000_094  # the C of a real CpG on +, and the C on - (the G of the + strand)

#: One CpG in each tool's layout, as the tool writes it (see the comment on each).
HAND_WRITTEN = {
    # bismark_methylation_extractor --bedGraph: chrom, start, end (1-based, start = end), %, meth, unmeth
    "bismark_cov": "chr22\t20000093\t20000093\t75\t3\t1\nchr22\t20000094\t20000094\t66.6666666666667\t2\t1\n",
    # coverage2cytosine: chrom, 1-based C, strand, meth, unmeth, context, trinucleotide (zero-coverage rows kept)
    "bismark_cpg_report": (
        "chr22\t20000093\t+\t3\t1\tCG\tCGC\nchr22\t20000094\t-\t2\t1\tCG\tCGG\n"
        "chr22\t20000103\t+\t0\t0\tCG\tCGC\nchr22\t20000095\t+\t5\t5\tCHH\tCCT\n"
    ),
    # MethylDackel extract: a bedGraph track line, then chrom, 0-based start, end, %, nMethylated, nUnmethylated
    "methyldackel": (
        'track type="bedGraph" description="sample CpG methylation levels"\n'
        "chr22\t20000092\t20000093\t75\t3\t1\nchr22\t20000093\t20000094\t67\t2\t1\n"
    ),
    # modkit pileup: 18 columns, 0-based, code, strand, Nvalid_cov at 10, Nmod at 12; a 5hmC row to skip
    "modkit": (
        "chr22\t20000092\t20000093\tm\t4\t+\t20000092\t20000093\t255,0,0\t4\t75.00\t3\t1\t0\t0\t0\t0\t0\n"
        "chr22\t20000092\t20000093\th\t4\t+\t20000092\t20000093\t255,0,0\t4\t0.00\t0\t1\t3\t0\t0\t0\t0\n"
        "chr22\t20000093\t20000094\tm\t3\t-\t20000093\t20000094\t255,0,0\t3\t66.67\t2\t1\t0\t0\t0\t0\t0\n"
    ),
    # ENCODE WGBS bedMethyl: a track line, then 11 columns, 0-based, read count at 10, rounded % at 11
    "encode": (
        'track name="s" description="s CpG methylation" visibility=2 itemRgb="On"\n'
        "chr22\t20000092\t20000093\t.\t4\t+\t20000092\t20000093\t255,105,0\t4\t75\n"
        "chr22\t20000093\t20000094\t.\t3\t-\t20000093\t20000094\t255,105,0\t3\t67\n"
    ),
    # ALLCools allc: chrom, 1-based C, strand, context, mc, cov, methylated flag; a CHH row to skip
    "allc": "chr22\t20000093\t+\tCGC\t3\t4\t1\nchr22\t20000094\t-\tCGG\t2\t3\t1\nchr22\t20000095\t+\tCCT\t0\t2\t0\n",
}
NEEDS_FASTA = {"bismark_cov", "methyldackel"}  # no strand column


def _write(path, text, *, gz=False):
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def _fasta(fmt):
    return SEGMENT if fmt in NEEDS_FASTA else None


@pytest.mark.parametrize("fmt", sorted(HAND_WRITTEN))
@pytest.mark.parametrize("gz", [False, True])
def test_each_format_reads_the_hand_checked_cpg(tmp_path, fmt, gz):
    path = _write(tmp_path / f"s.{fmt}", HAND_WRITTEN[fmt], gz=gz)
    for given in (fmt, "auto"):
        adata = ef.io.read_bedmethyl(path, format=given, fasta=_fasta(fmt))
        assert adata.uns["epiformer_read"]["format"] == fmt
        assert list(adata.var_names) == [f"chr22:{PLUS}"]
        assert adata.var["pos"].tolist() == [PLUS] and adata.var["strand"].tolist() == ["."]
        assert adata.layers["mc"].toarray().tolist() == [[5]]
        assert adata.layers["cov"].toarray().tolist() == [[7]]
    apart = ef.io.read_bedmethyl(path, format=fmt, combine_strands=False, fasta=_fasta(fmt))
    assert apart.var["pos"].tolist() == [PLUS, MINUS]
    assert apart.var["strand"].tolist() == ["+", "-"]
    assert apart.layers["mc"].toarray().tolist() == [[3, 2]]
    assert apart.layers["cov"].toarray().tolist() == [[4, 3]]


def test_auto_on_bismark_cov_and_the_ambiguous_bedgraph(tmp_path):
    cov = _write(tmp_path / "a.cov", HAND_WRITTEN["bismark_cov"])
    assert ef.io.read_bedmethyl(cov, fasta=SEGMENT).uns["epiformer_read"]["format"] == "bismark_cov"
    # one row per CpG, 2 bp long: Bismark `--merge_CpG` (1-based) or MethylDackel `--mergeContext`... undecidable
    merged = _write(tmp_path / "m.txt", "chr22\t20000093\t20000094\t75\t3\t1\nchr22\t20000103\t20000104\t50\t1\t1\n")
    with pytest.raises(ValueError, match=r"fit \['bismark_cov', 'methyldackel'\]"):
        ef.io.read_bedmethyl(merged)


def test_a_headless_methyldackel_bedgraph_is_told_by_its_touching_strands(tmp_path):
    # the + C [p-1, p) and the - C [p, p+1) of one CpG: only 0-based half-open intervals touch
    headless = _write(tmp_path / "b.bedGraph", HAND_WRITTEN["methyldackel"].split("\n", 1)[1])
    read = ef.io.read_bedmethyl(headless, fasta=SEGMENT, combine_strands=False)
    assert read.uns["epiformer_read"]["format"] == "methyldackel"
    assert read.var["pos"].tolist() == [PLUS, MINUS]
    with pytest.raises(ValueError, match=r"does not look like a Bismark coverage.*fit \['methyldackel'\]"):
        ef.io.read_bedmethyl(headless, format="bismark_cov")  # no FASTA to catch the shift: the layout does


def test_methyldackel_and_modkit_are_never_read_one_base_off(tmp_path):
    dackel = _write(tmp_path / "d.bedGraph", HAND_WRITTEN["methyldackel"])
    with pytest.raises(ValueError, match="does not look like a Bismark coverage"):
        ef.io.read_bedmethyl(dackel, format="bismark_cov", fasta=SEGMENT)
    cov = _write(tmp_path / "c.cov", HAND_WRITTEN["bismark_cov"])
    with pytest.raises(ValueError, match=r"does not look like a MethylDackel.*fit \['bismark_cov'\]"):
        ef.io.read_bedmethyl(cov, format="methyldackel", fasta=SEGMENT)
    merged = _write(tmp_path / "m.cov", "chr22\t20000093\t20000095\t70\t7\t3\n")  # a 3-bp interval
    with pytest.raises(ValueError, match="end - start = \\[2\\]"):
        ef.io.read_bedmethyl(merged, format="bismark_cov", fasta=SEGMENT)
    modkit = _write(tmp_path / "k.bed", HAND_WRITTEN["modkit"])
    with pytest.raises(ValueError, match="18"):
        ef.io.read_bedmethyl(modkit, format="encode")


def test_modkit_other_modification_and_space_separated_columns(tmp_path):
    text = HAND_WRITTEN["modkit"]
    spaced = "".join("\t".join(r.split("\t")[:9]) + "\t" + " ".join(r.split("\t")[9:]) for r in text.splitlines(True))
    path = _write(tmp_path / "k.bed", spaced)
    hmc = ef.io.read_bedmethyl(path, modification="h", combine_strands=False)
    assert hmc.var["pos"].tolist() == [PLUS]
    assert hmc.layers["mc"].toarray().tolist() == [[0]] and hmc.layers["cov"].toarray().tolist() == [[4]]


def _imr90_per_strand():
    """The real IMR90 replicate-1 calls split between the two C of each CpG (+ gets the larger half)."""
    imr = ef.datasets.imr90_wgbs_chr22()
    mc, cov = (imr.layers[k][0].toarray().ravel().astype(int) for k in ("mc", "cov"))
    keep = cov > 0
    pos, mc, cov = imr.var["pos"].to_numpy()[keep], mc[keep], cov[keep]
    cov_p = (cov + 1) // 2
    mc_p = np.minimum(mc, cov_p)
    rows = pd.DataFrame(
        {
            "pos": np.concatenate([pos, pos + 1]),
            "strand": ["+"] * len(pos) + ["-"] * len(pos),
            "mc": np.concatenate([mc_p, mc - mc_p]),
            "cov": np.concatenate([cov_p, cov - cov_p]),
        }
    )
    rows = rows[rows["cov"] > 0].sort_values("pos").reset_index(drop=True)
    expected = pd.DataFrame({"pos": pos, "mc": mc, "cov": cov})
    return rows, expected


def _imr90_lines(fmt, rows):
    c, s, p, m, n = (
        "chr22",
        rows["strand"].to_numpy(),
        rows["pos"].to_numpy(),
        rows["mc"].to_numpy(),
        rows["cov"].to_numpy(),
    )
    u, pct, z = n - m, 100 * m / n, p - 1
    columns = {
        "bismark_cov": [c, p, p, pct, m, u],
        "bismark_cpg_report": [c, p, s, m, u, "CG", "CGN"],
        "methyldackel": [c, z, p, pct.round().astype(int), m, u],
        "modkit": [c, z, p, "m", n, s, z, p, "255,0,0", n, pct.round(2), m, u, 0, 0, 0, 0, 0],
        "encode": [c, z, p, ".", n, s, z, p, "0,255,0", n, pct.round().astype(int)],
        "allc": [c, p, s, "CGN", m, n, (pct > 50).astype(int)],
    }[fmt]
    table = pd.DataFrame(dict(enumerate(columns)), index=range(len(p)))
    header = HAND_WRITTEN[fmt].split("\n")[0] + "\n" if fmt in ("methyldackel", "encode") else ""
    return header + table.to_csv(sep="\t", header=False, index=False)


@pytest.mark.parametrize("fmt", sorted(HAND_WRITTEN))
def test_real_imr90_calls_round_trip_in_every_format(tmp_path, fmt):
    rows, expected = _imr90_per_strand()
    # bgzip writes a series of gzip members; a file of two members is read the same way
    text = _imr90_lines(fmt, rows)
    cut = text.index("\n", len(text) // 2) + 1
    path = tmp_path / f"imr90.{fmt}.gz"
    path.write_bytes(gzip.compress(text[:cut].encode()) + gzip.compress(text[cut:].encode()))
    adata = ef.io.read_bedmethyl(path, format=fmt, fasta=SEGMENT)
    assert adata.n_vars == len(expected)
    np.testing.assert_array_equal(adata.var["pos"], expected["pos"])
    got_mc, got_cov = adata.layers["mc"].toarray().ravel(), adata.layers["cov"].toarray().ravel()
    np.testing.assert_array_equal(got_cov, expected["cov"])
    if fmt == "encode":  # rebuilt from a rounded percentage: exact below 50 reads
        assert np.abs(got_mc - expected["mc"]).max() <= 1
        np.testing.assert_array_equal(got_mc[expected["cov"] < 50], expected["mc"][expected["cov"] < 50])
    else:
        np.testing.assert_array_equal(got_mc, expected["mc"])


def test_output_is_sparse_and_x_only_when_asked(tmp_path):
    a = _write(tmp_path / "a.allc", HAND_WRITTEN["allc"])
    b = _write(tmp_path / "b.allc", "chr22\t20000103\t+\tCGC\t1\t2\t0\nchr21\t100\t+\tCGA\t1\t1\t1\n")
    adata = ef.io.read_bedmethyl([a, b])
    assert adata.X is None
    for key in ("mc", "cov"):
        assert sparse.issparse(adata.layers[key]) and adata.layers[key].dtype == np.int32
    assert list(adata.var_names) == ["chr21:100", f"chr22:{PLUS}", "chr22:20000103"]  # genome order
    assert adata.layers["cov"].toarray().tolist() == [[0, 7, 0], [1, 0, 2]]
    assert adata.obs["n_observed"].tolist() == [1, 2]
    with_beta = ef.io.read_bedmethyl([a, b], beta=True)
    np.testing.assert_allclose(with_beta.X, [[np.nan, 5 / 7, np.nan], [1.0, np.nan, 0.5]])


def test_min_coverage_and_samples_left_empty(tmp_path):
    a = _write(tmp_path / "a.allc", HAND_WRITTEN["allc"])
    b = _write(tmp_path / "b.allc", "chr22\t20000103\t+\tCGC\t1\t2\t0\n")
    with pytest.warns(UserWarning, match="1 samples cover no site with at least 5 reads"):
        adata = ef.io.read_bedmethyl([a, b], min_coverage=5)
    assert adata.layers["cov"].toarray().tolist() == [[7], [0]]
    assert adata.uns["epiformer_read"]["n_below_min_coverage"] == 1
    with pytest.raises(ValueError, match="at least 8 reads"):
        ef.io.read_bedmethyl([a, b], min_coverage=8)
    with pytest.raises(ValueError, match="min_coverage"):
        ef.io.read_bedmethyl(a, min_coverage=0)


def test_fasta_catches_off_by_one_and_wrong_build(tmp_path):
    rows, _ = _imr90_per_strand()
    shifted = rows.assign(pos=rows["pos"] - 1)  # 0-based starts written where 1-based positions belong
    path = _write(tmp_path / "s.allc", _imr90_lines("allc", shifted))
    with pytest.raises(ValueError, match="one base right.*0-based"):
        ef.io.read_bedmethyl(path, fasta=SEGMENT)
    scrambled = rows.assign(pos=20_000_001 + (rows["pos"] * 7919) % 999_000).drop_duplicates(["pos", "strand"])
    path = _write(tmp_path / "w.allc", _imr90_lines("allc", scrambled))
    with pytest.raises(ValueError, match="another genome build"):
        ef.io.read_bedmethyl(path, fasta=SEGMENT)


def test_the_shift_cause_fits_the_format_read(tmp_path):
    rows, _ = _imr90_per_strand()
    # 0-based starts one base left of the C again: the 0-based format's own +1 was applied, so "a 0-based tool"
    # cannot be the cause
    shifted = rows.assign(pos=rows["pos"] - 1)
    path = _write(tmp_path / "s.bed", _imr90_lines("modkit", shifted))
    with pytest.raises(ValueError, match="one base right; the positions are off by one base even in the .*0-based"):
        ef.io.read_bedmethyl(path, format="modkit", fasta=SEGMENT)
    # too few sites to tell a shift from chance: the general message, no cause named
    few = _write(tmp_path / "few.allc", "".join(f"chr22\t{p}\t+\tCGN\t1\t1\t1\n" for p in (20000092, 20000102)))
    with pytest.raises(ValueError, match="do not sit on a CpG") as info:
        ef.io.read_bedmethyl(few, fasta=SEGMENT)
    assert "one base" not in str(info.value)


def test_fasta_drops_a_few_non_cpg_sites_with_a_warning(tmp_path):
    text = HAND_WRITTEN["allc"].replace("CCT\t0\t2\t0", "CGT\t0\t2\t0")  # claims CG, but 20000095 is a C before C
    rows = [f"chr22\t{p}\t+\tCGN\t1\t1\t1\n" for p in (20000103, 20000117)]
    path = _write(tmp_path / "s.allc", text + "".join(rows))
    with pytest.warns(UserWarning, match="1 calls do not sit on a CpG"):
        adata = ef.io.read_bedmethyl(path, fasta=SEGMENT)
    assert 20000095 not in adata.var["pos"].tolist()
    assert adata.uns["epiformer_read"]["n_off_cpg_dropped"] == 1


def test_fasta_missing_chromosome_and_outside_positions(tmp_path):
    path = _write(tmp_path / "s.allc", "chr7\t100\t+\tCGA\t1\t1\t1\n")
    with pytest.raises(ValueError, match=r"chromosomes 'chr7' are not in the FASTA"):
        ef.io.read_bedmethyl(path, fasta=SEGMENT)
    path = _write(tmp_path / "o.allc", "chr22\t100\t+\tCGA\t1\t1\t1\n")
    with pytest.raises(ValueError, match="outside the FASTA"):
        ef.io.read_bedmethyl(path, fasta=SEGMENT)


def test_strandless_format_needs_fasta_to_combine(tmp_path):
    path = _write(tmp_path / "s.cov", HAND_WRITTEN["bismark_cov"])
    with pytest.raises(ValueError, match="Pass `fasta=`"):
        ef.io.read_bedmethyl(path)
    apart = ef.io.read_bedmethyl(path, combine_strands=False)
    assert apart.var["strand"].tolist() == ["*", "*"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("chr22\t20000093\t+\tCGC\t-1\t4\t1\n", "non-negative whole numbers"),
        ("chr22\t20000093\t+\tCGC\t1.5\t4\t1\n", "non-negative whole numbers"),
        ("chr22\t20000093\t+\tCGC\tx\t4\t1\n", "fit none"),
        ("chr22\t20000093\t+\tCGC\t5\t4\t1\n", "more methylated reads"),
        ("chr22\t20000093\t+\tCGC\t0\t0\t0\n", "No site is covered"),
        ("chr22\t20000093\tx\tCGC\t1\t4\t1\n", "strand values"),
        ("chr22\t20000093\t+\tCGC\t1\t4\t1\nchr22\t20000093\t+\tCGC\t1\t4\t1\n", "listed more than once"),
        ("chr22\t1\t2\n", "fit none"),
        ("track type=bedGraph\n", "holds no methylation calls"),
    ],
)
def test_bad_files_are_refused_with_the_file_named(tmp_path, text, match):
    path = _write(tmp_path / "bad.allc", text)
    with pytest.raises(ValueError, match=match) as info:
        ef.io.read_bedmethyl(path)
    assert "bad.allc" in str(info.value) or "No site" in str(info.value)


def test_bismark_negative_unmethylated_count_and_the_value_shown(tmp_path):
    path = _write(tmp_path / "neg.cov", "chr22\t20000093\t20000093\t100\t3\t-1\n")
    with pytest.raises(ValueError, match="a negative unmethylated count"):
        ef.io.read_bedmethyl(path, format="bismark_cov", combine_strands=False)
    path = _write(tmp_path / "neg.allc", "chr22\t20000093\t+\tCGC\t-1\t4\t1\n")
    with pytest.raises(ValueError, match="data row 1 holds '-1'") as info:
        ef.io.read_bedmethyl(path)
    assert "np." not in str(info.value)


def test_truncated_gzip_empty_and_missing_files(tmp_path):
    full = gzip.compress(HAND_WRITTEN["allc"].encode() * 200)
    (tmp_path / "t.allc.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="truncated"):
        ef.io.read_bedmethyl(tmp_path / "t.allc.gz")
    (tmp_path / "e.allc").write_text("")
    with pytest.raises(ValueError, match="empty"):
        ef.io.read_bedmethyl(tmp_path / "e.allc")
    with pytest.raises(FileNotFoundError, match="nope.allc"):
        ef.io.read_bedmethyl(tmp_path / "nope.allc")


def test_wrong_format_named_and_mixed_formats(tmp_path):
    allc = _write(tmp_path / "a.allc", HAND_WRITTEN["allc"])
    with pytest.raises(ValueError, match="fit \\['allc'\\]"):
        ef.io.read_bedmethyl(allc, format="bismark_cpg_report")
    with pytest.raises(ValueError, match="not known"):
        ef.io.read_bedmethyl(allc, format="bismark")
    report = _write(tmp_path / "r.txt", HAND_WRITTEN["bismark_cpg_report"])
    with pytest.raises(ValueError, match="different formats"):
        ef.io.read_bedmethyl([allc, report])


def test_sample_names(tmp_path):
    a = _write(tmp_path / "a.allc.tsv.gz", HAND_WRITTEN["allc"], gz=True)
    assert ef.io.read_bedmethyl(a).obs_names.tolist() == ["a"]
    with pytest.raises(ValueError, match="Duplicated sample names"):
        ef.io.read_bedmethyl([a, a])
    with pytest.raises(ValueError, match="2 sample names for 1 files"):
        ef.io.read_bedmethyl([a], sample_names=["x", "y"])


def test_files_longer_than_one_chunk(tmp_path, monkeypatch):
    rows, _ = _imr90_per_strand()
    path = _write(tmp_path / "s.allc", _imr90_lines("allc", rows.head(41)))
    whole = ef.io.read_bedmethyl(path)
    assert CHUNK_ROWS > 41
    monkeypatch.setattr("epiformer.io._call_formats.CHUNK_ROWS", 4)
    chunked = ef.io.read_bedmethyl(path)  # a CpG's two strands may fall in different chunks
    assert chunked.var_names.tolist() == whole.var_names.tolist()
    for key in ("mc", "cov"):
        assert (chunked.layers[key] != whole.layers[key]).nnz == 0
    assert whole.layers["cov"].sum() == rows.head(41)["cov"].sum()


def test_many_cells_one_call(tmp_path):
    rows, _ = _imr90_per_strand()
    paths = []
    for i in range(30):
        pick = rows.sample(n=200, random_state=i).sort_values("pos")
        paths.append(_write(tmp_path / f"cell{i}.allc", _imr90_lines("allc", pick)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adata = ef.io.read_bedmethyl(paths, progress=False)
    assert adata.n_obs == 30 and adata.X is None
    assert sparse.isspmatrix_csr(adata.layers["cov"]) or isinstance(adata.layers["cov"], sparse.csr_array)
    assert adata.layers["cov"].sum() == sum(rows.sample(n=200, random_state=i)["cov"].sum() for i in range(30))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("chr22\t20000093\tNA\tCGC\t1\t4\t1\n", "strand values 'NA'"),
        ("chr22\t20000095\t+\tCHG\t1\t4\t1\n", "holds no call of the kind read"),
        ("chr22\t1\t-\tCGA\t1\t4\t1\n", "position 1 has no CpG"),
        ("chr22\t20000093\t.\tCGC\t1\t4\t1\nchr22\t20000103\t+\tCGC\t1\t4\t1\n", "mixes rows of combined strands"),
    ],
)
def test_more_bad_allc_files(tmp_path, text, match):
    path = _write(tmp_path / "bad.allc", text)
    with pytest.raises(ValueError, match=match):
        ef.io.read_bedmethyl(path, format="allc")


def test_text_in_a_numeric_column_names_the_file(tmp_path):
    text = HAND_WRITTEN["methyldackel"].replace("20000093\t20000094", "abc\t20000094")  # the second data row
    path = _write(tmp_path / "d.bedGraph", text)
    with pytest.raises(ValueError, match="d.bedGraph"):
        ef.io.read_bedmethyl(path, format="methyldackel", combine_strands=False)


def test_undecodable_byte_late_in_the_file_and_blank_lines(tmp_path):
    rows = "".join(f"chr22\t{20000093 + 10 * i}\t+\tCGC\t1\t2\t0\n" for i in range(300))
    path = tmp_path / "late.allc"
    path.write_bytes(rows.encode() + b"chr22\t20009999\t+\tCGC\t1\t2\xe9\t0\n")
    with pytest.raises(ValueError, match="late.allc"):
        ef.io.read_bedmethyl(path)
    blank = _write(tmp_path / "blank.allc", HAND_WRITTEN["allc"] + "\n\n")
    assert ef.io.read_bedmethyl(blank).layers["cov"].toarray().tolist() == [[7]]


def test_chr_prefix_differences_across_files_are_one_chromosome(tmp_path):
    a = _write(tmp_path / "a.allc", "chr1\t100\t+\tCGA\t1\t2\t0\n")
    b = _write(tmp_path / "b.allc", "1\t100\t+\tCGA\t3\t4\t1\n")
    adata = ef.io.read_bedmethyl([a, b])
    assert adata.var_names.tolist() == ["chr1:100"]
    assert adata.layers["cov"].toarray().tolist() == [[2], [4]]


def test_min_coverage_type(tmp_path):
    path = _write(tmp_path / "a.allc", HAND_WRITTEN["allc"])
    with pytest.raises(TypeError, match="whole number of reads"):
        ef.io.read_bedmethyl(path, min_coverage="5")
