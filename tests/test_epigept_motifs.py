"""Motif scores per bin: the torch PWM scan (known answers), p-value thresholds, JASPAR through pyjaspar."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import epiformer as ef
from epiformer import Key
from epiformer._sequence import encode
from epiformer.pp import _motifs
from epiformer.pp._motifs import MotifScanner, _pvalue_threshold

SITE = "ACGTAAGT"


def _ppm(site: str, purity: float = 0.97) -> np.ndarray:
    ppm = np.full((len(site), 4), (1 - purity) / 3)
    ppm[np.arange(len(site)), encode(site)] = purity
    return ppm


@pytest.fixture(scope="module")
def segment():
    return ef.datasets.hg19_chr22_segment()


def test_planted_sites_known_answer():
    ppm = _ppm(SITE)
    scanner = MotifScanner({"x": [ppm], "Other": [_ppm("GGGGGG")]}, ["X", "Y", "OTHER"], bin_size=128, flank=36)
    assert scanner.tfs_without_motif == ["Y"] and scanner.n_motifs.tolist() == [1, 0, 1]
    n_bins = 10
    codes = np.zeros(n_bins * 128 + 2 * scanner.margin, dtype=np.uint8)  # poly-A: no hit anywhere
    assert (scanner.scan_codes(codes) == 0).all()
    best = np.log(0.97 / 0.25) * len(SITE)
    forward = scanner.margin + 3 * 128 + 60  # centred in bin 3
    codes[forward : forward + 8] = encode(SITE)
    reverse = scanner.margin + 7 * 128 + 2  # reverse complement at the left edge of bin 7
    codes[reverse : reverse + 8] = encode("ACTTACGT")
    scores = scanner.scan_codes(codes)
    assert scores.shape == (n_bins, 3)
    hits = np.flatnonzero(scores[:, 0])
    assert hits.tolist() == [3, 6, 7]  # bin 6 sees the bin-7 site within its 36-bp flank
    np.testing.assert_allclose(scores[hits, 0], best, rtol=1e-5)
    assert (scores[:, 1:] == 0).all()


def test_pvalue_threshold_matches_enumeration():
    rng = np.random.default_rng(0)
    ppm = rng.dirichlet(np.ones(4) * 0.7, size=5)
    log_odds = np.log(ppm / 0.25)
    all_scores = np.array([log_odds[np.arange(5), list(s)].sum() for s in itertools.product(range(4), repeat=5)])
    for pvalue in (0.01, 0.05):
        threshold = _pvalue_threshold(log_odds, pvalue)
        grid = 0.05 * 5 / 2  # rounding of 5 columns on the 0.05 grid
        assert np.mean(all_scores >= threshold + grid) <= pvalue
        assert np.mean(all_scores >= threshold - 0.05 - grid) > pvalue


def test_chunked_scan_equals_one_pass(segment, monkeypatch):
    genome = ef.io.Genome(segment.fasta, region=segment.record)
    motifs = {"A": [_ppm("CACGTG")], "B": [_ppm("CCGCGG"), _ppm("TGACTCA")]}
    scanner = MotifScanner(motifs, ["A", "B"])
    first = 20_100_000 // 128
    whole = scanner.scan_codes(
        genome.fetch("22", first * 128 + 1 - scanner.margin, (first + 40) * 128 + scanner.margin)
    )
    monkeypatch.setattr(_motifs, "_CHUNK_ELEMENTS", 3 * 4 * 128)  # 3 bins per chunk
    np.testing.assert_array_equal(scanner.scan(genome, "chr22", first, 40), whole)
    assert (whole > 0).any()


def test_jaspar_motifs_offline():
    everything = ef.pp.jaspar_motifs()
    assert len(everything) > 700 and all(k == k.upper() for k in everything)
    assert [m.shape[0] for m in everything["CTCF"]] == [15, 31, 33]  # MA0139.2, MA1929.2, MA1930.2
    ctcf = everything["CTCF"][0]
    assert np.allclose(ctcf.sum(1), 1) and "".join("ACGT"[i] for i in ctcf.argmax(1)) == "GCCACCAGGGGGCGC"
    # heterodimers count for both partners; names match case-insensitively and keep the caller's spelling
    picked = ef.pp.jaspar_motifs(tfs=["Pou5f1", "SOX2", "NOT_A_TF"])
    assert sorted(picked) == ["Pou5f1", "SOX2"]
    shared = [m for m in picked["Pou5f1"] if any(m is n for n in picked["SOX2"])]
    assert shared  # the Pou5f1::Sox2 dimer
    with pytest.raises(ValueError, match="not bundled with pyjaspar"):
        ef.pp.jaspar_motifs(release="JASPAR1999")


def test_motif_scores_on_real_sequence(segment):
    tfs = ["CTCF", "REST", "NOT_A_TF"]
    scores = ef.pp.motif_scores(["22:20100001-20150000", ("22", 20_200_001, 20_201_000)], fasta=segment, tfs=tfs)
    assert scores.var_names.tolist() == tfs and scores.var[Key.var.n_motifs].tolist()[2] == 0
    assert scores.n_obs == 391 + 9 and scores.obs[Key.var.start].iloc[0] == 20_099_969  # widened to whole bins
    assert ((scores.obs[Key.var.start] - 1) % 128 == 0).all()
    X = scores.X
    assert (X[:, 2] == 0).all() and (X[:, 0] > 0).mean() > 0.01 and (X >= 0).all()
    assert set(scores.obs[Key.var.region]) == {"22:20100001-20150000", "22:20200001-20201000"}
    with pytest.raises(ValueError, match="regions overlap"):
        ef.pp.motif_scores(["22:20100001-20101000", "22:20100500-20102000"], fasta=segment, tfs=tfs)
