import numpy as np
import pytest
from scipy import stats

from aiecg.evaluate.bootstrap import Interval, bootstrap_ci, is_vectorised, resample_indices
from aiecg.evaluate.stats import mean_absolute_error, pearson_r

SIGMA = 10.0
TRUE_MAE = SIGMA * np.sqrt(2 / np.pi)  # E|e| for e ~ N(0, sigma^2)
RHO = 0.6


def coverage(n_sets, n, n_resamples, method, seed):
    """Share of simulated data sets whose interval holds the true MAE / the true Pearson correlation."""
    rng = np.random.default_rng(seed)
    hits_mae = hits_r = 0
    for k in range(n_sets):
        y = rng.normal(100, 20, n)
        pred = y + rng.normal(0, SIGMA, n)
        mae = bootstrap_ci(mean_absolute_error, y, pred, n_resamples=n_resamples, seed=k, method=method)
        hits_mae += mae.low <= TRUE_MAE <= mae.high
        xy = rng.multivariate_normal([0, 0], [[1, RHO], [RHO, 1]], n)
        r = bootstrap_ci(pearson_r, xy[:, 0], xy[:, 1], n_resamples=n_resamples, seed=k, method=method)
        hits_r += r.low <= RHO <= r.high
    return hits_mae / n_sets, hits_r / n_sets


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_coverage_is_nominal_on_simulated_data(method):
    cover_mae, cover_r = coverage(n_sets=300, n=200, n_resamples=500, method=method, seed=11)
    assert 0.90 <= cover_mae <= 0.99
    assert 0.90 <= cover_r <= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_coverage_is_nominal_on_many_simulated_data_sets(method):
    cover_mae, cover_r = coverage(n_sets=1500, n=150, n_resamples=500, method=method, seed=12)
    assert 0.925 <= cover_mae <= 0.97
    assert 0.925 <= cover_r <= 0.97


def test_same_seed_same_interval_and_generator_accepted():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.normal(size=300)
    a = bootstrap_ci(mean_absolute_error, x, y, n_resamples=200, seed=5)
    b = bootstrap_ci(mean_absolute_error, x, y, n_resamples=200, seed=5)
    c = bootstrap_ci(mean_absolute_error, x, y, n_resamples=200, seed=6)
    assert a == b and a != c
    d = bootstrap_ci(mean_absolute_error, x, y, n_resamples=200, seed=np.random.default_rng(5))
    assert d == a
    with pytest.raises(ValueError, match="seed is required"):
        bootstrap_ci(mean_absolute_error, x, y, seed=None)


def test_vectorised_and_per_resample_statistics_agree():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=257), rng.normal(size=257)

    def loop(a, b):
        return float(np.mean(np.abs(b - a)))

    assert is_vectorised(mean_absolute_error) and not is_vectorised(loop)
    fast = bootstrap_ci(mean_absolute_error, x, y, n_resamples=300, seed=3)
    slow = bootstrap_ci(loop, x, y, n_resamples=300, seed=3)
    assert fast.estimate == pytest.approx(slow.estimate)
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), abs=1e-12)
    assert fast.estimate == pytest.approx(np.mean(np.abs(y - x)))


def test_percentile_interval_of_a_mean_matches_normal_theory():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, 2000)

    def mean(a, axis=-1):
        return np.mean(a, axis=axis)

    interval = bootstrap_ci(mean, x, n_resamples=4000, seed=0)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert interval.method == "percentile" and interval.n_resamples == 4000 and interval.n_failed == 0
    assert interval.low == pytest.approx(x.mean() - 1.96 * se, abs=0.1 * se)
    assert interval.high == pytest.approx(x.mean() + 1.96 * se, abs=0.1 * se)


def test_bca_agrees_with_scipy_on_a_skewed_statistic():
    rng = np.random.default_rng(3)
    x = rng.exponential(size=80)

    def variance(a, axis=-1):
        return np.var(a, axis=axis, ddof=1)

    ours = bootstrap_ci(variance, x, n_resamples=20000, seed=1, method="bca")
    theirs = stats.bootstrap((x,), variance, n_resamples=20000, method="BCa", random_state=2).confidence_interval
    width = theirs.high - theirs.low
    assert ours.low == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.05 * width)
    percentile = bootstrap_ci(variance, x, n_resamples=20000, seed=1)
    assert ours.high > percentile.high  # BCa shifts the interval of a right-skewed statistic to the right


def test_stratified_resamples_keep_class_sizes():
    labels = np.array([1] * 7 + [0] * 93)
    indices = np.concatenate(list(resample_indices(100, 500, np.random.default_rng(0), stratify=labels)))
    assert indices.shape == (500, 100)
    assert np.all(labels[indices].sum(axis=1) == 7)

    def positives(y, axis=-1):
        return np.sum(y, axis=axis)

    interval = bootstrap_ci(positives, labels, n_resamples=300, seed=0, stratify=labels)
    assert interval.low == interval.high == 7
    unstratified = bootstrap_ci(positives, labels, n_resamples=300, seed=0)
    assert unstratified.low < 7 < unstratified.high


def test_undefined_resamples_are_dropped_and_counted():
    x = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0])
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    interval = bootstrap_ci(pearson_r, x, y, n_resamples=1000, seed=0)
    # a resample drawing only the four zeros of x has no correlation: (4/6)^6 of resamples, about 88 of 1000
    assert 40 < interval.n_failed < 150
    assert interval.n_resamples + interval.n_failed == 1000
    assert np.isfinite(interval.low) and np.isfinite(interval.high)

    def always_nan(a, axis=-1):
        return np.full(np.shape(a)[0], np.nan)

    empty = bootstrap_ci(always_nan, y, n_resamples=50, seed=0)
    assert np.isnan(empty.low) and np.isnan(empty.high) and empty.n_failed == 50 and empty.n_resamples == 0


def test_interval_to_dict_and_validation():
    interval = Interval(1.0, 0.5, 1.5, 10, "percentile")
    assert interval.to_dict() == {"estimate": 1.0, "low": 0.5, "high": 1.5}
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="one length"):
        bootstrap_ci(mean_absolute_error, x, x[:5], seed=0)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(mean_absolute_error, x, x, seed=0, method="basic")
    with pytest.raises(ValueError, match="stratify"):
        bootstrap_ci(mean_absolute_error, x, x, seed=0, stratify=[0, 1])


def test_a_band_is_pointwise_bootstrap_ci_on_the_same_resamples():
    from aiecg.evaluate.bootstrap import bootstrap_band

    rng = np.random.default_rng(2)
    y, pred = rng.normal(0, 1, 150), rng.normal(0, 1, 150)
    shifts = np.array([0.0, 0.5, 2.0])

    def curve(a, b, axis=-1):  # MAE of pred + shift, one column per shift
        return np.stack([mean_absolute_error(a, b + s, axis=axis) for s in shifts], axis=-1)

    band = bootstrap_band(curve, y, pred, n_resamples=300, seed=4)
    for k, s in enumerate(shifts):
        one = bootstrap_ci(lambda a, b, axis=-1, s=s: mean_absolute_error(a, b + s, axis=axis), y, pred,
                           n_resamples=300, seed=4)
        assert band.estimate[k] == pytest.approx(one.estimate)
        assert band.low[k] == pytest.approx(one.low) and band.high[k] == pytest.approx(one.high)
    assert list(band.n_resamples) == [300, 300, 300]
