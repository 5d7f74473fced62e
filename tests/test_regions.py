"""Region inputs and their coordinate conventions: strings and tuples 1-based, BED and pyranges 0-based, tables stated."""

from __future__ import annotations

import gzip
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
from epiformer._sequence import bin_frame, parse_regions
from epiformer.models import EpiGePT

FIRST = [("chr22", 1, 128)]  # the first 128 bases of chr22, 1-based inclusive


def _frame(start: int, end: int, **attrs) -> pd.DataFrame:
    frame = pd.DataFrame({"chrom": ["chr22"], "start": [start], "end": [end]})
    frame.attrs.update(attrs)
    return frame


@pytest.fixture
def bed(tmp_path) -> Path:
    path = tmp_path / "regions.bed"
    path.write_text("browser position chr22:1-1000\ntrack name=peaks\n# a comment\nchr22\t0\t128\tpeak1\t0\t+\n")
    return path


def test_one_region_four_ways(bed):
    assert parse_regions("chr22:1-128") == FIRST
    assert parse_regions(bed) == FIRST
    assert parse_regions(str(bed)) == FIRST
    assert parse_regions(_frame(0, 128), coordinates="0-based") == FIRST
    assert parse_regions(_frame(1, 128), coordinates="1-based") == FIRST
    assert parse_regions(("chr22", 1, 128)) == FIRST  # tuples are 1-based, inclusive
    assert parse_regions(_frame(0, 128, coordinates="0-based")) == FIRST
    assert parse_regions(_frame(1, 128, coordinates="1-based")) == FIRST


def test_bed_files(tmp_path):
    text = "track name=x\nchr22\t0\t128\nchr22\t1000\t2000\tname\n\nchr1\t99\t100\n"
    plain = tmp_path / "many.bed"
    plain.write_text(text)
    compressed = tmp_path / "many.bed.gz"
    with gzip.open(compressed, "wt") as handle:
        handle.write(text)
    expected = [("chr22", 1, 128), ("chr22", 1001, 2000), ("chr1", 100, 100)]
    assert parse_regions(plain) == expected
    assert parse_regions(compressed) == expected
    spaces = tmp_path / "spaces.BED"
    spaces.write_text("chr22 0 128\n")
    assert parse_regions(spaces) == FIRST


def test_bed_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.bed"):
        parse_regions(tmp_path / "missing.bed")
    headers = tmp_path / "empty.bed"
    headers.write_text("# nothing\ntrack name=x\n")
    with pytest.raises(ValueError, match=r"empty\.bed holds no BED region line"):
        parse_regions(headers)
    words = tmp_path / "words.bed"
    words.write_text("chr22\tstart\tend\n")
    with pytest.raises(ValueError, match=r"words\.bed holds no BED region line"):
        parse_regions(words)
    with pytest.raises(ValueError, match=r"zero\.bed: 1 lines are not BED regions.*lines 1"):
        (tmp_path / "zero.bed").write_text("chr22\t5\t5\n")
        parse_regions(tmp_path / "zero.bed")
    with pytest.raises(ValueError, match="BED files are always 0-based"):
        parse_regions(tmp_path / "zero.bed", coordinates="1-based")
    with pytest.raises(ValueError, match="must be BED files named .bed or .bed.gz"):
        parse_regions(tmp_path / "regions.txt")


def test_table_without_coordinates_is_refused():
    with pytest.raises(ValueError, match="does not say how its coordinates count") as err:
        parse_regions(_frame(0, 128))
    assert "coordinates='0-based'" in str(err.value) and "coordinates='1-based'" in str(err.value)
    with pytest.raises(ValueError, match="contradicts"):
        parse_regions(_frame(0, 128, coordinates="0-based"), coordinates="1-based")
    with pytest.raises(ValueError, match="must be '0-based' or '1-based'"):
        parse_regions(_frame(0, 128, coordinates="bed"))
    with pytest.raises(ValueError, match="`coordinates` must be"):
        parse_regions(_frame(0, 128), coordinates="0")
    with pytest.raises(
        ValueError, match=r"1 regions of the regions table .* position 1: 'chr22:0-128' \(read as 1-based"
    ):
        parse_regions(_frame(0, 128), coordinates="1-based")
    with pytest.raises(ValueError, match="lacks columns"):
        parse_regions(pd.DataFrame({"chrom": ["chr22"], "begin": [1], "end": [2]}), coordinates="1-based")
    for start in (1.5, np.nan):  # a fractional or missing position is refused, never truncated to a base
        with pytest.raises(ValueError, match="`start` of the regions table must hold whole positions"):
            parse_regions(_frame(start, 128), coordinates="1-based")
    assert parse_regions(_frame(0.0, 128), coordinates="0-based") == FIRST  # whole floats are positions


