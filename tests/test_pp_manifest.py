"""`ef.io.read_manifest`, `ef.pp.annotate_probes` and `ef.pp.loci_to_probes`, on small manifests in the real layouts.

The fixture files copy each real file's exact column layout (every column, in order) with a few probes:

- Illumina CSV, 450k (``HumanMethylation450_15017482_v1-2.csv``), EPIC v1 b5
  (``infinium-methylationepic-v-1-0-b5-manifest-file.csv``) and EPICv2 A1 / A2 (``EPIC-8v2-0_A1.csv`` /
  ``_A2.csv``): column order, the 7-line ``[Heading]`` block and one annotated example row per array from the
  ewastools package, ``hhhh5/ewastools`` ``data-raw/manifest.R`` (cg00035864 450k: Y 8553009; cg07881041 EPIC b5:
  19 5236016 R, hg38 chr19 5236004-5236006 +; cg25324105_BC11 EPICv2: chr19 37692358 F, GRCh38); column meanings
  from Illumina's "Infinium MethylationEPIC / Methylation450K Manifest Column Headings" (knowledge.illumina.com
  000001568 and 000001567). cg00000029 = chr16:53468112 (450k, hg19) as in TCGA / minfi tables.
- InfiniumAnnotation TSV, the current 28-column layout of ``EPIC.hg38.manifest.tsv.gz`` /
  ``EPICv2.hg38.manifest.tsv.gz`` as SeSAMe reads it (``zwdzwd/sesame`` ``R/sesameAnno.R``,
  ``sesameAnno_readManifestTSV``; zwdzwd.github.io/InfiniumAnnotation/manifestV2.html), and the 2017 layout of
  ``hm450.hg19.manifest.tsv.gz`` with ``probe_strand`` (zwdzwd.github.io/InfiniumAnnotation/manifest.html).
"""

from __future__ import annotations

import gzip
import logging
from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse

import epiformer as ef
from epiformer.models import MethylGPT, MethylGPTVocab

