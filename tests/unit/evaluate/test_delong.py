import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from aiecg.evaluate.delong import (
    auroc_heterogeneity,
    compare_sensitivity,
    compare_specificity,
    delong_auc_ci,
    delong_covariance,
    delong_test,
    mcnemar_test,
)


def slow_delong(labels, scores):
    """DeLong, DeLong & Clarke-Pearson (1988) structural components by explicit pairwise comparison.

    psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise; V10(x_i) = mean_j psi(x_i, y_j), V01(y_j) =
    mean_i psi(x_i, y_j); S10[r, s] = sum_i (V10_r(x_i) - auc_r)(V10_s(x_i) - auc_s) / (m - 1), likewise S01
    over the negatives with n - 1; S = S10 / m + S01 / n. O(m n) per score, used only as a test oracle.
    """
    labels = np.asarray(labels)
    k = len(scores)
    v10, v01, aucs = [], [], []
    for s in scores:
        s = np.asarray(s, dtype=float)
        x, y = s[labels == 1], s[labels == 0]
        psi = np.zeros((len(x), len(y)))
        for i in range(len(x)):
            for j in range(len(y)):
                psi[i, j] = 1.0 if x[i] > y[j] else (0.5 if x[i] == y[j] else 0.0)
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    m, n = len(v10[0]), len(v01[0])
    s10, s01 = np.zeros((k, k)), np.zeros((k, k))
    for r in range(k):
        for q in range(k):
            s10[r, q] = np.sum((v10[r] - aucs[r]) * (v10[q] - aucs[q])) / (m - 1)
            s01[r, q] = np.sum((v01[r] - aucs[r]) * (v01[q] - aucs[q])) / (n - 1)
    return np.array(aucs), s10 / m + s01 / n


def slow_test(labels, s1, s2):
    aucs, cov = slow_delong(labels, [s1, s2])
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return aucs, cov, z, 2 * stats.norm.sf(abs(z))