def test_strings_and_tuples_are_always_one_based():
    with pytest.raises(ValueError, match="always 1-based"):
        parse_regions("chr22:1-128", coordinates="0-based")
    with pytest.raises(ValueError, match="always 1-based"):
        parse_regions([("chr22", 0, 128)], coordinates="0-based")
    assert parse_regions(["chr22:1-128", ("chr22", 129, 256)], coordinates="1-based") == [
        ("chr22", 1, 128),
        ("chr22", 129, 256),
    ]


def test_epiformer_bins_are_one_based_without_being_told():
    bins = bin_frame("22", 2, 3, 128)
    assert bins.attrs["coordinates"] == "1-based"
    expected = [("22", 257, 384), ("22", 385, 512), ("22", 513, 640)]
    assert parse_regions(bins) == expected
    # as the `var` of a prediction read back from disk: attrs are gone, the chrom:start-end names remain
    var = AnnData(var=bins.assign(region="22:257-640", window_id=0)).var.copy()
    var.attrs = {}
    assert parse_regions(var) == expected
    renamed = var.reset_index(drop=True)
    with pytest.raises(ValueError, match="does not say how its coordinates count"):
        parse_regions(renamed)
    assert parse_regions(var, coordinates="0-based") == [("22", 258, 384), ("22", 386, 512), ("22", 514, 640)]


class _FakePyRanges:
    """Stands in for a `pyranges.PyRanges` (0.x): the intervals live in `.df`."""

    __module__ = "pyranges.pyranges_main"

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df


def test_pyranges_layout_is_zero_based():
    ranges = _FakePyRanges(pd.DataFrame({"Chromosome": ["chr22", "chr1"], "Start": [0, 99], "End": [128, 100]}))
    assert parse_regions(ranges) == [("chr22", 1, 128), ("chr1", 100, 100)]
    with pytest.raises(ValueError, match="pyranges objects are always 0-based"):
        parse_regions(ranges, coordinates="1-based")


def test_real_pyranges():
    pr = pytest.importorskip("pyranges")
    ranges = pr.PyRanges(pd.DataFrame({"Chromosome": ["chr22"], "Start": [0], "End": [128]}))
    assert parse_regions(ranges) == FIRST


def test_predict_epigenome_reads_every_form_alike(tmp_path):
    torch.manual_seed(0)
    model = perturb(EpiGePT(small_config(tf_names=("T0", "T1", "T2"), n_tfs=3)), scale=0.1).eval()
    contexts = AnnData(X=np.random.default_rng(0).uniform(0, 3, (2, 3)).astype(np.float32))
    contexts.var_names = ["T0", "T1", "T2"]
    motifs = {"T0": [np.eye(4)[[1, 0, 2, 3]] * 0.96 + 0.01]}
    options = {"fasta": ef.datasets.hg19_chr22_segment(), "motifs": motifs, "progress": False, "device": "cpu"}
    bed = tmp_path / "one.bed"
    bed.write_text("22\t20299904\t20301184\n")  # bins 158593 .. 158602, 0-based half-open

    def predict(regions, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # T1, T2 have no motif
            return ef.tl.predict_epigenome(contexts, model, regions=regions, **options, **kwargs)

    reference = predict("22:20299905-20301184")
    assert reference.n_vars == 10 and reference.var["start"].iloc[0] == 20_299_905
    frame = pd.DataFrame({"chrom": ["22"], "start": [20_299_904], "end": [20_301_184]})
    for other in (
        predict(bed),
        predict(frame, coordinates="0-based"),
        predict(frame.assign(start=20_299_905), coordinates="1-based"),
        predict(reference.var),  # epiformer's own bins: 1-based without being told
    ):
        assert other.var_names.tolist() == reference.var_names.tolist()
        np.testing.assert_array_equal(other.layers["DNase"], reference.layers["DNase"])
    with pytest.raises(ValueError, match="does not say how its coordinates count"):
        predict(frame)
