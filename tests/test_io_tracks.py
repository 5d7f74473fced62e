"""Tracks out and in: predictions to bigWig / bedGraph at the right 0-based coordinates, bigWig targets back in."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import epiformer as ef
from epiformer import Key
from epiformer._sequence import bin_frame

pyBigWig = pytest.importorskip("pyBigWig")

sys.path.insert(0, str(Path(__file__).parent))

TFS = ["T0", "T1", "T2", "T3", "T4", "T5", "T6"]
SEGMENT = ef.datasets.hg19_chr22_segment()
MOTIFS = {"T0": [np.eye(4)[[1, 0, 1, 2, 3, 2]] * 0.97 + 0.01]}  # CACGTG
FIRST = 20_000_000 // 128  # the bin chr22:20000001-20000128


@pytest.fixture(scope="module")
def model():
    import torch
    from epigept_published import perturb, small_config

    torch.manual_seed(0)
    return perturb(ef.models.EpiGePT(small_config(tf_names=tuple(TFS))), scale=0.1).eval()


@pytest.fixture(scope="module")
def contexts():
    X = np.random.default_rng(0).uniform(0, 3, (2, len(TFS))).astype(np.float32)
    return AnnData(X=X, var=pd.DataFrame(index=TFS), obs=pd.DataFrame(index=["HepG2", "K562/rep 1"]))


@pytest.fixture(scope="module")
def pred(model, contexts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TFs without motifs
        return ef.tl.predict_epigenome(
            contexts, model, regions="chr22:20000001-20004096", fasta=SEGMENT, motifs=MOTIFS, progress=False,
            device="cpu",
        )  # fmt: skip


def _tiny(values: np.ndarray, chrom: str = "chr22", first: int = FIRST) -> AnnData:
    """Contexts x bins with one `DNase` layer holding `values`."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float32))
    var = bin_frame(chrom, first, values.shape[1], 128)
    adata = AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(len(values))]), var=var)
    adata.layers["DNase"] = values
    return adata


def _write_bigwig(path: Path, header: list, intervals: list[tuple[str, int, int, float]]) -> Path:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(header)
    bw.addEntries([i[0] for i in intervals], [i[1] for i in intervals], ends=[i[2] for i in intervals],
                  values=[float(i[3]) for i in intervals])  # fmt: skip
    bw.close()
    return path


# ------------------------------------------------------------------------------------------------- writing


def test_prediction_to_bigwig_at_zero_based_coordinates(pred, tmp_path):
    paths = ef.io.write_bigwig(pred, tmp_path / "out", transform=None)
    signals = list(pred.layers)
    assert len(signals) == 8 and len(paths) == 2 * 8
    assert [p.name for p in paths[:2]] == ["HepG2.DNase.bw", "HepG2.CTCF.bw"]
    assert paths[8].name == "K562_rep_1.DNase.bw"  # '/' and ' ' sanitised
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)  # no temporaries
    for i in range(pred.n_obs):
        for k, signal in enumerate(signals):
            bw = pyBigWig.open(str(paths[i * 8 + k]))
            assert bw.chroms() == {"chr22": 20_004_096}
            intervals = bw.intervals("chr22")
            assert len(intervals) == pred.n_vars == 32
            expected = pred.layers[signal][i]
            np.testing.assert_array_equal([v for _, _, v in intervals], expected)
            np.testing.assert_array_equal([s for s, _, _ in intervals], pred.var[Key.var.start] - 1)
            np.testing.assert_array_equal([e for _, e, _ in intervals], pred.var[Key.var.end])
            bw.close()
    # pinned: the 1-based bin chr22:20000001-20000128 is the interval (20000000, 20000128)
    assert pred.var_names[0] == "chr22:20000001-20000128"
    first = pyBigWig.open(str(paths[0])).intervals("chr22")[0]
    assert first[:2] == (20_000_000, 20_000_128) and first[2] == pred.layers["DNase"][0, 0]

    # default: counts (expm1), which read_bigwig's default log1p brings back
    counts = ef.io.write_bigwig(pred, tmp_path / "counts", signals=["CTCF"], contexts=["K562/rep 1"])
    assert [p.name for p in counts] == ["K562_rep_1.CTCF.bw"]
    values = np.array([v for *_, v in pyBigWig.open(str(counts[0])).intervals("chr22")])
    np.testing.assert_allclose(values, np.expm1(pred.layers["CTCF"][1].astype(np.float64)), rtol=1e-6)
    back = ef.io.read_bigwig({"K562/rep 1": {"CTCF": counts[0]}}, regions="22:20000001-20004096")
    np.testing.assert_allclose(back.layers["CTCF"], pred.layers["CTCF"][[1]], rtol=1e-6, atol=1e-7)
    assert back.var_names[0] == "22:20000001-20000128" and back.var[Key.var.start].iloc[-1] == 20_004_096 - 127