def tied_data(seed, n=160, prevalence=0.3):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prevalence).astype(int)
    latent = rng.normal(size=n) + labels
    s1 = np.round(latent + rng.normal(scale=0.5, size=n), 1)  # rounding creates ties within and across classes
    s2 = np.round(latent + rng.normal(scale=1.0, size=n), 0)
    s3 = rng.integers(0, 4, size=n).astype(float)  # heavy ties, weak signal
    return labels, s1, s2, s3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_pairwise_structural_components(seed):
    labels, s1, s2, s3 = tied_data(seed)
    aucs, cov = delong_covariance(labels, s1, s2, s3)
    slow_aucs, slow_cov = slow_delong(labels, [s1, s2, s3])
    np.testing.assert_allclose(aucs, slow_aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, slow_cov, rtol=0, atol=1e-12)
    for s, auc in zip((s1, s2, s3), aucs, strict=True):
        assert auc == pytest.approx(roc_auc_score(labels, s), abs=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_delong_test_equals_slow_z_and_p(seed):
    labels, s1, s2, _ = tied_data(seed)
    result = delong_test(labels, s1, s2)
    aucs, cov, z, p = slow_test(labels, s1, s2)
    assert (result.auc1, result.auc2) == pytest.approx(tuple(aucs), abs=1e-12)
    assert result.difference == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert (result.var1, result.var2, result.covariance) == pytest.approx((cov[0, 0], cov[1, 1], cov[0, 1]), abs=1e-12)
    assert result.z == pytest.approx(z, abs=1e-10)
    assert result.p_value == pytest.approx(p, abs=1e-10)


def test_delong_variance_by_hand():
    # positives 0.9, 0.6; negatives 0.7, 0.1: psi = [[1, 1], [0, 1]], auc 3/4, V10 = (1, 1/2), V01 = (1/2, 1),
    # S10 = S01 = 1/8, var = 1/8 / 2 + 1/8 / 2 = 1/8
    aucs, cov = delong_covariance([1, 1, 0, 0], [0.9, 0.6, 0.7, 0.1])
    assert aucs[0] == pytest.approx(0.75) and cov[0, 0] == pytest.approx(0.125)


def test_delong_interval_is_wald_and_clipped():
    labels, s1, _, _ = tied_data(5)
    interval = delong_auc_ci(labels, s1)
    aucs, cov = slow_delong(labels, [s1])
    half = stats.norm.ppf(0.975) * np.sqrt(cov[0, 0])
    assert interval.method == "delong" and interval.estimate == pytest.approx(aucs[0])
    assert (interval.low, interval.high) == pytest.approx((aucs[0] - half, aucs[0] + half), abs=1e-12)
    perfect = delong_auc_ci([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert perfect.estimate == 1.0 and perfect.high == 1.0 and perfect.low == 1.0  # zero variance at AUC 1
    assert delong_auc_ci(labels, s1, confidence=0.99).low < interval.low


def test_delong_identical_scores_and_nan_handling():
    labels, s1, _, _ = tied_data(6)
    same = delong_test(labels, s1, s1)
    assert same.difference == 0 and same.z == 0 and same.p_value == 1.0
    s_nan = s1.copy()
    s_nan[0] = np.nan
    aucs, _ = delong_covariance(labels, s_nan)
    assert aucs[0] == pytest.approx(roc_auc_score(labels[1:], s1[1:]))
    with pytest.raises(ValueError, match="two positives"):
        delong_covariance([1, 0, 0], [0.2, 0.1, 0.3])


def test_mcnemar_exact_for_few_discordant_pairs():
    a = np.array([1] * 10 + [1] * 6 + [0] * 1 + [0] * 3, dtype=bool)
    b = np.array([1] * 10 + [0] * 6 + [1] * 1 + [0] * 3, dtype=bool)
    result = mcnemar_test(a, b)
    assert (result.only1, result.only2, result.method) == (6, 1, "exact")
    assert result.p_value == pytest.approx(stats.binomtest(1, 7, 0.5).pvalue)
    assert result.rate1 == pytest.approx(16 / 20) and result.rate2 == pytest.approx(11 / 20)
    none = mcnemar_test(a, a)
    assert none.p_value == 1.0 and none.method == "exact"


def test_mcnemar_chi_square_with_continuity_correction():
    a = np.array([1] * 30 + [0] * 15 + [1] * 50, dtype=bool)
    b = np.array([0] * 30 + [1] * 15 + [1] * 50, dtype=bool)
    result = mcnemar_test(a, b)
    chi2 = (abs(30 - 15) - 1) ** 2 / 45
    assert result.method == "chi2_cc" and result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(stats.chi2.sf(chi2, 1))
    assert mcnemar_test(a, b, exact_below=10**9).method == "exact"


def test_paired_sensitivity_and_specificity_use_their_class_only():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    calls1 = np.array([1, 1, 1, 0, 0, 0, 1, 1])
    calls2 = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    sens = compare_sensitivity(labels, calls1, calls2)
    assert (sens.n, sens.rate1, sens.rate2, sens.only1, sens.only2) == (4, 0.75, 0.25, 2, 0)
    spec = compare_specificity(labels, calls1, calls2)
    assert (spec.n, spec.rate1, spec.rate2, spec.only1, spec.only2) == (4, 0.5, 1.0, 0, 2)
    assert spec.p_value == pytest.approx(stats.binomtest(0, 2, 0.5).pvalue)


def test_auroc_heterogeneity_is_the_independent_samples_z_test_for_two_and_cochrans_q_for_three():
    rng = np.random.default_rng(7)
    groups = {}
    for level, signal in (("a", 2.0), ("b", 0.3), ("c", 1.0)):
        y = (rng.random(120) < 0.4).astype(float)
        groups[level] = (y, signal * y + rng.normal(0, 1, 120))
    two = auroc_heterogeneity({k: groups[k] for k in ("a", "b")})
    (a1, v1), (a2, v2) = [(float(delong_covariance(*groups[k])[0][0]), float(delong_covariance(*groups[k])[1][0, 0]))
                          for k in ("a", "b")]
    z = (a1 - a2) / np.sqrt(v1 + v2)  # Hanley & McNeil 1982, independent samples
    assert two["statistic"] == pytest.approx(z**2) and two["p"] == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert two["df"] == 1 and two["p"] < 0.001 and two["aurocs"]["a"] == pytest.approx(roc_auc_score(*groups["a"]))
    three = auroc_heterogeneity(groups)
    a = np.array([roc_auc_score(*groups[k]) for k in "abc"])
    w = 1 / np.array([delong_covariance(*groups[k])[1][0, 0] for k in "abc"])
    q = np.sum(w * (a - np.sum(w * a) / w.sum()) ** 2)
    assert three["statistic"] == pytest.approx(q) and three["p"] == pytest.approx(stats.chi2.sf(q, 2))
    same = auroc_heterogeneity({"x": groups["c"], "y": groups["c"]})
    assert same["statistic"] == pytest.approx(0) and same["p"] == pytest.approx(1)


def test_auroc_heterogeneity_leaves_out_one_class_subgroups_and_says_when_undefined():
    y = np.array([0, 0, 1, 1, 0, 1.0])
    out = auroc_heterogeneity({"both": (y, np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.3])),
                               "cases only": (np.ones(4), np.arange(4.0))})
    assert out["left_out"] == ["cases only"] and np.isnan(out["p"]) and "fewer than two" in out["note"]
    perfect = auroc_heterogeneity({"a": (y, y), "b": (y, np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.3]))})
    assert np.isnan(perfect["p"]) and "separate the classes perfectly" in perfect["note"]
