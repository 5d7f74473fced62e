from __future__ import annotations

import os

import numpy as np
import pytest

import epiformer as ef
from epiformer._sequence import encode, normalize_chrom, one_hot


@pytest.fixture(scope="module")
def genome():
    seg = ef.datasets.hg19_chr22_segment()
    return ef.io.Genome(seg.fasta, region=f"{seg.chrom}:{seg.start}-{seg.end}")


def _text(codes):
    return "".join("ACGTN"[c] for c in codes)


def test_region_fasta_coordinates(genome):
    assert genome.chromosomes == ["22"]
    assert genome.bounds("chr22") == (20_000_001, 21_000_000)
    # the file's first line of sequence is TGGGAAGGTGGGGAGGTGCTCACCTTGGGGAGCCCCCCTGAGTGCTCTGCAAGCTCTGGG
    assert _text(genome.fetch("chr22", 20_000_001, 20_000_010)) == "TGGGAAGGTG"
    assert _text(genome.fetch("22", 20_000_061, 20_000_064)) == "GTCA"  # second line, 1-based inclusive


def test_windows_centre_the_c(genome):
    codes = genome.codes("22")
    cpg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    cpg = cpg[cpg > 1000][:5]
    positions = 20_000_001 + cpg
    windows = genome.windows(["chr22"] * 5, positions, flank=400)
    assert windows.shape == (5, 800)
    assert (windows[:, 400] == 1).all() and (windows[:, 401] == 2).all()


def test_padding_and_errors(genome):
    padded = genome.fetch("22", 19_999_999, 20_000_002, pad=True)
    assert _text(padded) == "NNTG"
    with pytest.raises(ValueError, match="outside the available sequence"):
        genome.fetch("22", 19_999_999, 20_000_002)
    with pytest.raises(ValueError, match="Chromosomes not in.*'1'"):
        genome.windows(["chr1"], [5], flank=2)
    with pytest.raises(ValueError, match="reach past.*22:20999999"):
        genome.windows(["22"], [20_999_999], flank=400)
    with pytest.raises(KeyError, match="chrX"):
        genome.fetch("chrX", 1, 2)


def test_whole_chromosome_fasta(tmp_path):
    (tmp_path / "g.fa").write_text(">chr1\nACGTNacgtn\n>MT\nGGCC\n")
    genome = ef.io.Genome(tmp_path / "g.fa")
    assert sorted(genome.chromosomes) == ["1", "M"]
    assert _text(genome.fetch("1", 1, 10)) == "ACGTNACGTN"
    assert _text(genome.fetch("chrM", 2, 3)) == "GC"
    with pytest.raises(ValueError, match="one record"):
        ef.io.Genome(tmp_path / "g.fa", region="chr1:1-5")
    (tmp_path / "one.fa").write_text(">piece\nACGTACGT\n")
    with pytest.raises(ValueError, match="spans 5 bp but record 'piece' holds 8"):
        ef.io.Genome(tmp_path / "one.fa", region="chr1:1-5")
    piece = ef.io.Genome(tmp_path / "one.fa", region="chr1:101-108")
    assert _text(piece.fetch("1", 103, 104)) == "GT"
    with pytest.raises(FileNotFoundError):
        ef.io.Genome(tmp_path / "missing.fa")


def test_stale_index_is_rebuilt(tmp_path):
    """A FASTA edited after its ``.fai`` was built: the old offsets would read the wrong bases."""
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\nACGTACGTAC\n>chr2\nGGGG\n")
    assert _text(ef.io.Genome(fasta).fetch("2", 1, 4)) == "GGGG"
    fasta.write_text(">chr1\nAC\n>chr2\nTTTTCCCC\n")
    index = tmp_path / "g.fa.fai"
    os.utime(index, (index.stat().st_atime - 60, index.stat().st_mtime - 60))
    with pytest.warns(UserWarning, match="older than g.fa.*rebuilt"):
        genome = ef.io.Genome(fasta)
    assert _text(genome.fetch("2", 1, 8)) == "TTTTCCCC"
    assert genome.bounds("1") == (1, 2)


def test_encoding_helpers():
    np.testing.assert_array_equal(encode("ACGTNRacgt"), [0, 1, 2, 3, 4, 4, 0, 1, 2, 3])
    assert normalize_chrom("chrMT") == "M" and normalize_chrom("chr22") == "22" and normalize_chrom("X") == "X"
    oh4 = one_hot(encode("AN"))
    np.testing.assert_array_equal(oh4, [[1, 0, 0, 0], [0, 0, 0, 0]])
    oh5 = one_hot(encode("AN"), channels=5)
    np.testing.assert_array_equal(oh5[1], [0, 0, 0, 0, 1])
