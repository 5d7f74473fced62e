"""The evaluation plots draw the data they are given, count what they skip and name what is missing."""

from __future__ import annotations

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import epiformer as ef
from epiformer._constants import Key


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _hexbin_total(ax) -> float:
    """Points counted by the hexbin of `ax` (its first collection)."""
    return float(np.asarray(ax.collections[0].get_array()).sum())


def _colorbar_labels(fig) -> list[str]:
    return [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]


@pytest.fixture
def imputed():
    """Synthetic betas with 10% held out (NaN in `.X`), and a fake imputation: the truth plus small noise."""
    adata = ef.datasets.synthetic_methylome(40, 60, missing_rate=0.0, random_state=0)
    rng = np.random.default_rng(1)
    truth = adata.X.copy()
    held = rng.random(adata.shape) < 0.1
    adata.X[held] = np.nan
    filled = adata.X.copy()
    filled[held] = np.clip(truth[held] + rng.normal(0, 0.05, held.sum()), 0, 1)
    adata.layers[Key.layers.imputed] = filled
    adata.uns[Key.uns.imputed] = {"params": {"layer": None}}
    return adata, truth, held


def test_imputation_draws_the_held_out_values(imputed):
    adata, truth, held = imputed
    fig, ax = plt.subplots()
    out = ef.pl.imputation(adata, truth=truth, ax=ax)
    assert out is ax
    assert _hexbin_total(ax) == held.sum()  # the default mask: the values missing in the input
    mae = np.abs(adata.layers[Key.layers.imputed][held] - truth[held]).mean()
    r = np.corrcoef(adata.layers[Key.layers.imputed][held], truth[held])[0, 1]
    assert f"MAE {mae:.3f}" in ax.get_title() and f"Pearson r {r:.3f}" in ax.get_title()
    assert "held-out" in ax.get_xlabel() and "imputed" in ax.get_ylabel() and "beta" in ax.get_xlabel()
    assert _colorbar_labels(fig) == ["held-out values per hexagon"]
    assert "NaN" not in ax.get_title()


def test_imputation_mask_layer_and_nan(imputed):
    adata, truth, held = imputed
    adata.layers["truth"] = truth
    rows, cols = np.nonzero(held)
    adata.layers[Key.layers.imputed][rows[:5], cols[:5]] = np.nan  # e.g. CpGs outside the vocabulary
    n_nan = 5
    ax = ef.pl.imputation(adata, truth="truth", mask=held)
    assert _hexbin_total(ax) == held.sum() - n_nan
    assert n_nan and f"{n_nan} NaN skipped" in ax.get_title()


def test_imputation_refuses_missing_keys(imputed):
    adata, truth, _ = imputed
    with pytest.raises(KeyError, match="nope"):
        ef.pl.imputation(adata, truth="nope")
    with pytest.raises(KeyError, match="other"):
        ef.pl.imputation(adata, truth=truth, layer="other")
    del adata.uns[Key.uns.imputed]
    with pytest.raises(KeyError, match="methylgpt_imputed.*mask="):
        ef.pl.imputation(adata, truth=truth)
    with pytest.raises(ValueError, match="shape"):
        ef.pl.imputation(adata, truth=truth[:, :3], mask=np.ones(adata.shape, bool))


def test_vocab_coverage_bars_and_overall_line():
    adata = ef.datasets.synthetic_methylome(12, 50, missing_rate=0.1, random_state=0)
    vocab = [*adata.var_names[:40], "cg_absent_1", "cg_absent_2"]
    report = ef.pp.vocab_coverage(adata, vocab)
    fig, ax = plt.subplots()
    assert ef.pl.vocab_coverage(adata, vocab, ax=ax) is ax
    heights = [p.get_height() for p in ax.patches]
    expected = 100 * np.sort(report["per_sample"]["fraction_vocab_observed"].to_numpy())
    np.testing.assert_allclose(heights, expected)
    assert ax.lines[0].get_ydata()[0] == pytest.approx(100 * 40 / 42)
    assert "42 vocabulary CpGs" in ax.get_title() and "(%)" in ax.get_ylabel() and "sample" in ax.get_xlabel()
    # the report itself, with a NaN fraction
    report["per_sample"].iloc[0, 1] = np.nan
    ax = ef.pl.vocab_coverage(report)
    assert len(ax.patches) == 11 and "1 NaN skipped" in ax.get_title()


def test_vocab_coverage_refuses_bad_input():
    with pytest.raises(KeyError, match="per_sample"):
        ef.pl.vocab_coverage({"n_vocab": 3, "fraction_found": 1.0})
    with pytest.raises(ValueError, match="model"):
        ef.pl.vocab_coverage(AnnData(np.zeros((2, 2), np.float32)))


