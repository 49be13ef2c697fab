"""R² is the coefficient of determination, not a squared correlation."""

import numpy as np
import pytest

from aiecg.evaluate.stats import pearson_r, r_squared


def test_r_squared_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r_squared(y, y) == 1.0
    assert r_squared(y, np.full(4, 2.5)) == 0.0  # the mean
    # residuals 0.5 each: SS_res = 1, SS_tot = 5
    assert r_squared(y, y + 0.5) == pytest.approx(0.8)
    assert pearson_r(y, y + 0.5) ** 2 == pytest.approx(1.0)  # a biased prediction keeps r = 1 but loses R²
    assert r_squared(y, 2 * y) < 0  # worse than the mean
    assert np.isnan(r_squared(np.ones(3), np.arange(3.0)))


def test_r_squared_along_an_axis_matches_row_by_row():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(5, 30)), rng.normal(size=(5, 30))
    np.testing.assert_allclose(r_squared(y, p, axis=-1), [r_squared(a, b) for a, b in zip(y, p)])
