"""Attribution summarised by wave (P, QRS, ST-T) and lead, with intervals over participants.

Each participant's map is cut at the global (IEC 60601-2-25) fiducials of their own median beat, as ``prepare``
measured them (sample indices of the stored median): P from P onset to QRS onset, QRS from QRS onset to QRS
offset, ST-T from QRS offset to the end of T; the rest of the window is "outside". The share of a wave is its part
of the participant's total |attribution| over all leads and samples; its mean over participants carries a
percentile bootstrap 95% interval (participants resampled, :func:`aiecg.evaluate.bootstrap.bootstrap_band`).
The signed sum per wave says in which direction that wave moves the output: by the completeness of integrated
gradients the signed sums of all leads and waves add up to the output minus the baseline's output, so they are the
wave's net contribution. Its magnitude, as a share of the participant's total |net contribution| (``net_share``),
is what the report draws: unlike |attribution| summed sample by sample, which follows |input - baseline| whatever
the weights are (Adebayo et al., NeurIPS 2018), a net contribution cancels within a wave unless the model's
gradients agree there; the model-randomisation check tests it as a map of its own (:mod:`aiecg.explain.sanity`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiecg.evaluate.bootstrap import bootstrap_band

WAVES = ("P", "QRS", "ST-T", "outside")
FIDUCIALS = ("p_onset", "qrs_onset", "qrs_offset", "t_end")
"""The index columns of the store (sample indices in the stored median beat) that bound the waves."""


def wave_masks(fiducials: np.ndarray, n_samples: int) -> np.ndarray:
    """Boolean masks [n, 4 waves, samples] from fiducials [n, 4] (p_onset, qrs_onset, qrs_offset, t_end; NaN
    where not found: a P wave that was not found gives an empty P window, its samples count as outside)."""
    t = np.arange(n_samples)[None, :]
    p_on, q_on, q_off, t_end = (fiducials[:, k : k + 1] for k in range(4))
    with np.errstate(invalid="ignore"):
        p = (t >= p_on) & (t < q_on)
        qrs = (t >= q_on) & (t <= q_off)
        st_t = (t > q_off) & (t <= t_end)
    outside = ~(p | qrs | st_t)
    return np.stack([p, qrs, st_t, outside], axis=1)


def wave_contributions(attributions: np.ndarray, fiducials: np.ndarray) -> np.ndarray:
    """Per participant, lead and wave: the signed sum of the attribution [n, leads, 4] (the wave's net
    contribution to the output's change from the baseline)."""
    masks = wave_masks(fiducials, attributions.shape[2]).astype(np.float64)  # [n, 4, T]
    return np.einsum("nlt,nwt->nlw", attributions.astype(np.float64), masks)


def _share(values: np.ndarray) -> np.ndarray:
    """``values`` [n, leads, waves] (non-negative) as shares of each participant's total; NaN for a zero total."""
    total = values.sum(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, values / total, np.nan)


def wave_shares(attributions: np.ndarray, fiducials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per participant, lead and wave: share of the participant's total |attribution| [n, leads, 4] and the
    signed sum [n, leads, 4]."""
    masks = wave_masks(fiducials, attributions.shape[2]).astype(np.float64)  # [n, 4, T]
    absolute = np.einsum("nlt,nwt->nlw", np.abs(attributions).astype(np.float64), masks)
    return _share(absolute), wave_contributions(attributions, fiducials)


def _mean_band(values: np.ndarray, seed: int, n_resamples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over participants of each column of ``values`` [n, k] with pointwise bootstrap 95% intervals."""
    keep = np.isfinite(values).all(axis=1)
    values = values[keep]
    columns = [values[:, j] for j in range(values.shape[1])]

    def means(*cols: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.stack([c.mean(axis=axis) for c in cols], axis=-1)

    band = bootstrap_band(means, *columns, n_resamples=n_resamples, seed=seed)
    if len(values) < 2:  # one participant: an estimate, no interval (a resample of one is that one)
        return band.estimate, np.full_like(band.estimate, np.nan), np.full_like(band.estimate, np.nan)
    return band.estimate, band.low, band.high


def wave_summary(attributions: np.ndarray, fiducials: np.ndarray, leads: list[str], seed: int = 0,
                 n_resamples: int = 1000) -> pd.DataFrame:
    """One row per lead and wave, and per wave over all leads (lead ``all``): mean share of |attribution|
    (``share``), mean share of |net contribution| (``net_share``; over all leads: the share of the wave's
    per-lead net contributions, in absolute value) and mean signed attribution (``signed``) over participants, each
    with bootstrap 95% intervals, and n."""
    share, signed = wave_shares(attributions, fiducials)
    net = _share(np.abs(signed))
    rows = []
    blocks = [("all", share.sum(axis=1), net.sum(axis=1), signed.sum(axis=1))] + [
        (lead, share[:, i], net[:, i], signed[:, i]) for i, lead in enumerate(leads)]
    for lead, *values in blocks:
        bands = {name: _mean_band(v, seed, n_resamples) for name, v in zip(("share", "net_share", "signed"), values)}
        for w, wave in enumerate(WAVES):
            row: dict[str, object] = {"lead": lead, "wave": wave}
            for name, (est, low, high) in bands.items():
                row |= {name: est[w], f"{name}_low": low[w], f"{name}_high": high[w]}
            rows.append(row | {"n": int(np.isfinite(values[0]).all(axis=1).sum())})
    return pd.DataFrame(rows)


def truth_summary(effect: np.ndarray, leads: list[str], seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """The generator's effect shares ([n, leads, 3]: P, QRS, ST-T; :func:`aiecg.explain.truth.effect_by_wave`)
    summarised as :func:`wave_summary` does: columns lead, wave, truth_share, truth_low, truth_high."""
    rows = []
    blocks = [("all", effect.sum(axis=1))] + [(lead, effect[:, i]) for i, lead in enumerate(leads)]
    for lead, values in blocks:
        est, low, high = _mean_band(values, seed, n_resamples)
        for w, wave in enumerate(WAVES[:3]):
            rows.append({"lead": lead, "wave": wave, "truth_share": est[w], "truth_low": low[w],
                         "truth_high": high[w]})
    return pd.DataFrame(rows)


def input_part_shares(attributions: np.ndarray, median_samples: int, seed: int = 0,
                      n_resamples: int = 1000) -> dict[str, list[float]]:
    """For a model of both inputs (median beat, then rhythm strip, joined in time): each input's share of the
    participant's |net contribution| (the signed sum of its attribution, in absolute value, over the sum of both),
    mean over participants as [estimate, low, high] with a bootstrap 95% interval. By completeness the two net
    contributions add up to the output minus the baseline's, so the shares say which input moves the output."""
    net = np.abs(np.stack([attributions[:, :, :median_samples].astype(np.float64).sum(axis=(1, 2)),
                           attributions[:, :, median_samples:].astype(np.float64).sum(axis=(1, 2))], axis=1))
    total = net.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, net / total, np.nan)
    est, low, high = _mean_band(share, seed, n_resamples)
    return {name: [float(est[k]), float(low[k]), float(high[k])]
            for k, name in enumerate(("median beat", "rhythm strip"))}