HM450_COLUMNS = (
    "IlmnID,Name,AddressA_ID,AlleleA_ProbeSeq,AddressB_ID,AlleleB_ProbeSeq,Infinium_Design_Type,Next_Base,"
    "Color_Channel,Forward_Sequence,Genome_Build,CHR,MAPINFO,SourceSeq,Chromosome_36,Coordinate_36,Strand,"
    "Probe_SNPs,Probe_SNPs_10,Random_Loci,Methyl27_Loci,UCSC_RefGene_Name,UCSC_RefGene_Accession,UCSC_RefGene_Group,"
    "UCSC_CpG_Islands_Name,Relation_to_UCSC_CpG_Island,Phantom,DMR,Enhancer,HMM_Island,Regulatory_Feature_Name,"
    "Regulatory_Feature_Group,DHS"
).split(",")
EPIC_COLUMNS = (
    "IlmnID,Name,AddressA_ID,AlleleA_ProbeSeq,AddressB_ID,AlleleB_ProbeSeq,Infinium_Design_Type,Next_Base,"
    "Color_Channel,Forward_Sequence,Genome_Build,CHR,MAPINFO,SourceSeq,Strand,UCSC_RefGene_Name,"
    "UCSC_RefGene_Accession,UCSC_RefGene_Group,UCSC_CpG_Islands_Name,Relation_to_UCSC_CpG_Island,Phantom4_Enhancers,"
    "Phantom5_Enhancers,DMR,450k_Enhancer,HMM_Island,Regulatory_Feature_Name,Regulatory_Feature_Group,"
    "GencodeBasicV12_NAME,GencodeBasicV12_Accession,GencodeBasicV12_Group,GencodeCompV12_NAME,"
    "GencodeCompV12_Accession,GencodeCompV12_Group,DNase_Hypersensitivity_NAME,DNase_Hypersensitivity_Evidence_Count,"
    "OpenChromatin_NAME,OpenChromatin_Evidence_Count,TFBS_NAME,TFBS_Evidence_Count,Methyl27_Loci,Methyl450_Loci,"
    "Chromosome_36,Coordinate_36,SNP_ID,SNP_DISTANCE,SNP_MinorAlleleFrequency,Random_Loci,MFG_Change_Flagged,"
    "CHR_hg38,Start_hg38,End_hg38,Strand_hg38"
).split(",")
EPICV2_A1_COLUMNS = (
    "IlmnID,Name,AddressA_ID,AlleleA_ProbeSeq,AddressB_ID,AlleleB_ProbeSeq,Next_Base,Color_Channel,col,Probe_Type,"
    "Strand_FR,Strand_TB,Strand_CO,Infinium_Design,Infinium_Design_Type,CHR,MAPINFO,Species,Genome_Build,Source_Seq,"
    "Forward_Sequence,Top_Sequence,Rep_Num,UCSC_RefGene_Group,UCSC_RefGene_Name,UCSC_RefGene_Accession,"
    "UCSC_CpG_Islands_Name,Relation_to_UCSC_CpG_Island,GencodeV41_Group,GencodeV41_Name,GencodeV41_Accession,"
    "Phantom5_Enhancers,HMM_Island,Regulatory_Feature_Name,Regulatory_Feature_Group,450k_Enhancer,DMR,"
    "DNase_Hypersensitivity_NAME,Encode_CisReg_Site,Encode_CisReg_Site_Evid,OpenChromatin_NAME,"
    "OpenChromatin_Evidence_Count,Methyl450_Loci,Methyl27_Loci,EPICv1_Loci,Manifest_probe_match,SNP_ID,SNP_DISTANCE,"
    "SNP_MinorAlleleFrequency"
).split(",")
EPICV2_A2_COLUMNS = [*EPICV2_A1_COLUMNS, "CHR_37", "MAPINFO_37"]
INFINIUM_COLUMNS = (
    "CpG_chrm CpG_beg CpG_end address_A address_B target nextBase channel Probe_ID mapFlag_A mapChrm_A mapPos_A "
    "mapQ_A mapCigar_A AlleleA_ProbeSeq mapNM_A mapAS_A mapYD_A mapFlag_B mapChrm_B mapPos_B mapQ_B mapCigar_B "
    "AlleleB_ProbeSeq mapNM_B mapAS_B mapYD_B type"
).split()
INFINIUM_2017_COLUMNS = (
    "CpG_chrm CpG_beg CpG_end probe_strand Probe_ID address_A address_B channel designType nextBase nextBaseRef "
    "probeType orientation probeCpGcnt context35 probeBeg probeEnd ProbeSeq_A ProbeSeq_B gene gene_HGNC chrm_A beg_A "
    "flag_A mapQ_A cigar_A NM_A chrm_B beg_B flag_B mapQ_B cigar_B NM_B wDecoy_chrm_A wDecoy_beg_A wDecoy_mapQ_A "
    "wDecoy_cigar_A wDecoy_NM_A wDecoy_chrm_B wDecoy_beg_B wDecoy_mapQ_B wDecoy_cigar_B wDecoy_NM_B posMatch "
    "MASK.mapping MASK.typeINextBaseSwitch MASK.rmsk15 MASK.sub25.copy MASK.sub30.copy MASK.sub35.copy "
    "MASK.sub40.copy MASK.snp5.common MASK.snp5.GMAF1p MASK.extBase MASK.general"
).split()
CONTROLS = [
    "21630339,STAINING,-99,DNP (High)",
    "27630314,STAINING,Green,Biotin (Bkg)",
    "34648333,HYBRIDIZATION,Red,High",
]


def _write(path, text: str):
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def _illumina(path, columns, rows, *, loci_count=None, controls=True, descriptor="HumanMethylation450_15017482_v.1.2"):
    """An Illumina manifest CSV: heading block, [Assay], header, one line per probe (dict), then [Controls]."""
    width = len(columns)

    def line(*cells) -> str:
        return ",".join([*map(str, cells), *[""] * (width - len(cells))])

    count = len(rows) if loci_count is None else loci_count
    lines = [
        "Illumina, Inc." + "," * (width - 2),
        line("[Heading]"),
        line("Descriptor File Name", f"{descriptor}.bpm"),
        line("Assay Format", "Infinium HD Methylation"),
        line("Date Manufactured", "5/4/2010"),
        line("Loci Count ", count),
        line("[Assay]"),
        ",".join(columns),
        *(",".join(str(row.get(c, "")) for c in columns) for row in rows),
    ]
    if controls:  # 4 fields per control probe; one line wider than the probe table, which must not be parsed
        lines += [line("[Controls]"), *(line(*c.split(",")) for c in CONTROLS), ",".join(["0"] * (width + 7))]
    return _write(path, "\n".join(lines) + "\n")


