"""Sample splits, target validation, baselines, predict and evaluate (the model-independent supervised API)."""

from __future__ import annotations

import warnings
from functools import cache

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import epiformer as ef
from epiformer._metrics import classification_metrics, regression_metrics
from epiformer._targets import resolve_target
from epiformer.tl._baseline import _settled_defaults


@cache
def _cohort() -> AnnData:
    adata = ef.datasets.synthetic_methylome(300, 400, random_state=1)
    ef.pp.split_samples(adata, test_size=0.25, val_size=0.1, stratify="disease", random_state=0)
    return adata


@pytest.fixture
def cohort() -> AnnData:
    return _cohort().copy()


def test_split_samples_fractions_and_strata(cohort):
    split = cohort.obs["split"]
    assert list(split.cat.categories) == ["train", "val", "test"]
    assert (split == "test").sum() == pytest.approx(75, abs=2)
    assert (split == "val").sum() == pytest.approx(30, abs=2)
    for _, group in cohort.obs.groupby("disease", observed=True):
        assert (group["split"] == "test").mean() == pytest.approx(0.25, abs=0.02)
    assert cohort.uns["split"]["params"]["stratify"] == "disease"
    again = ef.pp.split_samples(cohort, test_size=0.25, val_size=0.1, stratify="disease", copy=True)
    assert (again.obs["split"] == cohort.obs["split"]).all()  # seeded
    with pytest.raises(ValueError, match="sum to less than 1"):
        ef.pp.split_samples(cohort, test_size=0.6, val_size=0.5)
    with pytest.raises(KeyError, match="stratify"):
        ef.pp.split_samples(cohort, stratify="nope")


def test_resolve_target_bad_input(cohort):
    cohort.obs.loc[cohort.obs_names[:7], "age"] = np.nan
    with pytest.warns(UserWarning, match="7 of 300 samples have no 'age' value"):
        target = resolve_target(cohort, "age")
    assert target.task == "regression" and len(target.rows) == 293
    cohort.obs["const"] = 5.0
    with pytest.raises(ValueError, match="constant"):
        resolve_target(cohort, "const")
    cohort.obs["one"] = pd.Categorical(["a"] * cohort.n_obs)
    with pytest.raises(ValueError, match="single class"):
        resolve_target(cohort, "one")
    with pytest.raises(KeyError, match="not a column"):
        resolve_target(cohort, "nope")
    disease = resolve_target(cohort, "disease")
    assert disease.task == "classification" and disease.classes == ["case", "healthy"]


def test_elasticnet_clock_recovers_age(cohort):
    clock = ef.tl.fit_baseline(cohort, target="age")
    assert clock.method == "elasticnet" and clock.task == "regression"
    ef.tl.predict(cohort, clock)
    assert "age_pred" in cohort.obs and cohort.uns["age_pred"]["params"]["method"] == "elasticnet"
    scores = ef.tl.evaluate(cohort, truth="age", pred="age_pred")
    assert scores.loc["age_pred", "n"] == (cohort.obs["split"] == "test").sum()
    # 40 age CpGs with known slopes: a linear clock must get within a few years on held-out samples
    assert scores.loc["age_pred", "medae"] < 4
    assert scores.loc["age_pred", "pearson"] > 0.95


def test_logistic_baseline_disease(cohort):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FutureWarning)
        model = ef.tl.fit_baseline(cohort, target="disease", method="logistic")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]  # scikit-learn's changing defaults are set
    out = ef.tl.predict(cohort, model, key_added="dis", copy=True)
    assert "dis" not in cohort.obs  # copy=True leaves the input alone
    proba = out.obsm["dis_proba"]
    assert list(proba.columns) == ["case", "healthy"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert out.obs["dis"].dtype == "category"
    scores = ef.tl.evaluate(out, truth="disease", pred="dis")
    assert scores.loc["dis", "auroc"] > 0.9 and scores.loc["dis", "balanced_accuracy"] > 0.8


def test_settled_defaults_only_for_options_in_transition():
    class Estimator:
        def __init__(self, *, changing="warn", settled=None):
            pass

    assert _settled_defaults(Estimator, changing=1, settled=2, absent=3) == {"changing": 1}


def test_baseline_missing_cpgs_warns(cohort):
    clock = ef.tl.fit_baseline(cohort, target="age")
    with pytest.warns(UserWarning, match=r"Only 100 of the baseline's 400 CpGs \(25.0%\)"):
        values = clock.predict_values(cohort[:, :100].copy())
    assert values.shape == (300,) and np.isfinite(values).all()


def test_metrics_known_values():
    scores = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 8.0]))
    assert scores["medae"] == 0.0 and scores["mae"] == 1.0 and scores["rmse"] == 2.0
    assert scores["spearman"] == pytest.approx(1.0)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    cls = classification_metrics(np.array([0, 1, 1, 1]), proba)
    assert cls["accuracy"] == 0.75 and cls["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert cls["auroc"] == 1.0


def test_evaluate_side_by_side_and_errors(cohort):
    cohort.obs["perfect"] = cohort.obs["age"]
    cohort.obs["off"] = cohort.obs["age"] + 2
    table = ef.tl.evaluate(cohort, truth="age", pred=["perfect", "off"], split=None)
    assert list(table.index) == ["perfect", "off"]
    assert table.loc["perfect", "mae"] == 0 and table.loc["off", "medae"] == pytest.approx(2)
    with pytest.raises(ValueError, match="ef.tl.predict"):
        ef.tl.evaluate(cohort, truth="age", pred="missing")
    del cohort.obs["split"]
    with pytest.raises(ValueError, match="split_samples"):
        ef.tl.evaluate(cohort, truth="age", pred="perfect")


def test_prediction_and_history_plots(cohort):
    cohort.obs["age_pred"] = cohort.obs["age"] + np.random.default_rng(0).normal(0, 3, cohort.n_obs)
    ax = ef.pl.prediction(cohort, truth="age", pred="age_pred")
    assert len(ax.collections[0].get_offsets()) == (cohort.obs["split"] == "test").sum()
    assert "MedAE" in ax.texts[0].get_text()
    cohort.obs["dis_pred"] = cohort.obs["disease"]
    ax = ef.pl.prediction(cohort, truth="disease", pred="dis_pred")
    assert ax.images[0].get_array().sum() == (cohort.obs["split"] == "test").sum()
    history = {"epoch": [0, 1, 2], "train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]}
    ax = ef.pl.training_history(history)
    assert [line.get_label() for line in ax.lines] == ["train_loss", "val_loss"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [1.1, 0.7, 0.6])
    with pytest.raises(ValueError, match="epoch"):
        ef.pl.training_history({"loss": [1.0]})
    plt.close("all")