def test_bigwig_header_order_nan_and_chrom_sizes(tmp_path):
    adata = _tiny([[1.0, np.nan, 3.0]])
    two = _tiny([[5.0]], chrom="chr2", first=10)
    both = AnnData(obs=adata.obs, var=pd.concat([adata.var, two.var]))
    both.layers["DNase"] = np.hstack([adata.layers["DNase"], two.layers["DNase"]])
    shuffled = both[:, [3, 2, 0, 1]].copy()  # written sorted by chromosome, then start, whatever the order here
    path = ef.io.write_bigwig(shuffled, tmp_path, transform=None)[0]
    bw = pyBigWig.open(str(path))
    assert list(bw.chroms()) == ["chr2", "chr22"] and bw.chroms("chr2") == 11 * 128
    assert bw.intervals("chr2") == ((1280, 1408, 5.0),)
    assert bw.intervals("chr22") == ((20_000_000, 20_000_128, 1.0), (20_000_256, 20_000_384, 3.0))  # NaN left out
    # long runs of adjacent bins (written as fixed-step blocks) around a gap
    long = _tiny([np.arange(40.0)])
    long.layers["DNase"][0, 10] = np.nan
    bw = pyBigWig.open(str(ef.io.write_bigwig(long, tmp_path / "runs", transform=None)[0]))
    intervals = bw.intervals("chr22")
    assert len(intervals) == 39 and intervals[9:11] == ((20_001_152, 20_001_280, 9.0), (20_001_408, 20_001_536, 11.0))
    # chromosome sizes from a .fai file: every chromosome listed, in its order, with its names
    fai = tmp_path / "genome.fa.fai"
    fai.write_text("22\t51304566\t7\t60\t61\n2\t243199373\t9\t60\t61\n")
    bare = both.copy()
    bare.var[Key.var.chrom] = ["22", "22", "22", "2"]
    path = ef.io.write_bigwig(bare, tmp_path / "fai", chrom_sizes=fai)[0]
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == {"22": 51_304_566, "2": 243_199_373} and list(bw.chroms()) == ["22", "2"]
    assert bw.intervals("2")[0][2] == pytest.approx(np.expm1(5.0), rel=1e-6)
    path = ef.io.write_bigwig(both, tmp_path / "sizes", chrom_sizes={"chr22": 51_304_566, "chr2": 2_000, "chrX": 9})[0]
    assert pyBigWig.open(str(path)).chroms() == {"chr22": 51_304_566, "chr2": 2_000, "chrX": 9}


def test_bedgraph_lines_pinned(tmp_path):
    adata = _tiny([[0.0, np.log1p(2.5), np.nan, 1.25], [1.0, 2.0, 3.0, 4.0]])
    adata.obs_names = ["liver", "K562 (rep 2)"]
    paths = ef.io.write_bedgraph(adata, tmp_path, transform=None, track_line=True)
    assert [p.name for p in paths] == ["liver.DNase.bedGraph", "K562_rep_2_.DNase.bedGraph"]
    assert paths[0].read_text() == (
        'track type=bedGraph name="liver DNase"\n'
        "chr22\t20000000\t20000128\t0\n"
        "chr22\t20000128\t20000256\t1.252763\n"
        "chr22\t20000384\t20000512\t1.25\n"
    )
    counts = ef.io.write_bedgraph(adata, tmp_path / "counts", contexts=["liver"])[0]
    assert counts.read_text().splitlines() == [
        "chr22\t20000000\t20000128\t0",
        "chr22\t20000128\t20000256\t2.5",
        "chr22\t20000384\t20000512\t2.490343",
    ]


