"""HOMER motif libraries and HOMER-style motif scores, checked against an independent brute-force scanner."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

import epiformer as ef
from epiformer import Key
from epiformer.io import HomerMotif
from epiformer.pp._motifs import MotifScanner, homer_flanks

FIXTURE = Path(__file__).parent / "data" / "homer_fixture.motif"
TABLE = pd.DataFrame(
    {
        "motif": [
            "bHLH-Ebox(bHLH)/Fixture/Homer",
            "Sp1 GC-box(Zf)/Fixture/Homer",
            "AP-1(bZIP)/Fixture/Homer",
            "Sp1 GC-box(Zf)/Fixture/Homer",
        ],
        "tf": ["MYC", "SP1", "JUN", "KLF4"],
    }
)
TFS = ["SP1", "NO_MOTIF", "MYC", "JUN", "KLF4"]
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


# ---------------------------------------------------------------- brute force, written from HOMER's rules


def _site_score(probabilities: np.ndarray, site: str) -> float | None:
    """HOMER's score of one site: sum of ln(max(p, 0.001) / 0.25); None if the site holds a non-ACGT base."""
    total = 0.0
    for position, base in enumerate(site):
        if base not in "ACGT":
            return None
        p = float(probabilities[position]["ACGT".index(base)])
        total += math.log(max(p, 0.001) / 0.25)
    return total


def _brute_force(sequence: dict[int, str], bins: list[tuple[int, int]], motifs_by_tf, tfs, size=200):
    """Scores (bins x TFs): `sequence` maps 1-based positions to bases (missing = N)."""
    out = np.zeros((len(bins), len(tfs)))
    for b, (start, end) in enumerate(bins):
        centre = (start + end) / 2  # HOMER's resizePosFile.pl on the 1-based region start..end
        lo, hi = math.floor(centre - size / 2), math.floor(centre + size / 2)  # homerTools extract: inclusive
        window = "".join(sequence.get(pos, "N") for pos in range(lo, hi + 1))
        for t, tf in enumerate(tfs):
            best = None
            for motif in motifs_by_tf.get(tf, []):
                length = motif.probabilities.shape[0]
                for i in range(len(window) - length + 1):
                    forward = window[i : i + length]
                    reverse = "".join(COMPLEMENT.get(c, "N") for c in reversed(forward))
                    for site in (forward, reverse):
                        score = _site_score(motif.probabilities, site)
                        if score is not None and score >= motif.threshold and (best is None or score > best):
                            best = score
            out[b, t] = 0.0 if best is None else best
    return out


def _by_tf(motifs, table=TABLE):
    by_name = {m.name: m for m in motifs}
    out: dict[str, list] = {}
    for motif, tf in table.itertuples(index=False, name=None):
        out.setdefault(tf, []).append(by_name[motif])
    return out


def _bins(chrom_start: int, n: int) -> list[tuple[int, int]]:
    return [(chrom_start + 128 * k, chrom_start + 128 * k + 127) for k in range(n)]


# ---------------------------------------------------------------- reading