def _infinium(path, columns, rows):
    """An InfiniumAnnotation TSV: one line per probe (dict), 'NA' where a value is missing."""
    lines = ["\t".join(columns), *("\t".join(str(row.get(c, "NA")) for c in columns) for row in rows)]
    return _write(path, "\n".join(lines) + "\n")


def _probe(name, chrom, pos, strand="F", build="37", **extra):
    return {"IlmnID": name, "Name": name, "Genome_Build": build, "CHR": chrom, "MAPINFO": pos, "Strand": strand} | extra


HM450_ROWS = [
    _probe("cg00035864", "Y", 8553009, AddressA_ID=31729416, Infinium_Design_Type="II"),
    _probe("cg00000029", "16", 53468112, AddressA_ID=14782418, Infinium_Design_Type="II"),
    _probe("cg03653856", "3", 197500859, "R", Infinium_Design_Type="I"),
    _probe("cg99999901", "", "", ""),  # no coordinates: kept as unmapped
]


# ------------------------------------------------------------------------------------------------ read_manifest


@pytest.mark.parametrize("name", ["HumanMethylation450_15017482_v1-2.csv", "HumanMethylation450_15017482_v1-2.csv.gz"])
def test_read_illumina_450k(tmp_path, name):
    table = ef.io.read_manifest(_illumina(tmp_path / name, HM450_COLUMNS, HM450_ROWS))
    assert list(table.index) == ["cg00035864", "cg00000029", "cg03653856", "cg99999901"]  # [Controls] ignored
    assert list(table.columns) == ["chrom", "pos", "strand"]
    assert table["chrom"].iloc[:3].tolist() == ["Y", "16", "3"]
    assert table["pos"].iloc[:3].tolist() == [8553009, 53468112, 197500859]
    assert table["pos"].dtype == "Int64"
    assert table["strand"].iloc[:3].tolist() == ["+", "+", "-"]
    assert table.loc["cg99999901"].isna().all()
    assert table.attrs["build"] == "hg19" and table.attrs["format"] == "illumina"


def test_read_illumina_epic_v1_builds(tmp_path):
    rows = [
        _probe(
            "cg07881041", "19", 5236016, "R", CHR_hg38="chr19", Start_hg38=5236004, End_hg38=5236006, Strand_hg38="+"
        ),
        _probe("cg18478105", "20", 61847650, "F"),  # no hg38 mapping
    ]
    path = _illumina(tmp_path / "infinium-methylationepic-v-1-0-b5-manifest-file.csv", EPIC_COLUMNS, rows)
    hg19 = ef.io.read_manifest(path)
    assert hg19.loc["cg07881041"].tolist() == ["19", 5236016, "-"] and hg19.attrs["build"] == "hg19"
    assert ef.io.read_manifest(path, build="hg19").equals(hg19)
    hg38 = ef.io.read_manifest(path, build="hg38")
    assert hg38.loc["cg07881041"].tolist() == ["chr19", 5236005, "+"]  # Start_hg38 is 0-based: the C is Start + 1
    assert hg38.loc["cg18478105"].isna().all()
    assert hg38.attrs["build"] == "hg38" and hg38.attrs["coordinates"] == "Start_hg38 + 1"


def test_read_illumina_epic_v2(tmp_path):
    row = {"IlmnID": "cg25324105_BC11", "Name": "cg25324105", "CHR": "chr19", "MAPINFO": 37692358, "Strand_FR": "F"}
    rows = [row | {"Genome_Build": "GRCh38", "CHR_37": "19", "MAPINFO_37": 38183260}]  # hg19 value: a placeholder
    rows += [rows[0] | {"IlmnID": "cg25324105_TC11", "Strand_FR": "R"}]
    a2 = ef.io.read_manifest(_illumina(tmp_path / "EPIC-8v2-0_A2.csv", EPICV2_A2_COLUMNS, rows))
    assert list(a2.index) == ["cg25324105_BC11", "cg25324105_TC11"]  # the full IlmnID
    assert a2.loc["cg25324105_BC11"].tolist() == ["chr19", 37692358, "+"] and a2.attrs["build"] == "hg38"
    hg19 = ef.io.read_manifest(tmp_path / "EPIC-8v2-0_A2.csv", build="hg19")
    assert hg19.loc["cg25324105_TC11"].tolist() == ["19", 38183260, "-"]
    a1 = _illumina(tmp_path / "EPIC-8v2-0_A1.csv", EPICV2_A1_COLUMNS, rows)
    with pytest.raises(ValueError, match=r"hg38 coordinates.*not `build='hg19'`"):
        ef.io.read_manifest(a1, build="hg19")