def test_write_errors_leave_no_file(tmp_path, monkeypatch):
    adata = _tiny([[1.0, 2.0, 3.0]])
    overlapping = adata.copy()
    overlapping.var[Key.var.start] = [20_000_001, 20_000_100, 20_000_257]
    with pytest.raises(ValueError, match="Bins overlap"):
        ef.io.write_bigwig(overlapping, tmp_path)
    with pytest.raises(ValueError, match="Bins overlap"):
        ef.io.write_bedgraph(overlapping, tmp_path)
    with pytest.raises(ValueError, match="not in `chrom_sizes`"):
        ef.io.write_bigwig(adata, tmp_path, chrom_sizes={"chr1": 10**8})
    with pytest.raises(ValueError, match="past the 1,000 bp"):
        ef.io.write_bigwig(adata, tmp_path, chrom_sizes={"22": 1000})
    with pytest.raises(KeyError, match="H3K27ac"):
        ef.io.write_bigwig(adata, tmp_path, signals=["H3K27ac"])
    with pytest.raises(KeyError, match="nowhere"):
        ef.io.write_bigwig(adata, tmp_path, contexts=["nowhere"])
    with pytest.raises(ValueError, match="`transform` must be"):
        ef.io.write_bigwig(adata, tmp_path, transform="log1p")
    with pytest.raises(TypeError, match="must be an AnnData"):
        ef.io.write_bigwig(adata.layers["DNase"], tmp_path)
    clash = _tiny([[1.0], [2.0]])
    clash.obs_names = ["a b", "a/b"]
    with pytest.raises(ValueError, match="both map to the file name 'a_b.DNase.bw'"):
        ef.io.write_bigwig(clash, tmp_path)
    later_inf = _tiny([[1.0, 2.0, 3.0]])
    later_inf.layers["H3K27ac"] = np.array([[1.0, np.inf, 3.0]], dtype=np.float32)  # checked before any file
    with pytest.raises(ValueError, match="'H3K27ac' has infinite values"):
        ef.io.write_bigwig(later_inf, tmp_path)
    assert list(tmp_path.iterdir()) == []

    # a write that fails half-way leaves the old file whole and no temporary behind
    old = ef.io.write_bigwig(adata, tmp_path)[0]
    before = old.read_bytes()
    real_open = pyBigWig.open

    class Failing:
        def __init__(self, path, mode):
            self.bw = real_open(path, mode)

        def addHeader(self, *args, **kwargs):
            self.bw.addHeader(*args, **kwargs)

        def addEntries(self, *args, **kwargs):
            raise RuntimeError("disk full")

        def close(self):
            self.bw.close()

    monkeypatch.setattr(pyBigWig, "open", lambda path, mode="r": Failing(path, mode))
    with pytest.raises(RuntimeError, match="disk full"):
        ef.io.write_bigwig(_tiny([[7.0, 8.0, 9.0]]), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [old.name] and old.read_bytes() == before


# ------------------------------------------------------------------------------------------------- reading


@pytest.fixture
def known(tmp_path):
    """A bigWig with known values on chr22 (length 1,000): bins 0-3 of 128 bp cover bases 0..511."""
    return _write_bigwig(
        tmp_path / "known.bw",
        [("chr22", 1000), ("chr1", 500)],
        [("chr22", 0, 64, 1.0), ("chr22", 64, 128, 3.0), ("chr22", 128, 192, 4.0), ("chr22", 400, 416, 10.0),
         ("chr22", 896, 1000, 6.0)],
    )  # fmt: skip


def test_read_bigwig_bin_means_and_gaps(known):
    with pytest.warns(UserWarning, match=r"2 of 6 bins have no data in 1 of 1 bigWig files"):
        out = ef.io.read_bigwig(known, regions=["22:1-512", "chr22:897-1152"], transform=None)
    assert out.obs_names.tolist() == ["known"] and out.X.dtype == np.float32
    assert out.var_names.tolist() == [
        "22:1-128", "22:129-256", "22:257-384", "22:385-512", "chr22:897-1024", "chr22:1025-1152",
    ]  # fmt: skip
    assert out.var[Key.var.region].tolist() == ["22:1-512"] * 4 + ["chr22:897-1152"] * 2
    # bin 0: mean of 64 x 1 and 64 x 3; bin 1: only the 64 bases with data count; bin 2: a gap, NaN; bin 3: one
    # 16-bp interval; bin 7: bases past the chromosome's end (1,000) have no data; bin 8 lies wholly past it
    np.testing.assert_allclose(out.X[0], [2.0, 4.0, np.nan, 10.0, 6.0, np.nan])
    tracks = out.uns[Key.uns.tracks]
    assert tracks["params"]["stat"] == "mean" and tracks["n_missing"] == 2
    assert tracks["files"][["obs", "n_missing"]].values.tolist() == [["known", 2]]


def test_read_bigwig_stats_fill_and_log1p(known):
    regions = "chr22:1-512"
    with pytest.warns(UserWarning, match="no data"):
        mean = ef.io.read_bigwig(known, regions=regions)
    np.testing.assert_allclose(mean.X[0], np.log1p([2.0, 4.0, np.nan, 10.0]), rtol=1e-6)
    with pytest.warns(UserWarning, match="no data"):
        total = ef.io.read_bigwig({"s": known}, regions=regions, stat="sum", transform=None)
    np.testing.assert_allclose(total.X[0], [64 * 1 + 64 * 3, 64 * 4, np.nan, 16 * 10])
    assert total.obs_names.tolist() == ["s"]
    with pytest.warns(UserWarning, match="no data"):
        peak = ef.io.read_bigwig(known, regions=regions, stat="max", transform=None)
    np.testing.assert_allclose(peak.X[0], [3.0, 4.0, np.nan, 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing missing once gaps read as 0
        zero = ef.io.read_bigwig(known, regions=regions, fill=0.0, transform=None)
    np.testing.assert_allclose(zero.X[0], [2.0, 2.0, 0.0, 10 * 16 / 128])
    assert zero.uns[Key.uns.tracks]["n_missing"] == 0 and zero.uns[Key.uns.tracks]["params"]["fill"] == 0.0
    # a chromosome the file lacks: NaN, and the warning names it
    with pytest.warns(UserWarning, match=r"chromosomes '7' are missing"):
        seven = ef.io.read_bigwig(known, regions="7:1-256")
    assert np.isnan(seven.X).all()


def test_read_bigwig_per_signal_layout(known, tmp_path):
    other = _write_bigwig(tmp_path / "other.bw", [("22", 1000)], [("22", 0, 256, 5.0)])
    files = {"liver": {"DNase": known, "CTCF": other}, "lung": {"DNase": other}}
    with pytest.warns(UserWarning, match=r"3 of 9 bins have no data in 3 of 3"):
        out = ef.io.read_bigwig(files, regions="chr22:1-384", transform=None)
    assert out.X is None and out.obs_names.tolist() == ["liver", "lung"]
    np.testing.assert_allclose(out.layers["DNase"], [[2.0, 4.0, np.nan], [5.0, 5.0, np.nan]])
    # lung has no CTCF file: unmeasured (NaN), not counted as missing data
    np.testing.assert_allclose(out.layers["CTCF"], [[5.0, 5.0, np.nan], [np.nan] * 3])
    table = out.uns[Key.uns.tracks]["files"]
    assert table[["obs", "signal", "n_missing"]].values.tolist() == [
        ["liver", "DNase", 1],
        ["liver", "CTCF", 1],
        ["lung", "DNase", 1],
    ]


def test_read_bigwig_errors(known, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.bw"):
        ef.io.read_bigwig([known, tmp_path / "nothere.bw"], regions="22:1-128")
    text = tmp_path / "signal.bw"
    text.write_text("chr22\t0\t128\t1.0\n")
    with pytest.raises(ValueError, match="signal.bw is not a bigWig file"):
        ef.io.read_bigwig(text, regions="22:1-128")
    truncated = tmp_path / "cut.bw"
    truncated.write_bytes(known.read_bytes()[:60])
    with pytest.raises(ValueError, match="cut.bw could not be (opened|read) as a bigWig file"):
        ef.io.read_bigwig(truncated, regions="22:1-128")
    negative = _write_bigwig(tmp_path / "neg.bw", [("chr22", 1000)], [("chr22", 0, 128, -1.5)])
    with pytest.raises(ValueError, match="neg.bw has negative values"):
        ef.io.read_bigwig(negative, regions="22:1-128")
    assert ef.io.read_bigwig(negative, regions="22:1-128", transform=None).X[0, 0] == -1.5
    with pytest.raises(ValueError, match="`stat` must be"):
        ef.io.read_bigwig(known, regions="22:1-128", stat="median")
    with pytest.raises(ValueError, match="regions overlap"):
        ef.io.read_bigwig(known, regions=["22:1-200", "22:150-300"])
    with pytest.raises(ValueError, match="share a name"):
        ef.io.read_bigwig([known, known], regions="22:1-128")
    with pytest.raises(TypeError, match="not a mix"):
        ef.io.read_bigwig({"a": known, "b": {"DNase": known}}, regions="22:1-128")


def test_import_without_pybigwig():
    code = (
        "import sys; sys.modules['pyBigWig'] = None\n"
        "import epiformer as ef\n"
        "try:\n"
        "    ef.io.read_bigwig('x.bw', regions='22:1-128')\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'epiformer[genome]'" in out.stdout


# ------------------------------------------------------------------------------------------------ training


def test_fit_epigept_from_bigwig_equals_in_memory(contexts, tmp_path):
    import torch
    from epigept_published import small_config

    from epiformer.pp import MotifScanner

    genome = ef.io.Genome(SEGMENT.fasta, region=SEGMENT.record)
    first, n = 20_300_000 // 128, 2 * 64
    motif = MotifScanner(MOTIFS, TFS).scan(genome, "22", first, n)
    ctx = contexts[:, TFS].X
    tracks = AnnData(obs=pd.DataFrame(index=contexts.obs_names), var=bin_frame("22", first, n, 128))
    tracks.layers["DNase"] = (0.5 + 1.5 * ctx[:, [0]] * (motif[None, :, 0] > 0)).astype(np.float32)
    tracks.layers["CTCF"] = np.full((2, n), 1.0, dtype=np.float32)
    tracks.layers["CTCF"][1] = np.nan  # the second context has no CTCF assay
    paths = ef.io.write_bigwig(tracks, tmp_path)  # counts, as measured tracks are
    files = {"HepG2": {"DNase": paths[0], "CTCF": paths[1]}, "K562/rep 1": {"DNase": paths[2]}}
    region = f"chr22:{first * 128 + 1}-{(first + n) * 128}"
    read = ef.io.read_bigwig(files, regions=region)
    for signal in ("DNase", "CTCF"):
        np.testing.assert_allclose(read.layers[signal], tracks.layers[signal], rtol=1e-6)

    options = {"contexts": contexts, "fasta": SEGMENT, "motifs": MOTIFS, "max_epochs": 2, "batch_size": 2,
               "lr": 3e-3, "val_size": 0.0, "progress": False, "accelerator": "cpu", "devices": 1}  # fmt: skip
    fitted = []
    for source, extra in ((files, {"regions": region}), (tracks, {})):
        torch.manual_seed(3)
        model = ef.models.EpiGePT(small_config(tf_names=tuple(TFS)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fitted.append(ef.tl.fit_epigept(source, model, **options, **extra))
    a, b = fitted
    np.testing.assert_allclose(a.history["train_loss"], b.history["train_loss"], rtol=1e-5)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=name)

    with pytest.raises(ValueError, match="Pass `regions=`"):
        ef.tl.fit_epigept(files, a, **options)
    with pytest.raises(ValueError, match="only for `tracks` given as bigWig files"):
        ef.tl.fit_epigept(tracks, a, regions=region, **options)


# ------------------------------------------------------------------------------------------------ evaluation


def test_bin_coordinates_are_checked(pred, tmp_path):
    """Writers and the evaluation refuse bins without chrom / start / end or with positions that are not bases."""
    adata = _tiny([[1.0, 2.0, 3.0]])
    no_end = adata.copy()
    del no_end.var[Key.var.end]
    with pytest.raises(ValueError, match=r"`data.var` lacks columns \['end'\]"):
        ef.io.write_bigwig(no_end, tmp_path)
    with pytest.raises(ValueError, match=r"`tracks.var` lacks columns \['end'\]"):
        ef.tl.evaluate_epigenome(pred.copy(), tracks=no_end)
    fractional = adata.copy()
    fractional.var[Key.var.start] = fractional.var[Key.var.start] + 0.5  # not truncated to a base
    with pytest.raises(ValueError, match="`start` of `data.var` must hold whole positions"):
        ef.io.write_bedgraph(fractional, tmp_path)
    before_one = adata.copy()
    before_one.var[Key.var.start] = [0, 129, 257]
    with pytest.raises(
        ValueError, match="1 regions of `data.var` are empty or start before position 1: 'chr22:0-20000128'"
    ):
        ef.io.write_bigwig(before_one, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_epigenome_against_bigwig_truth(pred, tmp_path):
    pred = pred.copy()
    rng = np.random.default_rng(1)
    truth = pred.copy()
    for signal in ("CTCF", "H3K27ac"):
        noisy = pred.layers[signal] + rng.normal(0, 0.05, pred.shape).astype(np.float32)
        truth.layers[signal] = np.maximum(noisy, 0)  # log(count + 1) >= 0
    truth.layers["H3K27ac"][0, :5] = np.nan  # unmeasured bins are left out
    paths = ef.io.write_bigwig(truth, tmp_path, signals=["CTCF", "H3K27ac"])
    files = {"HepG2": {"CTCF": paths[0], "H3K27ac": paths[1]}, "K562/rep 1": {"H3K27ac": paths[3]}}
    with pytest.warns(UserWarning, match="5 of 96 bins have no data"):
        table = ef.tl.evaluate_epigenome(pred, tracks=files)
    # K562 has no CTCF file: not scored
    assert table[["context", "signal", "n"]].values.tolist() == [
        ["HepG2", "CTCF", 32], ["HepG2", "H3K27ac", 27], ["K562/rep 1", "H3K27ac", 32],
    ]  # fmt: skip
    # by hand, on the log1p scale
    ok = ~np.isnan(truth.layers["H3K27ac"][0])
    expected = np.corrcoef(pred.layers["H3K27ac"][0, ok], truth.layers["H3K27ac"][0, ok])[0, 1]
    assert 0.5 < expected < 1 and table["pearson"].iloc[1] == pytest.approx(expected, abs=1e-5)
    mse = np.mean((pred.layers["CTCF"][0] - truth.layers["CTCF"][0]).astype(np.float64) ** 2)
    assert table["mse"].iloc[0] == pytest.approx(mse, rel=1e-3)
    written = pred.uns[Key.uns.epigept_evaluation]
    assert written["pearson"].shape == (2, 2) and np.isnan(written["pearson"].loc["K562/rep 1", "CTCF"])
    assert written["pearson"].loc["HepG2", "H3K27ac"] == pytest.approx(expected, abs=1e-5)
    assert written["metrics"].equals(table)
    # the same from the truth in memory (which also has K562's CTCF)
    same = ef.tl.evaluate_epigenome(pred.copy(), tracks=truth, signals=["H3K27ac", "CTCF"])
    assert same[["context", "signal"]].values.tolist() == [
        ["HepG2", "H3K27ac"], ["K562/rep 1", "H3K27ac"], ["HepG2", "CTCF"], ["K562/rep 1", "CTCF"],
    ]  # fmt: skip
    np.testing.assert_allclose(same["pearson"].to_numpy()[[2, 0, 1]], table["pearson"], atol=1e-5)
    with pytest.raises(KeyError, match="ATAC"):
        ef.tl.evaluate_epigenome(pred, tracks=truth, signals=["H3K27ac", "ATAC"])
    with pytest.raises(ValueError, match="Nothing to score"):
        ef.tl.evaluate_epigenome(pred, tracks=AnnData(obs=pd.DataFrame(index=["x"]), var=pred.var))
    with pytest.raises(ValueError, match="No bin of `data` is in `tracks`"):
        ef.tl.evaluate_epigenome(pred, tracks=truth[:, :0].copy())