def test_read_homer_motifs_exact_values():
    motifs = ef.io.read_homer_motifs(FIXTURE)
    assert [m.name for m in motifs] == [
        "bHLH-Ebox(bHLH)/Fixture/Homer",
        "Sp1 GC-box(Zf)/Fixture/Homer",
        "AP-1(bZIP)/Fixture/Homer",
    ]
    assert [m.consensus for m in motifs] == ["CACGTG", "GGGGCGGGGC", "TGASTCA"]
    assert [m.threshold for m in motifs] == [5.5, 7.25, 4.0]
    assert [m.length for m in motifs] == [6, 10, 7]
    ebox = motifs[0].probabilities
    assert ebox.dtype == np.float64 and ebox.shape == (6, 4) and not ebox.flags.writeable
    np.testing.assert_array_equal(ebox[0], [0.01, 0.97, 0.01, 0.01])
    np.testing.assert_array_equal(motifs[1].probabilities[9], [0.15, 0.5, 0.2, 0.15])
    ap1 = motifs[2].probabilities  # space-separated rows, zeros kept as written
    np.testing.assert_array_equal(ap1[3], [0.0, 0.5, 0.5, 0.0])
    assert ap1.sum() == pytest.approx(7.0)
    with pytest.raises(AttributeError):
        motifs[0].threshold = 1.0  # frozen


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (">ACGT\tname\n0.25\t0.25\t0.25\t0.25\n", 1, "header needs"),
        (">ACGT\tname\tsix\n0.25\t0.25\t0.25\t0.25\n", 1, "not a number"),
        (">A\tname\t3.0\n0.25\t0.25\t0.25\t0.25\n0.5\t0.5\t0.0\n", 3, "4 non-negative"),
        (">A\tname\t3.0\n0.25\t-0.25\t0.5\t0.5\n", 2, "4 non-negative"),
        (">A\tname\t3.0\n0.25\tx\t0.25\t0.25\n", 2, "4 non-negative"),
        ("0.25\t0.25\t0.25\t0.25\n>A\tname\t3.0\n0.25\t0.25\t0.25\t0.25\n", 1, "before the first"),
        (">A\tfirst\t3.0\n>C\tsecond\t3.0\n0.25\t0.25\t0.25\t0.25\n", 1, "no probability rows"),
        ("# no motif here\n", None, "no HOMER motif"),
    ],
)
def test_read_homer_motifs_malformed(tmp_path, text, line, what):
    path = tmp_path / "bad.motif"
    path.write_text(text)
    pattern = f"bad.motif, line {line}:.*{what}" if line else what
    with pytest.raises(ValueError, match=pattern):
        ef.io.read_homer_motifs(path)


def test_read_homer_motifs_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.motif"):
        ef.io.read_homer_motifs(tmp_path / "nope.motif")
    (tmp_path / "empty.motif").write_text("")
    with pytest.raises(ValueError, match="empty"):
        ef.io.read_homer_motifs(tmp_path / "empty.motif")


def _write_mat(path, pairs, variable="Match2"):
    cells = np.empty((len(pairs), 2), dtype=object)
    for i, (motif, tf) in enumerate(pairs):
        cells[i, 0], cells[i, 1] = motif, tf
    savemat(path, {variable: cells})


def test_read_motif_to_tf_mat_and_tsv(tmp_path):
    pairs = list(TABLE.itertuples(index=False, name=None))
    _write_mat(tmp_path / "MotifMatch_human_rmdup.mat", pairs)
    table = ef.io.read_motif_to_tf(tmp_path / "MotifMatch_human_rmdup.mat")
    assert list(table.columns) == ["motif", "tf"]
    pd.testing.assert_frame_equal(table, TABLE)
    tsv = tmp_path / "table.tsv"
    tsv.write_text("motif\ttf\n" + "".join(f"{m}\t{t}\n" for m, t in pairs))
    pd.testing.assert_frame_equal(ef.io.read_motif_to_tf(tsv), TABLE)
    tsv.write_text("".join(f"{m}\t{t}\n" for m, t in pairs))  # no header
    pd.testing.assert_frame_equal(ef.io.read_motif_to_tf(tsv), TABLE)


def test_read_motif_to_tf_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ef.io.read_motif_to_tf(tmp_path / "missing.mat")
    _write_mat(tmp_path / "other.mat", [("m", "t")], variable="Other")
    with pytest.raises(ValueError, match="no variable 'Match2'.*Other"):
        ef.io.read_motif_to_tf(tmp_path / "other.mat")
    savemat(tmp_path / "wide.mat", {"Match2": np.full((2, 3), "x", dtype=object)})
    with pytest.raises(ValueError, match="n x 2"):
        ef.io.read_motif_to_tf(tmp_path / "wide.mat")
    (tmp_path / "junk.mat").write_text("not matlab at all")
    with pytest.raises(ValueError, match="not a readable MATLAB file"):
        ef.io.read_motif_to_tf(tmp_path / "junk.mat")
    (tmp_path / "bad.tsv").write_text("m1\tT1\nm2 T2\n")
    with pytest.raises(ValueError, match="bad.tsv, line 2: expected 2 tab-separated"):
        ef.io.read_motif_to_tf(tmp_path / "bad.tsv")


# ---------------------------------------------------------------- scoring


