"""AUROC with DeLong intervals and tests, and McNemar's test for paired sensitivity and specificity.

DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated receiver operating
characteristic curves: a nonparametric approach. Biometrics 1988;44:837-845.
Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under correlated receiver
operating characteristic curves. IEEE Signal Process Lett 2014;21:1389-1393.
McNemar Q. Note on the sampling error of the difference between correlated proportions or percentages.
Psychometrika 1947;12:153-157.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

from aiecg.evaluate.bootstrap import Interval


@dataclass(frozen=True)
class DeLongTest:
    """DeLong's test of two correlated AUROCs on the same participants.

    Attributes:
        auc1, auc2: the two AUROCs.
        difference: auc1 - auc2.
        z: difference / its DeLong standard error.
        p_value: two-sided.
        var1, var2, covariance: the DeLong (co)variances of the AUROCs.
    """

    auc1: float
    auc2: float
    difference: float
    z: float
    p_value: float
    var1: float
    var2: float
    covariance: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class McNemarTest:
    """McNemar's test on paired binary outcomes (here: correct calls of two classifiers).

    Attributes:
        n: participants compared.
        rate1, rate2: the share of correct calls of each classifier (sensitivity on positives, specificity on
            negatives).
        only1, only2: discordant pairs (correct by the first only, by the second only).
        statistic: the chi-square statistic (continuity corrected), or the smaller discordant count for the
            exact test.
        p_value: two-sided.
        method: ``exact`` (binomial, used when only1 + only2 < ``exact_below``) or ``chi2_cc`` (chi-square with
            one degree of freedom and Edwards' continuity correction).
    """

    n: int
    rate1: float
    rate2: float
    only1: int
    only2: int
    statistic: float
    p_value: float
    method: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _binary_labels(labels: np.ndarray) -> np.ndarray:
    values = np.unique(labels)
    if not np.all(np.isin(values, (0, 1))):
        raise ValueError(f"labels must be 0/1, got values {values[:10]}")
    return labels.astype(bool)


def _clean(labels: object, *scores: object) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bool [n] and scores [k, n], dropping participants with any non-finite value."""
    y = np.asarray(labels, dtype=float).ravel()
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.shape[-1] != len(y):
        raise ValueError(f"scores have {s.shape[-1]} values but labels {len(y)}")
    keep = np.isfinite(y) & np.all(np.isfinite(s), axis=0)
    return _binary_labels(y[keep]), s[:, keep]


def delong_covariance(labels: object, *scores: object) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs of k scores and their DeLong covariance matrix, by the midrank algorithm of Sun & Xu (2014).

    With m positives and n negatives, the placement values of DeLong et al. (1988) follow from midranks:
    V10(x_i) = (T_z(x_i) - T_x(x_i)) / n and V01(y_j) = 1 - (T_z(y_j) - T_y(y_j)) / m, where T_z, T_x and T_y are
    midranks among all, positive and negative scores (ties count one half). Then
    S = S10 / m + S01 / n with S10, S01 the sample covariances (ddof 1) of the placement values. O(n log n).

    Args:
        labels: 0/1 outcome per participant.
        *scores: one or more score arrays on the same participants (higher means more likely positive).

    Returns:
        ``(aucs [k], covariance [k, k])``.
    """
    y, s = _clean(labels, *scores)
    pos, neg = s[:, y], s[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong needs at least two positives and two negatives, got {m} and {n}")
    t_x = stats.rankdata(pos, axis=1)
    t_y = stats.rankdata(neg, axis=1)
    t_z = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (t_z[:, :m] - t_x) / n
    v01 = 1.0 - (t_z[:, m:] - t_y) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def delong_auc_ci(labels: object, scores: object, confidence: float = 0.95) -> Interval:
    """AUROC with its DeLong (1988) Wald interval, auc +- z * se, clipped to [0, 1].

    Returns:
        An Interval with ``method="delong"`` and ``n_resamples=0``.
    """
    aucs, covariance = delong_covariance(labels, scores)
    auc, se = float(aucs[0]), float(np.sqrt(max(covariance[0, 0], 0.0)))
    half = special.ndtri(0.5 + confidence / 2) * se
    return Interval(auc, float(max(0.0, auc - half)), float(min(1.0, auc + half)), 0, "delong", confidence)


def delong_test(labels: object, scores1: object, scores2: object) -> DeLongTest:
    """DeLong's test that two AUROCs on the same participants are equal (two-sided).

    z = (auc1 - auc2) / sqrt(var1 + var2 - 2 cov), with the (co)variances of :func:`delong_covariance`.
    When the difference has zero variance (identical rankings) z is 0 and p is 1 if the AUROCs are equal.
    """
    aucs, cov = delong_covariance(labels, scores1, scores2)
    difference = float(aucs[0] - aucs[1])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if variance <= 1e-15:
        z, p = (0.0, 1.0) if abs(difference) < 1e-12 else (float("nan"), float("nan"))
    else:
        z = difference / np.sqrt(variance)
        p = float(2 * special.ndtr(-abs(z)))
    return DeLongTest(float(aucs[0]), float(aucs[1]), difference, float(z), p, float(cov[0, 0]), float(cov[1, 1]),
                      float(cov[0, 1]))


def mcnemar_test(correct1: object, correct2: object, exact_below: int = 25) -> McNemarTest:
    """McNemar's test that two paired binary outcomes (correct or not) have the same rate.

    Exact two-sided binomial test on the discordant pairs (p = min(1, 2 P[B <= min(b, c)]), B ~ Bin(b + c, 1/2))
    when b + c < ``exact_below``; otherwise chi2 = (|b - c| - 1)^2 / (b + c) with one degree of freedom.
    The threshold of 25 discordant pairs follows common practice; pass 10**9 to always use the exact test.
    """
    a1 = np.asarray(correct1).astype(bool).ravel()
    a2 = np.asarray(correct2).astype(bool).ravel()
    if a1.shape != a2.shape:
        raise ValueError(f"paired outcomes must have one length, got {a1.shape} and {a2.shape}")
    b, c = int(np.sum(a1 & ~a2)), int(np.sum(~a1 & a2))
    n = len(a1)
    rate1 = float(a1.mean()) if n else float("nan")
    rate2 = float(a2.mean()) if n else float("nan")
    if b + c < exact_below:
        p = 1.0 if b + c == 0 else min(1.0, 2 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))
        return McNemarTest(n, rate1, rate2, b, c, float(min(b, c)), p, "exact")
    chi2 = (abs(b - c) - 1) ** 2 / (b + c)
    return McNemarTest(n, rate1, rate2, b, c, float(chi2), float(stats.chi2.sf(chi2, 1)), "chi2_cc")


def _paired_calls(labels: object, calls1: object, calls2: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=float).ravel()
    c1 = np.asarray(calls1, dtype=float).ravel()
    c2 = np.asarray(calls2, dtype=float).ravel()
    if not len(y) == len(c1) == len(c2):
        raise ValueError(f"labels and calls must have one length, got {len(y)}, {len(c1)}, {len(c2)}")
    keep = np.isfinite(y) & np.isfinite(c1) & np.isfinite(c2)
    return _binary_labels(y[keep]), c1[keep].astype(bool), c2[keep].astype(bool)


def compare_sensitivity(labels: object, calls1: object, calls2: object, exact_below: int = 25) -> McNemarTest:
    """McNemar's test of two classifiers' sensitivities: correct calls on the positives only."""
    y, c1, c2 = _paired_calls(labels, calls1, calls2)
    return mcnemar_test(c1[y], c2[y], exact_below)


def compare_specificity(labels: object, calls1: object, calls2: object, exact_below: int = 25) -> McNemarTest:
    """McNemar's test of two classifiers' specificities: correct (negative) calls on the negatives only."""
    y, c1, c2 = _paired_calls(labels, calls1, calls2)
    return mcnemar_test(~c1[~y], ~c2[~y], exact_below)


def auroc_heterogeneity(groups: dict[str, tuple[object, object]]) -> dict[str, object]:
    """Test that the AUROC is the same in independent subgroups (an interaction test of discrimination).

    Each subgroup's AUROC A_i has its DeLong variance V_i (:func:`delong_covariance`); the Wald statistic
    Q = sum_i (A_i - A)^2 / V_i, with A the inverse-variance weighted mean, is chi-squared with k - 1 degrees of
    freedom when the AUROCs are equal (Cochran's Q, Cochran WG, Biometrics 1954;10:101-129). For two subgroups it
    is the square of z = (A_1 - A_2) / sqrt(V_1 + V_2), the comparison of AUROCs of independent samples (Hanley JA,
    McNeil BJ. Radiology 1982;143:29-36). Subgroups with fewer than two cases or two non-cases are left out and
    named; the test needs two subgroups with a positive variance (a perfectly separated subgroup has none).

    Args:
        groups: ``{level: (labels, scores)}`` of disjoint participants.

    Returns:
        ``{"method", "statistic", "df", "p", "aurocs": {level: auroc}, "left_out": [level, ...]}`` (``note`` says
        why statistic and p are NaN when the test is undefined).
    """
    aurocs, variances, left_out = {}, {}, []
    for level, (labels, scores) in groups.items():
        y, s = _clean(labels, scores)
        if min(int(y.sum()), int((~y).sum())) < 2:
            left_out.append(level)
            continue
        auc, covariance = delong_covariance(y, s[0])
        aurocs[level], variances[level] = float(auc[0]), float(covariance[0, 0])
    out: dict[str, object] = {"method": "Wald chi-squared test of equal AUROCs across subgroups with DeLong "
                                        "variances (Cochran's Q; Hanley & McNeil 1982 for two)",
                              "statistic": float("nan"), "df": max(len(aurocs) - 1, 0), "p": float("nan"),
                              "aurocs": aurocs, "left_out": left_out}
    if len(aurocs) < 2:
        out["note"] = "fewer than two subgroups with two cases and two non-cases"
    elif min(variances.values()) <= 1e-15:
        out["note"] = "a subgroup's AUROC has no DeLong variance (its scores separate the classes perfectly)"
    else:
        a, w = np.array(list(aurocs.values())), 1.0 / np.array(list(variances.values()))
        q = float(np.sum(w * (a - np.sum(w * a) / np.sum(w)) ** 2))
        out.update(statistic=q, p=float(stats.chi2.sf(q, len(a) - 1)))
    return out
