"""Property-based checks (hypothesis) of the value validators and conversions, and of a reader, on generated input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import epiformer as ef
from epiformer._sites import check_min_coverage
from epiformer._validation import check_betas

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
matrices = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=finite | st.just(np.nan))


@SETTINGS
@given(matrices)
def test_check_betas_refuses_exactly_the_matrices_with_a_value_outside_0_1(X):
    values = X[~np.isnan(X)]
    if values.size and (values.min() < 0 or values.max() > 1):
        with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
            check_betas(X)
    else:
        check_betas(X)


@SETTINGS
@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1) | st.just(np.nan)))
def test_mvalue_then_beta_gives_the_betas_back_and_keeps_missing(betas):
    back = ef.pp.to_beta(ef.pp.to_mvalue(betas))
    np.testing.assert_array_equal(np.isnan(back), np.isnan(betas))
    np.testing.assert_allclose(back[~np.isnan(betas)], betas[~np.isnan(betas)], atol=1e-9)


@SETTINGS
@given(st.one_of(st.integers(-5, 10**6), st.floats(0.01, 0.99), st.just(True), st.just("1")))
def test_min_coverage_takes_only_positive_integers(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        check_min_coverage(value)
    else:
        with pytest.raises((TypeError, ValueError), match="min_coverage"):
            check_min_coverage(value)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(["chr1", "chr2"]), st.integers(1, 10_000), st.integers(0, 5), st.integers(0, 5)),
        min_size=1,
        max_size=30,
        unique_by=lambda row: row[:2],
    )
)
def test_bismark_cov_reader_keeps_every_count(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("cov") / "sample.cov"
    kept = [(c, p, m, u) for c, p, m, u in rows if m + u > 0]
    lines = [f"{c}\t{p}\t{p}\t{100 * m / (m + u) if m + u else 0:.4f}\t{m}\t{u}\n" for c, p, m, u in rows]
    path.write_text("".join(lines))
    if not kept:
        with pytest.raises(ValueError, match="No site is covered"):
            ef.io.read_bedmethyl(path, format="bismark_cov", combine_strands=False)
        return
    adata = ef.io.read_bedmethyl(path, format="bismark_cov", combine_strands=False)
    expected = pd.DataFrame(kept, columns=["chrom", "pos", "mc", "un"]).sort_values(["chrom", "pos"])
    assert adata.var["chrom"].astype(str).tolist() == expected["chrom"].tolist()
    assert adata.var["pos"].tolist() == expected["pos"].tolist()  # Bismark is 1-based: positions as written
    np.testing.assert_array_equal(adata.layers["mc"].toarray().ravel(), expected["mc"])
    np.testing.assert_array_equal(adata.layers["cov"].toarray().ravel(), expected["mc"] + expected["un"])