def test_homer_window_is_201_bp_around_a_128_bp_bin():
    assert homer_flanks(200, 128) == (37, 36)  # floor(64.5 - 100) = -36 .. floor(64.5 + 100) = 164
    assert homer_flanks(128, 128) == (1, 0)  # 129 bp: HOMER rounds the centre down
    assert homer_flanks(201, 128) == (37, 37)
    with pytest.raises(ValueError, match="positive"):
        homer_flanks(0, 128)


def test_homer_scores_equal_brute_force_on_random_sequence(tmp_path):
    rng = np.random.default_rng(7)
    length = 128 * 30
    seq = list(rng.choice(list("ACGT"), size=length))
    for pos in rng.choice(length - 20, size=60, replace=False):  # plant sites, some reverse-complemented
        site = rng.choice(["CACGTG", "GGGGCGGGGC", "TGACTCA", "TGAGTCA", "GCCCCGCCCC"])
        seq[pos : pos + len(site)] = list(site)
    for pos in rng.choice(length, size=40, replace=False):  # Ns break sites
        seq[pos] = "N"
    seq[1000:1003] = list("acg")  # soft-masked bases count as upper case
    text = "".join(seq)
    (tmp_path / "toy.fa").write_text(">chrT\n" + "\n".join(text[i : i + 60] for i in range(0, length, 60)) + "\n")
    motifs = ef.io.read_homer_motifs(FIXTURE)
    rand = HomerMotif("random", "NNNNNNNN", 1.5, rng.dirichlet(np.ones(4), size=8))  # low threshold: many hits
    by_tf = _by_tf(motifs) | {"RAND": [rand]}
    tfs = [*TFS, "RAND"]
    scores = ef.pp.motif_scores(
        "chrT:1-3840",
        fasta=tmp_path / "toy.fa",
        tfs=tfs,
        motifs=[*motifs, rand],
        motif_to_tf=pd.concat([TABLE, pd.DataFrame({"motif": ["random"], "tf": ["RAND"]})]),
    )
    expected = _brute_force({i + 1: c.upper() for i, c in enumerate(text)}, _bins(1, 30), by_tf, tfs)
    assert scores.X.shape == (30, len(tfs)) and scores.var_names.tolist() == tfs
    np.testing.assert_allclose(scores.X, expected, rtol=1e-5, atol=1e-4)
    assert (expected[:, [0, 2, 3, 5]] > 0).mean(0).min() > 0.1  # every motif hits somewhere: the test bites
    assert (scores.X[:, 1] == 0).all()
    np.testing.assert_array_equal(scores.X[:, 0], scores.X[:, 4])  # SP1 and KLF4 share the GC-box motif
    # the sequence ends: windows past them read N, as homerTools extract pads them


def test_homer_scores_equal_brute_force_on_real_hg19(tmp_path):
    segment = ef.datasets.hg19_chr22_segment()
    lines = Path(segment.fasta).read_text().splitlines()
    text = "".join(line.strip() for line in lines[1:])
    motifs = ef.io.read_homer_motifs(FIXTURE)
    _write_mat(tmp_path / "MotifMatch_human_rmdup.mat", list(TABLE.itertuples(index=False, name=None)))
    # 40 bins of ordinary sequence, and 24 bins across the start of the 100-kb N block (20,509,432)
    regions = ["22:20099969-20105088", "22:20508033-20511104"]
    with pytest.warns(UserWarning, match="1 of 5 TFs have no motif.*NO_MOTIF"):
        scores = ef.pp.motif_scores(
            regions, fasta=segment, tfs=TFS, motifs=FIXTURE, motif_to_tf=tmp_path / "MotifMatch_human_rmdup.mat"
        )
    bins = _bins(20_099_969, 40) + _bins(20_508_033, 24)
    first = bins[0][0] - 200
    last = bins[-1][1] + 200
    sequence = {pos: text[pos - segment.start].upper() for pos in range(first, last + 1)}
    expected = _brute_force(sequence, bins, _by_tf(motifs), TFS)
    np.testing.assert_allclose(scores.X, expected, rtol=1e-5, atol=1e-4)
    assert (expected > 0).sum() > 20 and (expected[-10:] == 0).all()  # hits in real sequence, none in the N block
    params = scores.uns[Key.uns.motif_scores]["params"]
    assert params["motif_source"] == "homer" and params["window"] == 200 and params["n_tfs_without_motif"] == 1
    assert scores.var[Key.var.n_motifs].tolist() == [1, 0, 1, 1, 1]