def test_read_infinium_annotation(tmp_path):
    rows = [
        {"CpG_chrm": "chr19", "CpG_beg": 5236004, "CpG_end": 5236006, "Probe_ID": "cg07881041", "mapFlag_A": 16},
        {"CpG_chrm": "chr16", "CpG_beg": 53434199, "CpG_end": 53434201, "Probe_ID": "cg00000029", "mapFlag_A": 0},
        {"CpG_chrm": "chr1", "CpG_beg": 1000, "CpG_end": 1001, "Probe_ID": "ch.1.1001F", "mapFlag_A": 0},  # CpH: 1 bp
        {"Probe_ID": "cg99999902"},  # NA coordinates: unmapped
    ]
    path = _infinium(tmp_path / "EPIC.hg38.manifest.tsv.gz", INFINIUM_COLUMNS, rows)
    table = ef.io.read_manifest(path)
    assert list(table.index) == ["cg07881041", "cg00000029", "ch.1.1001F", "cg99999902"]
    assert table["pos"].iloc[:3].tolist() == [5236005, 53434200, 1001]  # CpG_beg + 1
    assert table["chrom"].iloc[:3].tolist() == ["chr19", "chr16", "chr1"]
    assert table["strand"].iloc[:3].tolist() == ["-", "+", "+"]  # mapFlag_A 16 = reverse
    assert table.loc["cg99999902"].isna().all()
    assert table.attrs["build"] == "hg38" and table.attrs["format"] == "infinium_annotation"
    with pytest.raises(ValueError, match=r"holds hg38 coordinates.*EPIC\.hg38\.manifest"):
        ef.io.read_manifest(path, build="hg19")


def test_read_infinium_annotation_2017_layout(tmp_path):
    rows = [
        {"CpG_chrm": "chr16", "CpG_beg": 53468111, "CpG_end": 53468113, "probe_strand": "-", "Probe_ID": "cg00000029"},
        {"CpG_chrm": "NA", "CpG_beg": "NA", "CpG_end": "NA", "probe_strand": "*", "Probe_ID": "cg00000165"},
    ]
    table = ef.io.read_manifest(_infinium(tmp_path / "hm450.hg19.manifest.tsv", INFINIUM_2017_COLUMNS, rows))
    assert table.loc["cg00000029"].tolist() == ["chr16", 53468112, "-"]
    assert table.loc["cg00000165"].isna().all()
    assert table.attrs["build"] == "hg19"


def test_read_manifest_refuses(tmp_path):
    path = _illumina(tmp_path / "HumanMethylation450_15017482_v1-2.csv", HM450_COLUMNS, HM450_ROWS)
    with pytest.raises(ValueError, match=r"holds hg19 coordinates.*not `build='hg38'`"):
        ef.io.read_manifest(path, build="hg38")
    with pytest.raises(ValueError, match="`build` must be"):
        ef.io.read_manifest(path, build="GRCh38")
    other = tmp_path / "probes.csv"
    other.write_text("probe,chr,pos\ncg00000029,chr16,53468112\n")
    with pytest.raises(ValueError, match=r"probes\.csv is not a manifest.*Illumina manifest CSV.*InfiniumAnnotation"):
        ef.io.read_manifest(other)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        ef.io.read_manifest(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError):
        ef.io.read_manifest(tmp_path / "absent.csv")


