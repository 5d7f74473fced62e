"""`ef.io.read_vcf`: VCF records to the variant table of `ef.tl.variant_effect`, and VCF paths as `variants=`."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

sys.path.insert(0, str(Path(__file__).parent))
from epigept_published import perturb, small_config

import epiformer as ef
from epiformer._sequence import encode
from epiformer.models import EpiGePT

pysam = pytest.importorskip("pysam")

HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=chr22,length=50818468>\n"
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
)
RECORDS = [
    "chr22\t100\trs1\tA\tG\t50\tPASS\tDP=10",
    "chr22\t200\t.\tc\tt\t.\t.\t.",  # lower-case alleles, no ID
    "chr22\t300\trs3\tA\tC,G\t.\t.\t.",  # multi-allelic: two rows
    "chr22\t400\trs4\tAT\tA\t.\t.\t.",  # deletion
    "chr22\t500\tsv1\tG\t<DEL>\t.\t.\t.",  # symbolic
    "chr22\t600\t.\tT\tC,*\t.\t.\t.",  # one SNV and a spanning deletion
]
EXPECTED = pd.DataFrame(
    {
        "chrom": ["chr22"] * 5,
        "pos": np.array([100, 200, 300, 300, 600], dtype=np.int64),
        "ref": ["A", "C", "A", "A", "T"],
        "alt": ["G", "T", "C", "G", "C"],
        "id": ["rs1", "chr22:200:C>T", "rs3", "rs3", "chr22:600:T>C"],
    },
    index=["rs1", "chr22:200:C>T", "chr22:300:A>C", "chr22:300:A>G", "chr22:600:T>C"],
)


def _write(path: Path, records: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(f"{r}\n" for r in records))
    return path


@pytest.fixture
def vcf(tmp_path) -> Path:
    return _write(tmp_path / "calls.vcf", RECORDS)


def test_snvs_and_multiallelic_split(tmp_path):
    snvs = [r for i, r in enumerate(RECORDS) if i in (0, 1, 2)]
    table = ef.io.read_vcf(_write(tmp_path / "snvs.vcf", snvs))
    pd.testing.assert_frame_equal(table, EXPECTED.iloc[:4])


def test_a_repeated_record_is_read_once_with_a_warning(tmp_path):
    path = _write(tmp_path / "twice.vcf", [*RECORDS[:3], RECORDS[0], "chr22\t300\t.\tA\tG\t.\t.\t."])
    with pytest.warns(UserWarning, match=r"dropped 2 repeated alleles .* 'chr22:100 A>G', 'chr22:300 A>G'"):
        table = ef.io.read_vcf(path)
    pd.testing.assert_frame_equal(table, EXPECTED.iloc[:4])
    assert table.index.is_unique


def test_indels_raise_by_default(vcf):
    with pytest.raises(ValueError, match=r"calls\.vcf: 3 alleles are not single-base") as err:
        ef.io.read_vcf(vcf)
    message = str(err.value)
    assert "'chr22:400 AT>A', 'chr22:500 G><DEL>', 'chr22:600 T>*'" in message
    assert 'indels="drop"' in message


def test_indels_drop_with_a_count(vcf):
    with pytest.warns(UserWarning, match=r"dropped 3 alleles that are not single-base") as record:
        table = ef.io.read_vcf(vcf, indels="drop")
    assert len(record) == 1
    pd.testing.assert_frame_equal(table, EXPECTED)


def test_bgzipped_vcf_reads_the_same(vcf, tmp_path):
    gz = tmp_path / "calls.vcf.gz"
    pysam.tabix_compress(str(vcf), str(gz))
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pd.testing.assert_frame_equal(ef.io.read_vcf(gz, indels="drop"), EXPECTED)


def test_chromosome_names_kept_as_written(tmp_path):
    header = HEADER.replace("ID=chr22", "ID=22")
    table = ef.io.read_vcf(_write(tmp_path / "bare.vcf", ["22\t100\trs1\tA\tG\t.\t.\t."], header))
    assert table["chrom"].tolist() == ["22"] and table.index.tolist() == ["rs1"]


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.vcf"):
        ef.io.read_vcf(tmp_path / "missing.vcf")
    garbage = tmp_path / "garbage.vcf"
    garbage.write_text("this is\nnot a vcf\n")
    with pytest.raises(ValueError, match=r"garbage\.vcf could not be read as a VCF/BCF file"):
        ef.io.read_vcf(garbage)
    broken = _write(tmp_path / "broken.vcf", ["chr22\tnot-a-number\t.\tA\tG\t.\t.\t."])
    with pytest.raises(ValueError, match=r"broken\.vcf could not be read as a VCF/BCF file"):
        ef.io.read_vcf(broken)
    with pytest.raises(ValueError, match="`indels` must be 'raise' or 'drop'"):
        ef.io.read_vcf(garbage, indels="keep")


# variant_effect with a VCF path, on a tiny network and the bundled chr22 segment

TFS = ["T0", "T1", "T2"]
SEGMENT = ef.datasets.hg19_chr22_segment()
GENOME = ef.io.Genome(SEGMENT.fasta, region=SEGMENT.record)


def _ppm(site: str) -> np.ndarray:
    ppm = np.full((len(site), 4), 0.01)
    ppm[np.arange(len(site)), encode(site)] = 0.97
    return ppm


MOTIFS = {"T0": [_ppm("CACGTG")], "T1": [_ppm("GGGCGG")], "T2": [_ppm("TGACTCA")]}


def test_variant_effect_takes_a_vcf_path(tmp_path):
    torch.manual_seed(0)
    model = perturb(EpiGePT(small_config(tf_names=tuple(TFS), n_tfs=3)), scale=0.1).eval()
    rng = np.random.default_rng(0)
    contexts = AnnData(X=rng.uniform(0, 3, (2, 3)).astype(np.float32), var=pd.DataFrame(index=TFS))
    contexts.obs_names = ["a", "b"]
    positions = [20_400_050, 20_500_123]
    refs = ["ACGT"[GENOME.fetch("22", p, p)[0]] for p in positions]
    alts = ["T" if r != "T" else "A" for r in refs]
    header = HEADER.replace("ID=chr22,length=50818468", "ID=22,length=51304566")
    records = [
        f"22\t{positions[0]}\trsA\t{refs[0]}\t{alts[0]}\t.\t.\t.",
        f"22\t{positions[1]}\t.\t{refs[1]}\t{alts[1]}\t.\t.\t.",
    ]
    path = _write(tmp_path / "two.vcf", records, header)
    frame = pd.DataFrame(
        {
            "chrom": ["22", "22"],
            "pos": positions,
            "ref": refs,
            "alt": alts,
            "id": ["rsA", f"22:{positions[1]}:{refs[1]}>{alts[1]}"],
        },
        index=["rsA", f"22:{positions[1]}:{refs[1]}>{alts[1]}"],
    )
    options = {"fasta": SEGMENT, "motifs": MOTIFS, "progress": False, "device": "cpu"}
    from_path = ef.tl.variant_effect(contexts, model, variants=str(path), **options)
    from_frame = ef.tl.variant_effect(contexts, model, variants=frame, **options)
    from_pathlib = ef.tl.variant_effect(contexts, model, variants=path, **options)
    np.testing.assert_array_equal(from_path.X, from_frame.X)
    np.testing.assert_array_equal(from_pathlib.X, from_frame.X)
    np.testing.assert_array_equal(from_path.layers["ref"], from_frame.layers["ref"])
    assert from_path.obs_names.tolist() == frame.index.tolist()
    assert from_path.obs["id"].tolist() == frame["id"].tolist()
    assert np.abs(from_path.X).max() > 0

    indel = _write(tmp_path / "indel.vcf", [*records, f"22\t{positions[0]}\t.\t{refs[0]}A\t{refs[0]}\t.\t.\t."], header)
    with pytest.raises(ValueError, match=r"indel\.vcf: 1 alleles are not single-base.*indels=\"drop\""):
        ef.tl.variant_effect(contexts, model, variants=indel, **options)
