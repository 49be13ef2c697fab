"""Statistics the report shows that the evaluation does not save (yet), computed from arrays (no store, no
bundle): calibration by sex with Wilson intervals, slope and intercept (``calibration_by_sex.csv`` when saved), the
proportional bias of a Bland-Altman plot, and the median-beat summaries by group.

``aiecg report`` only renders; ``workflows/report.py`` computes these (and, for runs written before the evaluation
saved its curves, :mod:`aiecg.evaluate.curves`) and hands them to the page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALIBRATION_BY_SEX_FILE = "calibration_by_sex.csv"


def wilson_interval(events: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score 95% interval of a proportion (Wilson 1927; Brown, Cai & DasGupta, Stat Sci 2001)."""
    events, n = np.asarray(events, float), np.asarray(n, float)
    p = events / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def calibration_by_group(labels: np.ndarray, probs: np.ndarray, groups: dict[str, np.ndarray],
                         n_bins: int) -> pd.DataFrame:
    """Reliability curves of ``probs`` per group (quantile bins within the group), with Wilson intervals per bin
    and the group's calibration slope and intercept (Cox 1958; Van Calster et al. 2016), one row per bin:
    group, bin, mean_predicted, observed, n, low, high, slope, intercept, n_group, events_group."""
    from aiecg.evaluate.calibration import calibration_intercept, calibration_slope

    rows = []
    for name, member in groups.items():
        keep = member & np.isfinite(labels) & np.isfinite(probs)
        y, p = labels[keep], np.clip(probs[keep], 1e-6, 1 - 1e-6)
        if len(y) < 2 * 3 or len(np.unique(y)) < 2:
            continue
        slope, intercept = float(calibration_slope(y, p)), float(calibration_intercept(y, p))
        order = np.argsort(p, kind="stable")
        for k, block in enumerate(b for b in np.array_split(order, min(n_bins, len(y) // 3)) if len(b)):
            events = y[block].sum()
            low, high = wilson_interval(events, len(block))
            rows.append({"group": name, "bin": k, "mean_predicted": float(p[block].mean()),
                         "observed": float(events / len(block)), "n": int(len(block)), "low": float(low),
                         "high": float(high), "slope": slope, "intercept": intercept, "n_group": int(len(y)),
                         "events_group": int(y.sum())})
    return pd.DataFrame(rows)


def proportional_bias(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Least-squares regression of the difference (predicted - truth) on the mean of the two (Bland & Altman,
    Stat Methods Med Res 1999, section 3.2): a slope other than 0 is a proportional bias. Returns slope,
    intercept, the slope's 95% interval and its p-value (t-test), and n."""
    from scipy import stats

    keep = np.isfinite(truth) & np.isfinite(predicted)
    mean, diff = (truth[keep] + predicted[keep]) / 2, predicted[keep] - truth[keep]
    if keep.sum() < 3 or np.ptp(mean) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "slope_low": float("nan"),
                "slope_high": float("nan"), "p": float("nan"), "n": int(keep.sum())}
    fit = stats.linregress(mean, diff)
    half = stats.t.ppf(0.975, keep.sum() - 2) * fit.stderr
    return {"slope": float(fit.slope), "intercept": float(fit.intercept), "slope_low": float(fit.slope - half),
            "slope_high": float(fit.slope + half), "p": float(fit.pvalue), "n": int(keep.sum())}


def median_beat_groups(beats: np.ndarray, lvh: np.ndarray | None, prediction: np.ndarray | None,
                       prediction_name: str = "prediction") -> list[dict[str, object]]:
    """Mean and SD over participants of their median beats ([n, leads, samples]) for the groups the report
    compares: CMR LVH against no LVH, and the highest against the lowest fifth of the prediction. One entry per
    comparison: name, and curves (label, n, mean [leads, samples], sd)."""
    def curve(label: str, member: np.ndarray) -> dict[str, object]:
        chosen = beats[member]
        return {"label": f"{label} (n={int(member.sum())})", "n": int(member.sum()), "mean": chosen.mean(axis=0),
                "sd": chosen.std(axis=0, ddof=1) if member.sum() > 1 else np.zeros(beats.shape[1:])}

    panels: list[dict[str, object]] = []
    if lvh is not None and len(np.unique(lvh[np.isfinite(lvh)])) == 2:
        panels.append({"name": "lvh", "curves": [curve("LVH", lvh == 1), curve("no LVH", lvh == 0)]})
    if prediction is not None and np.isfinite(prediction).sum() >= 2:
        low_cut, high_cut = np.nanquantile(prediction, [0.2, 0.8])
        panels.append({"name": "predicted", "what": prediction_name,
                       "curves": [curve("highest fifth of predictions", prediction >= high_cut),
                                  curve("lowest fifth", prediction <= low_cut)]})
    return panels
