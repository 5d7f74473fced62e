from __future__ import annotations

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import epiformer as ef


def test_beta_distribution_curves(blood):
    fig, ax = plt.subplots()
    out = ef.pl.beta_distribution(blood, ax=ax)
    assert out is ax
    assert len(ax.lines) == 10  # one per sample for small cohorts
    density = ax.lines[0].get_ydata()
    width = np.diff(ax.lines[0].get_xdata())[0]
    assert density.sum() * width == pytest.approx(1.0, rel=1e-6)  # a density
    plt.close(fig)


def test_beta_distribution_groupby():
    adata = ef.datasets.synthetic_methylome(60, 50)
    ax = ef.pl.beta_distribution(adata, groupby="tissue")
    assert [line.get_label() for line in ax.lines] == ["blood", "buccal", "liver"]
    with pytest.raises(KeyError, match="groupby"):
        ef.pl.beta_distribution(adata, groupby="nope")
    plt.close("all")


def test_missingness_needs_qc(blood):
    with pytest.raises(ValueError, match="qc_metrics"):
        ef.pl.missingness(blood)
    ef.pp.qc_metrics(blood)
    ax = ef.pl.missingness(blood)
    assert len(ax.patches) == 10
    plt.close("all")