def test_read_manifest_truncated_or_garbage(tmp_path):
    short = _illumina(tmp_path / "short.csv", HM450_COLUMNS, HM450_ROWS, loci_count=485577, controls=False)
    with pytest.raises(ValueError, match=r"short\.csv.*announces 485,577 loci but only 4"):
        ef.io.read_manifest(short)
    full = _illumina(tmp_path / "m.csv.gz", HM450_COLUMNS, HM450_ROWS)
    (tmp_path / "cut.csv.gz").write_bytes(full.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"cut\.csv\.gz could not be read.*truncated or corrupt"):
        ef.io.read_manifest(tmp_path / "cut.csv.gz")
    (tmp_path / "head.csv").write_text("Illumina, Inc.,,\n[Heading],,\nDescriptor File Name,x.bpm,\n")
    with pytest.raises(ValueError, match=r"head\.csv.*'\[Assay\]' line"):
        ef.io.read_manifest(tmp_path / "head.csv")
    bad = [*HM450_ROWS[:2], _probe("cg00000108", "3", "37459206x")]
    with pytest.raises(ValueError, match=r"'MAPINFO' holds values that are not positions \(cg00000108 = '37459206x'\)"):
        ef.io.read_manifest(_illumina(tmp_path / "bad.csv", HM450_COLUMNS, bad))
    text = "\t".join(INFINIUM_COLUMNS) + "\nchr1\t10\t12\t" + "1\t" * 5 + "cg00000001\nchr1\t20"
    (tmp_path / "EPIC.hg38.manifest.tsv").write_text(text)
    with pytest.raises(ValueError, match="data row 2 has no probe ID"):
        ef.io.read_manifest(tmp_path / "EPIC.hg38.manifest.tsv")
    dup = _illumina(tmp_path / "dup.csv", HM450_COLUMNS, [HM450_ROWS[0], HM450_ROWS[0]])
    with pytest.raises(ValueError, match="listed more than once: 'cg00035864'"):
        ef.io.read_manifest(dup)


# ---------------------------------------------------------------------------------------------- annotate_probes


def _array(names) -> AnnData:
    X = np.random.default_rng(0).uniform(0, 1, (3, len(names))).astype(np.float32)
    return AnnData(X=X, obs=pd.DataFrame(index=["s1", "s2", "s3"]), var=pd.DataFrame(index=list(names)))


def test_annotate_probes_in_place_and_copy(tmp_path, unchanged):
    path = _illumina(tmp_path / "HumanMethylation450_15017482_v1-2.csv", HM450_COLUMNS, HM450_ROWS)
    adata = _array(["cg00000029", "cg03653856", "cg00035864"])
    X = adata.X.copy()
    with unchanged(adata):
        copied = ef.pp.annotate_probes(adata, manifest=path, copy=True)
    assert ef.pp.annotate_probes(adata, manifest=ef.io.read_manifest(path)) is None
    for out in (adata, copied):
        assert out.var["chrom"].tolist() == ["16", "3", "Y"]
        assert out.var["pos"].tolist() == [53468112, 197500859, 8553009]
        assert out.var["strand"].tolist() == ["+", "-", "+"]
        record = out.uns["annotate_probes"]
        assert record["n_annotated"] == 3 and record["n_missing"] == 0 and record["build"] == "hg19"
        np.testing.assert_array_equal(out.X, X)
    assert copied.uns["annotate_probes"]["manifest"] == str(path)


def test_annotate_probes_missing_and_epic_v2_suffixes(tmp_path):
    rows = [
        {"CpG_chrm": "chr19", "CpG_beg": 37692357, "CpG_end": 37692359, "Probe_ID": "cg25324105_BC11", "mapFlag_A": 0},
        {"CpG_chrm": "chr19", "CpG_beg": 37692357, "CpG_end": 37692359, "Probe_ID": "cg25324105_TC11", "mapFlag_A": 16},
        {"CpG_chrm": "chr1", "CpG_beg": 100, "CpG_end": 102, "Probe_ID": "cg00000001_TC11", "mapFlag_A": 0},
        {"CpG_chrm": "chr2", "CpG_beg": 500, "CpG_end": 502, "Probe_ID": "cg00000001_TC12", "mapFlag_A": 0},
        {"CpG_chrm": "chr3", "CpG_beg": 900, "CpG_end": 902, "Probe_ID": "cg00000002_BC21", "mapFlag_A": 16},
        {"Probe_ID": "cg00000003_TC21"},
    ]
    path = _infinium(tmp_path / "EPICv2.hg38.manifest.tsv.gz", INFINIUM_COLUMNS, rows)
    names = ["cg25324105", "cg00000002_BC21", "cg00000001", "cg12345678", "cg00000003_TC21", "cg00000002"]
    adata = _array(names)
    with pytest.warns(UserWarning, match=r"2 of 6 probes are not in the manifest .*\(1,? of them match probes on"):
        ef.pp.annotate_probes(adata, manifest=path)
    var = adata.var
    assert var.loc["cg25324105", "pos"] == 37692358 and pd.isna(var.loc["cg25324105", "strand"])  # replicates: +/-
    assert var.loc["cg00000002_BC21"].tolist() == ["chr3", 901, "-"]  # exact
    assert var.loc["cg00000002"].tolist() == ["chr3", 901, "-"]  # bare name, one candidate
    assert var.loc[["cg00000001", "cg12345678", "cg00000003_TC21"]].isna().all().all()  # ambiguous, absent, unmapped
    assert adata.uns["annotate_probes"] == {
        "manifest": str(path),
        "build": "hg38",
        "n_annotated": 4,
        "n_unmapped": 1,
        "n_missing": 2,
        "n_ambiguous": 1,
    }
    suffixed = _array(["cg00000029_TC21", "cg00000029_BC21"])  # EPICv2 names against a 450k manifest
    hm450 = _illumina(tmp_path / "HumanMethylation450_15017482_v1-2.csv", HM450_COLUMNS, HM450_ROWS)
    ef.pp.annotate_probes(suffixed, manifest=hm450)
    assert suffixed.var["pos"].tolist() == [53468112, 53468112]


