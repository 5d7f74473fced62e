"""EpiGePT tools: tiled prediction over regions, variant effects with motif re-scoring, training, track plots."""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

matplotlib.use("agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).parent))
from epigept_published import perturb, small_config

import epiformer as ef
from epiformer import Key
from epiformer._sequence import bin_frame, encode, one_hot
from epiformer.models import EpiGePT
from epiformer.models.epigept import masked_mse
from epiformer.pp import MotifScanner

TFS = ["T0", "T1", "T2", "T3", "T4", "T5", "T6"]
SEGMENT = ef.datasets.hg19_chr22_segment()
GENOME = ef.io.Genome(SEGMENT.fasta, region=SEGMENT.record)
B0 = 20_300_000 // 128  # a bin-aligned start inside the segment
VARIANT_POS = 20_500_123


def _ppm(site: str, purity: float = 0.97) -> np.ndarray:
    ppm = np.full((len(site), 4), (1 - purity) / 3)
    ppm[np.arange(len(site)), encode(site)] = purity
    return ppm


def _variant_site() -> tuple[str, str, str]:
    """A 10-mer around VARIANT_POS and an allele that turns it into a perfect T6 site."""
    codes = GENOME.fetch("22", VARIANT_POS - 4, VARIANT_POS + 5)
    ref = "ACGT"[codes[4]]
    alt = "C" if ref != "C" else "G"
    site = "".join("ACGT"[c] for c in codes[:4]) + alt + "".join("ACGT"[c] for c in codes[5:])
    return ref, alt, site


MOTIFS = {
    "T0": [_ppm("CACGTG")],
    "T1": [_ppm("CCGCGG"), _ppm("GGGCGG")],
    "T2": [_ppm("TGACTCA")],
    "T3": [_ppm("TTGCGCAA")],
    "T4": [_ppm("CCAAT")],
    "T6": [_ppm(_variant_site()[2])],
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return perturb(EpiGePT(small_config(tf_names=tuple(TFS))), scale=0.1).eval()


@pytest.fixture(scope="module")
def contexts():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 3, (3, len(TFS))).astype(np.float32)
    ctx = AnnData(X=X, var=pd.DataFrame(index=TFS), obs=pd.DataFrame({"n_cells": [50, 60, 70]}, index=["a", "b", "c"]))
    return ctx[:, ::-1].copy()  # TF order differs from the model's: matched by name


def _predict(contexts, model, region, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # T5 has no motif
        return ef.tl.predict_epigenome(
            contexts, model, regions=region, fasta=SEGMENT, motifs=MOTIFS, progress=False, device="cpu", **kwargs
        )


def _region(first_bin: int, n_bins: int) -> str:
    return f"22:{first_bin * 128 + 1}-{(first_bin + n_bins) * 128}"


def _direct(model, contexts, first_bin: int) -> np.ndarray:
    """One window starting at `first_bin`, computed by hand: (contexts, bins, signals)."""
    cfg = model.config
    scanner = MotifScanner(MOTIFS, TFS)
    motif = torch.from_numpy(scanner.scan(GENOME, "22", first_bin, cfg.n_bins))
    codes = GENOME.fetch("22", first_bin * 128 + 1, (first_bin + cfg.n_bins) * 128)
    seq = torch.from_numpy(one_hot(codes).T.copy())[None].expand(3, -1, -1)
    ctx = torch.from_numpy(contexts[:, TFS].X.copy())
    with torch.no_grad():
        return model(seq, motif[None] * ctx[:, None, :]).numpy()


def test_two_windows_match_single_window_calls(model, contexts):
    cfg = model.config
    crop, keep = cfg.n_bins // 4, cfg.n_bins // 2  # 16 and 32 bins
    both = _predict(contexts, model, _region(B0, 2 * keep))
    assert both.shape == (3, 64) and both.obs_names.tolist() == ["a", "b", "c"]
    assert list(both.layers) == list(cfg.signals)
    assert both.var[Key.var.window].tolist() == [0] * keep + [1] * keep
    assert (
        both.var[Key.var.start].iloc[0] == B0 * 128 + 1
        and (both.var[Key.var.end] - both.var[Key.var.start] == 127).all()
    )
    first = _predict(contexts, model, _region(B0, keep))
    second = _predict(contexts, model, _region(B0 + keep, keep))
    for signal in cfg.signals:
        np.testing.assert_array_equal(both.layers[signal][:, :keep], first.layers[signal])
        np.testing.assert_array_equal(both.layers[signal][:, keep:], second.layers[signal])
    # and the same as the network run by hand on each window's centre
    for w, start in enumerate((B0 - crop, B0 - crop + keep)):
        expected = _direct(model, contexts, start)[:, crop : crop + keep]
        got = np.stack([both.layers[s][:, w * keep : (w + 1) * keep] for s in cfg.signals], axis=-1)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(both.layers["DNase"], axis=0).max() > 1e-3  # contexts differ
    params = both.uns[Key.uns.epigept]["params"]
    assert (params["crop"], params["window"], both.uns[Key.uns.epigept]["n_windows"]) == (16, 8192, 2)


def test_precomputed_motifs_and_region_layout(model, contexts):
    cfg = model.config
    region = _region(B0 + 5, 50)
    scanned = _predict(contexts, model, region, crop=8)
    wide = ef.pp.motif_scores(_region(B0 - 20, 140), fasta=SEGMENT, tfs=TFS, motifs=MOTIFS)
    pre = _predict(contexts, model, region, crop=8, motif_scores=wide[:, ::-1].copy())
    np.testing.assert_allclose(pre.layers["CTCF"], scanned.layers["CTCF"], atol=1e-6)
    assert pre.uns[Key.uns.epigept]["params"]["motif_source"] == "precomputed (jaspar (approximation))"
    with pytest.warns(UserWarning, match=r"no row for \d+ bins"):
        ef.tl.predict_epigenome(contexts, model, regions=region, fasta=SEGMENT, motif_scores=wide[:60], progress=False)
    # several regions, chr-prefixed names, widened to whole bins
    two = _predict(contexts, model, ["chr22:20400001-20400300", ("22", 20_600_100, 20_600_200)])
    assert two.n_vars == 3 + 2 and two.var[Key.var.region].nunique() == 2
    assert two.var_names[[0, 3]].tolist() == ["chr22:20400001-20400128", "22:20600065-20600192"]
    assert cfg.n_bins == 64


def test_predict_errors(model, contexts):
    with pytest.raises(ValueError, match="lack 1 of the model's 7 TFs"):
        _predict(contexts[:, 1:].copy(), model, _region(B0, 10))
    with pytest.raises(ValueError, match="`crop` must be between 0 and 31"):
        _predict(contexts, model, _region(B0, 10), crop=32)
    with pytest.raises(ValueError, match="regions overlap"):
        _predict(contexts, model, [_region(B0, 10), _region(B0 + 5, 10)])
    with pytest.raises(TypeError, match="must be an `ef.models.EpiGePT`"):
        _predict(contexts, object(), _region(B0, 10))
    nan = contexts.copy()
    nan.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        _predict(nan, model, _region(B0, 10))


def test_variant_effect_rescores_motifs(model, contexts):
    ref, alt, _ = _variant_site()
    variants = pd.DataFrame({"chrom": ["22", "chr22"], "pos": [VARIANT_POS, 20_400_050]}, index=["site", "other"])
    variants["ref"] = [ref, "ACGT"[GENOME.fetch("22", 20_400_050, 20_400_050)[0]]]
    variants["alt"] = [alt, "T" if variants["ref"].iloc[1] != "T" else "A"]
    effect = ef.tl.variant_effect(contexts, model, variants=variants, fasta=SEGMENT, motifs=MOTIFS, progress=False)
    assert effect.shape == (2, 3 * 8) and effect.var_names[0] == "a|DNase"
    assert effect.var[Key.var.signal].tolist()[:8] == list(model.signals)
    assert effect.obs.loc["site", Key.obs.motif_delta] > 0  # the allele creates a T6 site

    # by hand: whole-window motif scans of both alleles, the network, expm1, log-ratio at the variant's bin
    cfg, scanner = model.config, MotifScanner(MOTIFS, TFS)
    first = (VARIANT_POS - 1) // 128 - cfg.n_bins // 2
    lo = first * 128 + 1 - scanner.margin
    codes = GENOME.fetch("22", lo, (first + cfg.n_bins) * 128 + scanner.margin)
    alt_codes = codes.copy()
    alt_codes[VARIANT_POS - lo] = encode(alt)[0]
    ctx = torch.from_numpy(contexts[:, TFS].X.copy())
    signal = []
    for c in (codes, alt_codes):
        motif = torch.from_numpy(scanner.scan_codes(c))
        seq = torch.from_numpy(one_hot(c[scanner.margin : -scanner.margin]).T.copy())[None].expand(3, -1, -1)
        with torch.no_grad():
            signal.append(
                np.expm1(model(seq, motif[None] * ctx[:, None, :]).numpy()[:, cfg.n_bins // 2].astype(np.float64))
            )
    expected = np.log((signal[1] + 0.01) / (signal[0] + 0.01)).ravel()
    np.testing.assert_allclose(effect.X[0], expected, atol=1e-4)
    np.testing.assert_allclose(effect.layers[Key.layers.ref_signal][0], signal[0].ravel(), rtol=1e-4, atol=1e-6)
    assert np.abs(expected).max() > 1e-4


def test_variant_effect_old_argument_order_still_works(model, contexts):
    pos = 20_400_050
    ref = "ACGT"[GENOME.fetch("22", pos, pos)[0]]
    variants = pd.DataFrame({"chrom": ["22"], "pos": [pos], "ref": [ref], "alt": ["T" if ref != "T" else "A"]})
    options = {"fasta": SEGMENT, "motifs": MOTIFS, "progress": False, "device": "cpu"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        new = ef.tl.variant_effect(contexts, model, variants=variants, **options)
        with pytest.warns(FutureWarning, match=r"variant_effect\(contexts, model, variants=\.\.\."):
            old = ef.tl.variant_effect(model, variants, contexts=contexts, **options)
        with pytest.warns(FutureWarning):
            old_keyword = ef.tl.variant_effect(model, variants=variants, contexts=contexts, **options)
    np.testing.assert_array_equal(old.X, new.X)
    np.testing.assert_array_equal(old_keyword.X, new.X)
    assert list(inspect.signature(ef.tl.variant_effect).parameters)[:3] == ["contexts", "model", "variants"]


def test_variant_effect_errors(model, contexts):
    bad_ref = pd.DataFrame({"chrom": ["22"], "pos": [VARIANT_POS], "ref": ["N"], "alt": ["A"]})
    with pytest.raises(ValueError, match="not substitutions of A/C/G/T"):
        ef.tl.variant_effect(contexts, model, variants=bad_ref, fasta=SEGMENT, motifs=MOTIFS)
    ref, alt, _ = _variant_site()
    wrong = "A" if ref != "A" else "C"
    mismatch = pd.DataFrame(
        {"chrom": ["22"], "pos": [VARIANT_POS], "ref": [wrong], "alt": ["T" if wrong != "T" else "G"]}
    )
    with pytest.raises(ValueError, match="do not match the genome"):
        ef.tl.variant_effect(contexts, model, variants=mismatch, fasta=SEGMENT, motifs=MOTIFS)
    with pytest.raises(ValueError, match="lacks columns"):
        ef.tl.variant_effect(contexts, model, variants=pd.DataFrame({"chrom": ["22"]}), fasta=SEGMENT)


def test_masked_mse_ignores_unmeasured():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([[1.5, float("nan")], [2.0, 4.0]])
    mask = ~torch.isnan(target)
    loss = masked_mse(pred, target, mask)
    assert loss.item() == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    loss.backward()
    assert pred.grad[0, 1] == 0 and pred.grad[0, 0] != 0


def _teacher_tracks(contexts, region_bins: int):
    """Tracks with a known rule: DNase = 0.5 + 1.5 * T0 context value where a T0 motif lies, else 0.5."""
    scanner = MotifScanner(MOTIFS, TFS)
    motif = scanner.scan(GENOME, "22", B0, region_bins)
    ctx = contexts[:, TFS].X
    dnase = 0.5 + 1.5 * ctx[:, [0]] * (motif[None, :, 0] > 0)
    var = bin_frame("22", B0, region_bins, 128)
    tracks = AnnData(obs=pd.DataFrame(index=contexts.obs_names), var=var)
    tracks.layers["DNase"] = dnase.astype(np.float32)
    ctcf = np.full_like(tracks.layers["DNase"], 1.0)
    ctcf[2] = np.nan  # context c has no CTCF assay
    tracks.layers["CTCF"] = ctcf
    return tracks


def test_fit_epigept_learns_and_masks(contexts, tmp_path):
    tracks = _teacher_tracks(contexts, 6 * 64)
    torch.manual_seed(3)
    model = EpiGePT(small_config(tf_names=tuple(TFS)))
    before = _predict(contexts, model, _region(B0, 6 * 64), crop=0)
    error_before = np.nanmean((before.layers["DNase"] - tracks.layers["DNase"]) ** 2, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fitted = ef.tl.fit_epigept(
            tracks, model, contexts=contexts, fasta=SEGMENT, motifs=MOTIFS, max_epochs=6, batch_size=4, lr=3e-3,
            val_size=0.2, progress=False, accelerator="cpu", devices=1,
        )  # fmt: skip
    assert fitted is model and not model.training
    history = model.history
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "lr"] and len(history) >= 3
    assert history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    after = _predict(contexts, model, _region(B0, 6 * 64), crop=0)
    error_after = np.nanmean((after.layers["DNase"] - tracks.layers["DNase"]) ** 2, axis=1)
    assert (error_after < 0.5 * error_before).all()  # context c (no CTCF) trained on its DNase too
    ax = ef.pl.training_history(model)
    assert ax.get_lines()
    plt.close("all")
    # the history travels with the saved model
    again = EpiGePT.from_pretrained(model.save_pretrained(tmp_path / "fitted"))
    pd.testing.assert_frame_equal(again.history, history, check_dtype=False)


def test_fit_epigept_errors(contexts):
    model = EpiGePT(small_config(tf_names=tuple(TFS)))
    tracks = _teacher_tracks(contexts, 64)
    no_signal = tracks.copy()
    no_signal.layers = {"ATAC": tracks.layers["DNase"]}
    with pytest.raises(ValueError, match="no layer named after a model signal"):
        ef.tl.fit_epigept(no_signal, model, contexts=contexts, fasta=SEGMENT, motifs=MOTIFS)
    with pytest.raises(ValueError, match="not in `contexts`"):
        ef.tl.fit_epigept(tracks, model, contexts=contexts[:2].copy(), fasta=SEGMENT, motifs=MOTIFS)
    shifted = tracks.copy()
    shifted.var[Key.var.start] += 1
    with pytest.raises(ValueError, match="128-bp grid"):
        ef.tl.fit_epigept(shifted, model, contexts=contexts, fasta=SEGMENT, motifs=MOTIFS)
    del shifted.var[Key.var.chrom]
    with pytest.raises(ValueError, match=r"`tracks.var` lacks columns \['chrom'\]"):
        ef.tl.fit_epigept(shifted, model, contexts=contexts, fasta=SEGMENT, motifs=MOTIFS)
    with pytest.raises(ValueError, match="leaves none of the 3"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ef.tl.fit_epigept(tracks, model, contexts=contexts, fasta=SEGMENT, motifs=MOTIFS, val_size=0.9)
    with pytest.warns(FutureWarning, match="renamed `val_size=`"), pytest.raises(ValueError, match="no layer"):
        ef.tl.fit_epigept(no_signal, model, contexts=contexts, fasta=SEGMENT, validation_fraction=0.2)


def test_tracks_plot(model, contexts):
    pred = _predict(contexts, model, _region(B0, 100))
    fig = ef.pl.tracks(pred, signals=["DNase", "H3K27ac"], contexts=["b", "c"])
    axes = fig.axes
    assert len(axes) == 2 and [len(a.get_lines()) for a in axes] == [2, 2]
    assert axes[0].get_ylabel() == "DNase\nlog(count + 1)" and axes[1].get_xlabel() == "22 position (Mb)"
    title = axes[0].get_title()  # the region drawn, the contexts, and that this test model's weights are random
    assert title.startswith("EpiGePT predictions, 22:") and "contexts b, c" in title and "random weights" in title
    np.testing.assert_allclose(axes[0].get_lines()[1].get_ydata(), pred.layers["DNase"][2])
    pred.uns[Key.uns.epigept]["signals"] = np.array(pred.uns[Key.uns.epigept]["signals"])  # as read from .h5ad
    assert len(ef.pl.tracks(pred, contexts=["a"]).axes) == 8
    zoom = ef.pl.tracks(pred, region=_region(B0 + 10, 20), signals=["CTCF"], ax=plt.subplots()[1])
    assert len(zoom.axes[-1].get_lines()[0].get_xdata()) == 20
    with pytest.raises(KeyError, match="not layers"):
        ef.pl.tracks(pred, signals=["ATAC"])
    with pytest.raises(ValueError, match="one per signal"):
        ef.pl.tracks(pred, ax=plt.subplots()[1])
    plt.close("all")