@pytest.fixture
def predicted(tmp_path):
    """A small multiome split on both axes, with a prediction that follows the truth of the driven CpGs."""
    mdata = ef.datasets.synthetic_multiome(40, 20, 200, cache_dir=tmp_path, random_state=0)
    ef.pp.split_pairs(mdata, test_size=0.5, val_size=0.1)
    methyl = mdata["methyl"]
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.02, methyl.shape)
    driven = methyl.var["expression_driven"].to_numpy()
    means = np.nanmean(methyl.X, axis=0)
    pred = np.where(driven, methyl.X + noise, means + noise)
    methyl.layers[Key.layers.predicted_methylation] = np.clip(pred, 0, 1).astype(np.float32)
    return mdata


def test_methylation_prediction_panels(predicted):
    fig, axes = plt.subplots(1, 2)
    out = ef.pl.methylation_prediction(predicted, groupby="expression_driven", axes=axes)
    assert out is fig
    scores = ef.tl.evaluate_methylation(predicted, baselines=False).iloc[0]
    assert _hexbin_total(axes[0]) == scores["n_pairs"]
    assert f"Spearman {scores['spearman']:.3f}" in axes[0].get_title()
    assert f"median {scores['per_cpg_spearman']:.3f}" in axes[1].get_title()
    assert "observed" in axes[0].get_xlabel() and "predicted" in axes[0].get_ylabel()
    assert "Spearman" in axes[1].get_xlabel() and axes[1].get_ylabel() == "CpGs"
    methyl = predicted["methyl"]
    test_cpgs = methyl.var["split"] == "test"
    legend = [t.get_text() for t in axes[1].get_legend().get_texts()]
    n_driven = int((test_cpgs & methyl.var["expression_driven"]).sum())
    assert any(f"expression_driven = True (n = {n_driven}" in t for t in legend)
    assert _colorbar_labels(fig) == ["pairs per hexagon"]


def test_methylation_prediction_nan_and_bad_input(predicted):
    methyl = predicted["methyl"]
    rows = np.flatnonzero(predicted.obs["split"] == "test")
    cols = np.flatnonzero(methyl.var["split"] == "test")
    methyl.layers[Key.layers.predicted_methylation][rows[0], cols[:4]] = np.nan
    n_missing = int(np.isnan(methyl.X[np.ix_(rows, cols)]).sum())
    fig = ef.pl.methylation_prediction(predicted)
    left, right = fig.axes[:2]
    block = methyl.X[np.ix_(rows, cols)]
    skipped = int(
        (np.isnan(block) | np.isnan(methyl.layers[Key.layers.predicted_methylation][np.ix_(rows, cols)])).sum()
    )
    assert skipped >= 4 and skipped >= n_missing
    assert _hexbin_total(left) == block.size - skipped
    assert f"{skipped} NaN skipped" in left.get_title()
    assert "per-CpG" in right.get_title()
    with pytest.raises(KeyError, match="nope"):
        ef.pl.methylation_prediction(predicted, layer="nope")
    with pytest.raises(KeyError, match="nope"):
        ef.pl.methylation_prediction(predicted, groupby="nope")
    with pytest.raises(ValueError, match="two"):
        ef.pl.methylation_prediction(predicted, axes=[left])


@pytest.fixture
def effects():
    """A hand-built `ef.tl.variant_effect` result: 2 variants x (3 contexts x 4 signals)."""
    contexts, signals = ["c0", "c1", "c2"], ["DNase", "CTCF", "H3K27ac", "H3K4me3"]
    var = pd.DataFrame({"context": np.repeat(contexts, 4), "signal": np.tile(signals, 3)})
    var.index = [f"{c}|{s}" for c, s in zip(var["context"], var["signal"], strict=True)]
    X = np.random.default_rng(0).normal(0, 1e-3, (2, 12)).astype(np.float32)
    out = AnnData(X=X, obs=pd.DataFrame(index=["var1", "var2"]), var=var)
    out.uns[Key.uns.variant_effect] = {"params": {"eps": 0.01}}
    return out


def test_variant_effects_one_variant(effects):
    fig, ax = plt.subplots()
    assert ef.pl.variant_effects(effects, variant="var2", ax=ax) is ax
    image = ax.images[0]
    np.testing.assert_allclose(np.asarray(image.get_array()), effects.X[1].reshape(3, 4))
    lo, hi = image.get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(effects.X[1]).max())  # centred on 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["DNase", "CTCF", "H3K27ac", "H3K4me3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c0", "c1", "c2"]
    assert "var2" in ax.get_title() and ax.get_xlabel() == "signal" and ax.get_ylabel() == "context"
    assert _colorbar_labels(fig) == ["log((alt + 0.01) / (ref + 0.01))"]


def test_variant_effects_every_variant_nan_and_bad_input(effects):
    effects.X[0, 5] = np.nan
    fig = ef.pl.variant_effects(effects)
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 2 and "var1" in panels[0].get_title() and "var2" in panels[1].get_title()
    assert np.ma.is_masked(panels[0].images[0].get_array()) and "1 NaN skipped" in panels[0].get_title()
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim()  # one shared scale
    with pytest.raises(KeyError, match="var9"):
        ef.pl.variant_effects(effects, variant="var9")
    with pytest.raises(ValueError, match="one per variant"):
        ef.pl.variant_effects(effects, ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="context"):
        ef.pl.variant_effects(AnnData(np.zeros((1, 2), np.float32)))