def test_annotate_probes_refuses_and_leaves_input(tmp_path, refuses):
    path = _illumina(tmp_path / "HumanMethylation450_15017482_v1-2.csv", HM450_COLUMNS, HM450_ROWS)
    adata = _array(["ENSG00000141510", "ENSG00000012048"])
    refuses(lambda: ef.pp.annotate_probes(adata, manifest=path), ValueError, "do not look like this manifest's", adata)
    probes = _array(["cg00000029"])
    refuses(lambda: ef.pp.annotate_probes(probes, manifest=path, build="hg38"), ValueError, "hg19 coordinates", probes)
    wrong = pd.DataFrame({"chrom": ["1"]}, index=["cg00000029"])
    refuses(lambda: ef.pp.annotate_probes(probes, manifest=wrong), KeyError, "lacks columns", probes)


# ----------------------------------------------------------------------------------------------- loci_to_probes


def _sites(rows, samples=("a", "b")) -> AnnData:
    """Sequencing sites: rows of (chrom, pos, strand, [mc per sample], [cov per sample]), layers `mc` / `cov`."""
    var = pd.DataFrame(
        {"chrom": [r[0] for r in rows], "pos": [r[1] for r in rows], "strand": [r[2] for r in rows]},
        index=[f"{r[0]}:{r[1]}{r[2]}" for r in rows],
    )
    mc = sparse.csr_matrix(np.array([r[3] for r in rows], dtype=np.int32).T)
    cov = sparse.csr_matrix(np.array([r[4] for r in rows], dtype=np.int32).T)
    return AnnData(obs=pd.DataFrame(index=list(samples)), var=var, layers={"mc": mc, "cov": cov})


#: Probes on hg19 chr1 / chr2 in the 450k layout (CHR without 'chr', as Illumina writes it).
SMALL = [_probe(f"cg0000000{i}", "1", 100 * i) for i in range(1, 8)] + [_probe("cg00000010", "2", 50, "R")]
#: Sites named 'chr1' / 'chr2': a + and a - site on cg01's CpG, '.' sites, one site off every probe.
SITES = [
    ("chr1", 100, "+", [3, 0], [4, 1]),
    ("chr1", 101, "-", [1, 1], [2, 1]),
    ("chr1", 150, ".", [5, 5], [5, 5]),
    ("chr1", 200, ".", [2, 0], [2, 1]),
    ("chr1", 301, "-", [0, 4], [0, 6]),
    ("chr1", 400, ".", [1, 2], [3, 2]),
    ("chr1", 500, "+", [0, 0], [1, 1]),
    ("chr2", 50, ".", [0, 0], [0, 0]),
]


@pytest.fixture
def small_manifest(tmp_path):
    return _illumina(tmp_path / "HumanMethylation450_15017482_v1-2.csv", HM450_COLUMNS, SMALL)