def test_scanner_threshold_and_strands_known_answer():
    ebox = ef.io.read_homer_motifs(FIXTURE)[0]
    scanner = MotifScanner({"MYC": [ebox]}, ["MYC"], scoring="homer")
    assert scanner.margin == 37
    codes = np.zeros(3 * 128 + 2 * scanner.margin, dtype=np.uint8)  # poly-A
    site = np.array([1, 0, 1, 2, 3, 2], dtype=np.uint8)  # CACGTG
    codes[scanner.margin + 128 + 10 : scanner.margin + 128 + 16] = site
    scores = scanner.scan_codes(codes)[:, 0]
    best = 6 * math.log(0.97 / 0.25)
    np.testing.assert_allclose(scores, [best, best, 0.0], rtol=1e-6)  # bin 0's window reaches 36 bp into bin 1
    high = HomerMotif(ebox.name, ebox.consensus, best + 0.01, ebox.probabilities)
    assert (MotifScanner({"MYC": [high]}, ["MYC"], scoring="homer").scan_codes(codes) == 0).all()
    codes[scanner.margin + 128 + 12] = 4  # an N inside the site: not scored
    assert (scanner.scan_codes(codes) == 0).all()


def test_motif_source_recorded_and_bad_arguments(tmp_path):
    segment = ef.datasets.hg19_chr22_segment()
    region = "22:20100001-20101280"
    ppm = np.full((6, 4), 0.01)
    ppm[np.arange(6), [1, 0, 1, 2, 3, 2]] = 0.97
    jaspar = ef.pp.motif_scores(region, fasta=segment, tfs=["MYC"], motifs={"MYC": [ppm]})
    assert jaspar.uns[Key.uns.motif_scores]["params"]["motif_source"] == "jaspar (approximation)"
    with pytest.raises(ValueError, match="`flank` and `pvalue` apply to the JASPAR scan"):
        ef.pp.motif_scores(region, fasta=segment, tfs=TFS, motifs=FIXTURE, motif_to_tf=TABLE, flank=10)
    with pytest.raises(ValueError, match="apply to HOMER motifs"):
        ef.pp.motif_scores(region, fasta=segment, tfs=["MYC"], motifs={"MYC": [ppm]}, window=300)
    with pytest.raises(ValueError, match="No motif of the motif-to-TF table is in the HOMER library"):
        ef.pp.motif_scores(
            region, fasta=segment, tfs=TFS, motifs=FIXTURE, motif_to_tf=pd.DataFrame({"motif": ["x"], "tf": ["SP1"]})
        )
    with pytest.warns(UserWarning, match="1 rows of the motif-to-TF table name motifs absent"):
        ef.pp.motif_scores(
            region,
            fasta=segment,
            tfs=["SP1"],
            motifs=FIXTURE,
            motif_to_tf=pd.concat([TABLE, pd.DataFrame({"motif": ["gone"], "tf": ["SP1"]})]),
        )
    with pytest.raises(TypeError, match="scoring='homer'"):
        MotifScanner({"MYC": ef.io.read_homer_motifs(FIXTURE)[:1]}, ["MYC"])
    with pytest.raises(TypeError, match="scoring='homer'"):
        MotifScanner({"MYC": [ppm]}, ["MYC"], scoring="homer")
    # without a table every motif is its own TF, named by the motif's name
    own = ef.pp.motif_scores(region, fasta=segment, tfs=["AP-1(bZIP)/Fixture/Homer"], motifs=FIXTURE)
    assert own.var[Key.var.n_motifs].tolist() == [1]
    # a wider window sees at least as much
    wide = ef.pp.motif_scores(region, fasta=segment, tfs=TFS, motifs=FIXTURE, motif_to_tf=TABLE, window=400)
    narrow = ef.pp.motif_scores(region, fasta=segment, tfs=TFS, motifs=FIXTURE, motif_to_tf=TABLE)
    assert (wide.X >= narrow.X).all() and wide.uns[Key.uns.motif_scores]["params"]["window"] == 400
