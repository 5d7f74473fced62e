from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pytest

import epiformer as ef
from epiformer._constants import Key


def _text(codes) -> str:
    return "".join("ACGTN"[c] for c in codes)


def _cpgs(chroms, positions) -> ad.AnnData:
    adata = ad.AnnData(np.zeros((2, len(positions)), dtype=np.float32))
    adata.var_names = [f"cpg{i}" for i in range(len(positions))]
    adata.var["chrom"] = chroms
    adata.var["pos"] = positions
    return adata


# Counted by hand on the second line of the bundled FASTA, which holds positions 20,000,061-20,000,120:
# GTCACCTGCCTGGCCAAGGACCCAGTACCAGCCGCCTCAAAGCGGGGGAATGACCACGCC
# "CG" starts at 20,000,093 (...CAGC|CG|CCTC...), 20,000,103 (...AAAG|CG|GGGG...) and 20,000,117 (...CCA|CG|CC).
KNOWN = {
    20_000_093: "CCAGCCGCCT",  # 20,000,088 .. 20,000,097
    20_000_103: "CAAAGCGGGG",  # 20,000,098 .. 20,000,107
    20_000_117: "GACCACGCCC",  # 20,000,112 .. 20,000,121 (the last C is the first base of the third line)
}


def test_real_hg19_segment_known_cpgs():
    segment = ef.datasets.hg19_chr22_segment()
    adata = _cpgs(["chr22", "22", "chr22"], list(KNOWN))
    ef.pp.cpg_sequences(adata, segment, flank=5)
    codes = adata.varm[Key.varm.seq_codes]
    assert codes.dtype == np.uint8 and codes.shape == (3, 10)
    assert [_text(row) for row in codes] == list(KNOWN.values())
    assert (codes[:, 5] == 1).all() and (codes[:, 6] == 2).all()  # the C at column `flank`, its G next
    assert adata.uns[Key.varm.seq_codes]["frac_cg_centre"] == 1.0
    assert adata.uns[Key.varm.seq_codes]["params"]["flank"] == 5


def test_real_segment_path_region_and_genome_agree():
    segment = ef.datasets.hg19_chr22_segment()
    genome = ef.io.Genome(segment.fasta, region="22:20000001-21000000")
    # every CpG of the first 50 kb, found on the raw text (not through epiformer)
    text = "".join(segment.fasta.read_text().split("\n")[1:])[:50_000].upper()
    positions = [20_000_001 + i for i in range(1000, 49_000) if text[i : i + 2] == "CG"]
    assert len(positions) > 100
    by_path = _cpgs(["chr22"] * len(positions), positions)
    ef.pp.cpg_sequences(by_path, segment.fasta, region="22:20000001-21000000", flank=400)
    by_genome = ef.pp.cpg_sequences(by_path, genome, flank=400, copy=True)
    codes = by_path.varm["seq_codes"]
    assert codes.shape == (len(positions), 800)
    np.testing.assert_array_equal(codes, by_genome.varm["seq_codes"])
    assert (codes[:, 400] == 1).all() and (codes[:, 401] == 2).all()
    i = positions[7] - 20_000_001
    assert _text(codes[7]) == text[i - 400 : i + 400]


def test_lowercase_whole_chromosome_fasta_and_mudata(tmp_path):
    (tmp_path / "g.fa").write_text(">chr1\nttacgttacg\nNNacgt\n")
    methyl = _cpgs(["1", "chr1"], [4, 9])
    rna = ad.AnnData(np.zeros((2, 1), dtype=np.float32))
    rna.var_names = ["g"]
    mdata = md.MuData({"rna": rna, "methyl": methyl})
    ef.pp.cpg_sequences(mdata, tmp_path / "g.fa", flank=2)
    assert [_text(r) for r in mdata["methyl"].varm["seq_codes"]] == ["TACG", "TACG"]
    assert "seq_codes" not in mdata["rna"].varm


def test_errors_name_offenders_and_leave_input_untouched(tmp_path):
    segment = ef.datasets.hg19_chr22_segment()
    adata = _cpgs(["chr22", "chr1"], [20_000_093, 5])
    with pytest.raises(ValueError, match="Chromosomes not in.*'1'"):
        ef.pp.cpg_sequences(adata, segment, flank=5)
    past = _cpgs(["22", "22"], [20_000_093, 20_999_990])
    with pytest.raises(ValueError, match="reach past.*22:20999990"):
        ef.pp.cpg_sequences(past, segment, flank=400)
    assert "seq_codes" not in adata.varm and "seq_codes" not in past.varm and not past.uns
    with pytest.raises(KeyError, match="var"):
        ef.pp.cpg_sequences(ad.AnnData(np.zeros((1, 1))), segment)
    with pytest.raises(ValueError, match="flank"):
        ef.pp.cpg_sequences(adata, segment, flank=0)


def test_warns_when_centres_are_not_cpgs():
    segment = ef.datasets.hg19_chr22_segment()
    off_by_one = _cpgs(["22"] * 3, [p + 1 for p in KNOWN])
    with pytest.warns(UserWarning, match="0% of the windows have a CG"):
        ef.pp.cpg_sequences(off_by_one, segment, flank=5)


def test_synthetic_multiome_fasta_centres(synthetic_small):
    mdata = synthetic_small.copy()
    ef.pp.cpg_sequences(mdata, mdata.uns["synthetic"]["fasta"], flank=100)
    codes = mdata["methyl"].varm["seq_codes"]
    assert codes.shape == (mdata["methyl"].n_vars, 200)
    assert (codes[:, 100] == 1).all() and (codes[:, 101] == 2).all()
    # the planted density (CpGs within +-100 bp) is read off the sequence
    density = ((codes[:, :-1] == 1) & (codes[:, 1:] == 2)).sum(axis=1)
    truth = mdata["methyl"].var["cpg_density"].to_numpy()
    assert (density <= truth).all() and np.corrcoef(density, truth)[0, 1] > 0.95