def test_loci_to_probes_sums_strands(small_manifest, caplog, unchanged):
    adata = _sites(SITES)
    with unchanged(adata):
        with caplog.at_level(logging.INFO, logger="epiformer"):
            out = ef.pp.loci_to_probes(adata, manifest=small_manifest)
    assert list(out.var_names) == ["cg00000001", "cg00000002", "cg00000003", "cg00000004", "cg00000005"]
    assert out.var["chrom"].tolist() == ["1"] * 5 and out.var["pos"].tolist() == [100, 200, 300, 400, 500]
    assert out.layers["cov"].toarray().tolist() == [[6, 2, 0, 3, 1], [2, 1, 6, 2, 1]]  # + at 100 and - at 101 summed
    assert out.layers["mc"].toarray().tolist() == [[4, 2, 0, 1, 0], [1, 0, 4, 2, 0]]
    assert sparse.issparse(out.layers["mc"]) and out.layers["cov"].dtype == np.int32
    np.testing.assert_allclose(out.X, [[4 / 6, 1, np.nan, 1 / 3, 0], [0.5, 0, 4 / 6, 1, 0]], rtol=1e-6)
    assert out.X.dtype == np.float32
    assert out.obs["n_probes_covered"].tolist() == [4, 5] and list(out.obs_names) == ["a", "b"]
    assert out.uns["loci_to_probes"] == {
        "manifest": str(small_manifest),
        "build": "hg19",
        "min_coverage": 1,
        "n_probes": 8,
        "n_probes_mapped": 8,
        "n_probes_covered": 5,
        "n_sites": 8,
        "n_sites_on_probes": 7,
    }
    assert any("7 of 8 sites lie on probe CpGs" in r.getMessage() for r in caplog.records)


def test_loci_to_probes_min_coverage(small_manifest, unchanged):
    out = ef.pp.loci_to_probes(_sites(SITES), manifest=small_manifest, min_coverage=2)
    assert list(out.var_names) == ["cg00000001", "cg00000002", "cg00000003", "cg00000004"]  # cg05: 1 read each
    assert out.layers["cov"].toarray().tolist() == [[6, 2, 0, 3], [2, 0, 6, 2]]
    assert out.layers["mc"].toarray().tolist() == [[4, 2, 0, 1], [1, 0, 4, 2]]
    assert np.isnan(out.X[1, 1]) and out.obs["n_probes_covered"].tolist() == [3, 3]
    adata = _sites(SITES)
    with unchanged(adata), pytest.raises(ValueError, match="lower `min_coverage`"):
        ef.pp.loci_to_probes(adata, manifest=small_manifest, min_coverage=100)
    with pytest.raises(ValueError, match="at least 1"):
        ef.pp.loci_to_probes(_sites(SITES), manifest=small_manifest, min_coverage=0)


def test_loci_to_probes_refuses_and_leaves_input(small_manifest, unchanged):
    shifted = [(c, p - 1, s, m, n) for c, p, s, m, n in SITES]  # 0-based positions read as 1-based
    for adata, match in [
        (_sites(shifted), r"Only 0 of the 8 sites lie on probe CpGs.*but 7 do when shifted by \+1.*off by one"),
        (_sites([("chrX", p, s, m, n) for _, p, s, m, n in SITES]), r"have none in common"),
        (_sites([(c, p + 7, s, m, n) for c, p, s, m, n in SITES]), r"another genome build .*hg19"),
    ]:
        with unchanged(adata), pytest.raises(ValueError, match=match):
            ef.pp.loci_to_probes(adata, manifest=small_manifest)
    bad = _sites(SITES)
    bad.var["strand"] = "*"
    no_counts = _sites(SITES)
    del no_counts.layers["cov"]
    for adata, error, match, options in [
        (bad, ValueError, r"'\+', '-' or '\.'", {}),
        (no_counts, KeyError, "'cov'", {}),
        (_sites(SITES), ValueError, r"hg19 coordinates.*not `build='hg38'`", {"build": "hg38"}),
    ]:
        with unchanged(adata), pytest.raises(error, match=match):
            ef.pp.loci_to_probes(adata, manifest=small_manifest, **options)


def test_loci_to_probes_warns_on_unlabelled_minus_strand(small_manifest):
    rows = [(c, p, ".", m, n) for c, p, s, m, n in SITES]  # the '-' calls at 101 and 301 without their strand
    rows += [("chr1", 601, ".", [1, 1], [1, 1]), ("chr1", 701, ".", [1, 1], [1, 1]), ("chr1", 201, ".", [1, 1], [1, 1])]
    with pytest.warns(UserWarning, match=r"5 sites lie one base after a probe CpG"):
        ef.pp.loci_to_probes(_sites(rows), manifest=small_manifest)


# ------------------------------------------------------------------------------------ real data: IMR90 WGBS chr22


@cache
def _imr90() -> AnnData:
    return ef.datasets.imr90_wgbs_chr22()


def _imr90_probes() -> tuple[list[str], np.ndarray, np.ndarray]:
    """40 fake probes on real IMR90 CpGs, and 3 on hg19 chr22 positions the data do not cover."""
    pos = _imr90().var["pos"].to_numpy()
    on = pos[np.arange(0, len(pos), 320)[:40]]
    taken = set(pos) | set(pos + 1) | set(pos - 1)
    off = np.array([p for p in range(20_000_001, 21_000_000, 997) if p not in taken][:3])
    ids = [f"cg9{i:07d}" for i in range(1, 44)]
    return ids, on, off


@pytest.mark.parametrize("layout", ["illumina", "infinium"])
def test_imr90_wgbs_to_methylgpt(tmp_path, layout, unchanged):
    adata = _imr90().copy()
    ids, on, off = _imr90_probes()
    positions = np.r_[on, off]
    if layout == "illumina":
        rows = [_probe(i, "22", p) for i, p in zip(ids, positions, strict=True)] + [_probe("cg98000001", "", "")]
        path = _illumina(tmp_path / "HumanMethylation450_15017482_v1-2.csv.gz", HM450_COLUMNS, rows)
    else:
        rows = [
            {"CpG_chrm": "chr22", "CpG_beg": p - 1, "CpG_end": p + 1, "Probe_ID": i, "mapFlag_A": 0}
            for i, p in zip(ids, positions, strict=True)
        ] + [{"Probe_ID": "cg98000001"}]
        path = _infinium(tmp_path / "HM450.hg19.manifest.tsv.gz", INFINIUM_COLUMNS, rows)
    with unchanged(adata):
        out = ef.pp.loci_to_probes(adata, manifest=path)

    site = adata.var_names.get_indexer([f"chr22:{p}" for p in on])
    cov, mc = adata.layers["cov"][:, site].toarray(), adata.layers["mc"][:, site].toarray()
    covered = cov.sum(axis=0) > 0
    assert list(out.var_names) == [i for i, c in zip(ids, covered, strict=False) if c]
    assert out.var["pos"].tolist() == on[covered].tolist()
    np.testing.assert_array_equal(out.layers["cov"].toarray(), cov[:, covered])
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(out.X, np.where(cov > 0, mc / cov, np.nan)[:, covered], rtol=1e-6)
    assert out.obs["n_probes_covered"].tolist() == (cov > 0).sum(axis=1).tolist()
    summary = out.uns["loci_to_probes"]
    assert (summary["n_sites"], summary["n_sites_on_probes"], summary["n_probes"], summary["n_probes_mapped"]) == (
        12_914,
        40,
        44,
        43,
    )
    assert summary["n_probes_covered"] == covered.sum() > 30 and summary["build"] == "hg19"
    assert out.uns["dataset"]["name"] == "IMR90_WGBS_chr22"

    torch.manual_seed(0)
    model = MethylGPT(MethylGPTVocab.from_probes([*ids, "cg97000001"]), d_model=16, n_layers=2, n_heads=2)
    ef.tl.embed(out, model, progress=False, device="cpu")
    emb = out.obsm["X_methylgpt"]
    assert emb.shape == (2, 16) and np.isfinite(emb).all()
    assert out.uns["methylgpt"]["params"]["n_found"] == covered.sum()
    ef.tl.impute(out, model, progress=False, device="cpu")
    imputed = out.layers["methylgpt_imputed"]
    assert imputed.shape == out.shape and not np.isnan(imputed).any()
    observed = ~np.isnan(out.X)
    np.testing.assert_array_equal(imputed[observed], out.X[observed])  # only the uncovered entries are filled

    zero_based = adata.copy()
    zero_based.var["pos"] = zero_based.var["pos"] - 1
    with (
        unchanged(zero_based),
        pytest.raises(ValueError, match=r"Only 0 of the 12,914 sites.*but 40 do when shifted by \+1"),
    ):
        ef.pp.loci_to_probes(zero_based, manifest=path)
