"""The one bootstrap of aiecg: confidence intervals for any statistic of paired arrays.

Resamples participants (rows) with replacement, optionally within strata (class labels, so every resample
holds both classes), with an explicit seed, and returns a percentile or BCa interval (Efron B. Better
bootstrap confidence intervals. J Am Stat Assoc 1987;82:171-185). Resamples whose statistic is not finite
(for example a correlation of a constant resample) are dropped and counted, never silently used.

A statistic is *vectorised* when it takes an ``axis`` keyword and reduces along it; it is then called on
whole blocks of resamples ``[b, n]`` at once (``axis=-1``), which is what makes 2000 resamples of thousands
of participants take a fraction of a second. Any other callable is called once per resample on 1-D arrays.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

# resample-index blocks hold about this many elements (256 kB of float64 per gathered array, so the
# arithmetic on a block stays in cache), whatever n is; at least one resample per block
_BLOCK_ELEMENTS = 32_768

SeedLike = int | np.random.Generator


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval.

    Attributes:
        estimate: the statistic on the data as given.
        low, high: the interval's bounds (NaN when it could not be computed).
        n_resamples: resamples whose statistic was finite and used (0 for analytic intervals such as DeLong).
        method: ``percentile``, ``bca`` or the analytic method (``delong``).
        confidence: the nominal coverage.
        n_failed: resamples dropped because the statistic was NaN or infinite.
    """

    estimate: float
    low: float
    high: float
    n_resamples: int
    method: str
    confidence: float = 0.95
    n_failed: int = 0

    def to_dict(self) -> dict[str, float]:
        """The metric as ``{"estimate", "low", "high"}`` (the form of every report)."""
        return {"estimate": float(self.estimate), "low": float(self.low), "high": float(self.high)}


def as_generator(seed: SeedLike) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``, passing a Generator through unchanged."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed is required (an int or a numpy Generator): results must be reproducible")
    return np.random.default_rng(seed)


def is_vectorised(statistic: Callable[..., object]) -> bool:
    """Whether ``statistic`` takes an ``axis`` keyword (and is therefore called on blocks of resamples)."""
    try:
        return "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):
        return False


def _as_arrays(arrays: Sequence[object]) -> tuple[np.ndarray, ...]:
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one data array")
    out = tuple(np.asarray(a) for a in arrays)
    if any(a.ndim != 1 for a in out):
        raise ValueError(f"bootstrap_ci takes 1-D arrays of participants, got shapes {[a.shape for a in out]}")
    if len({len(a) for a in out}) != 1:
        raise ValueError(f"bootstrap_ci arrays must have one length, got {[len(a) for a in out]}")
    if len(out[0]) == 0:
        raise ValueError("bootstrap_ci got empty arrays")
    return out


def _strata(stratify: object, n: int) -> list[np.ndarray] | None:
    if stratify is None:
        return None
    groups = np.asarray(stratify)
    if groups.shape != (n,):
        raise ValueError(f"stratify must have one value per participant ({n}), got shape {groups.shape}")
    _, codes = np.unique(groups, return_inverse=True)
    return [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]


def resample_indices(
    n: int, n_resamples: int, rng: np.random.Generator, stratify: object = None
) -> Iterator[np.ndarray]:
    """Blocks ``[b, n]`` of row indices drawn with replacement; within each stratum when ``stratify`` is given.

    The block size depends on ``n`` only, so one seed gives the same resamples whether the statistic is
    vectorised or not. Within a stratified resample rows are grouped by stratum (order is irrelevant to any
    statistic of exchangeable rows).
    """
    strata = _strata(stratify, n)
    rows = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        b = min(rows, n_resamples - start)
        if strata is None:
            yield rng.integers(0, n, size=(b, n))
        else:
            yield np.concatenate([m[rng.integers(0, len(m), size=(b, len(m)))] for m in strata], axis=1)


def _evaluate(
    statistic: Callable[..., object], arrays: tuple[np.ndarray, ...], blocks: Iterator[np.ndarray], vectorised: bool
) -> np.ndarray:
    values = []
    for idx in blocks:
        if vectorised:
            values.append(np.asarray(statistic(*(a[idx] for a in arrays), axis=-1), dtype=float).reshape(len(idx)))
        else:
            values.append(np.array([float(statistic(*(a[row] for a in arrays))) for row in idx], dtype=float))
    return np.concatenate(values) if values else np.empty(0)


def _jackknife(statistic: Callable[..., object], arrays: tuple[np.ndarray, ...], vectorised: bool) -> np.ndarray:
    n = len(arrays[0])
    cols = np.arange(n - 1)

    def blocks() -> Iterator[np.ndarray]:
        rows = max(1, _BLOCK_ELEMENTS // max(n - 1, 1))
        for start in range(0, n, rows):
            left_out = np.arange(start, min(start + rows, n))[:, None]
            yield cols[None, :] + (cols[None, :] >= left_out)

    return _evaluate(statistic, arrays, blocks(), vectorised)


def _bca_levels(estimate: float, values: np.ndarray, jack: np.ndarray, alpha: float) -> tuple[float, float]:
    """Adjusted percentile levels of Efron (1987): bias correction z0 and jackknife acceleration a."""
    # the share of resamples below the estimate, counting ties as half, so a statistic that is constant on
    # the resamples gets z0 = 0 rather than an infinite correction
    share = (np.sum(values < estimate) + 0.5 * np.sum(values == estimate)) / len(values)
    if not 0 < share < 1:
        return float("nan"), float("nan")
    z0 = special.ndtri(share)
    jack = jack[np.isfinite(jack)]
    deviation = jack.mean() - jack if len(jack) else np.zeros(1)
    denominator = 6.0 * np.sum(deviation**2) ** 1.5
    accel = float(np.sum(deviation**3) / denominator) if denominator > 0 else 0.0
    levels = []
    for z_alpha in (special.ndtri(alpha), special.ndtri(1 - alpha)):
        shifted = z0 + z_alpha
        levels.append(float(special.ndtr(z0 + shifted / (1 - accel * shifted))))
    return levels[0], levels[1]


def bootstrap_ci(
    statistic: Callable[..., object],
    *arrays: object,
    n_resamples: int = 2000,
    seed: SeedLike,
    stratify: object = None,
    method: str = "percentile",
    confidence: float = 0.95,
    vectorised: bool | None = None,
) -> Interval:
    """A bootstrap confidence interval for ``statistic(*arrays)``.

    Every array holds one value per participant; a resample draws n participants with replacement and keeps
    their rows together (paired bootstrap), so a statistic of two models' predictions on the same
    participants (a difference of MAEs, of AUROCs) gets a paired interval.

    Args:
        statistic: maps the arrays to a float; with an ``axis`` keyword it is called on blocks ``[b, n]``
            with ``axis=-1`` and must return ``[b]`` (see the module docstring). It should return NaN, not raise,
            where a resample leaves it undefined (one class, a constant variable).
        *arrays: 1-D arrays of one length n.
        n_resamples: number of bootstrap resamples (each of size n).
        seed: an int for ``numpy.random.default_rng`` or a Generator; required so results are reproducible.
        stratify: labels (e.g. the outcome) to resample within, so each class keeps its size in every resample.
        method: ``percentile`` (the alpha/2 and 1-alpha/2 quantiles of the resampled statistics) or ``bca``
            (bias-corrected and accelerated, Efron 1987; acceleration by the leave-one-out jackknife, which
            costs n more evaluations of the statistic).
        confidence: nominal coverage, 0.95 for 2.5-97.5 percentiles.
        vectorised: force or forbid block evaluation; by default whether ``statistic`` takes ``axis``.

    Returns:
        The estimate on the data and the interval; ``n_failed`` counts resamples whose statistic was not
        finite (dropped). Low and high are NaN when no resample gave a finite value.
    """
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    data = _as_arrays(arrays)
    rng = as_generator(seed)
    vectorised = is_vectorised(statistic) if vectorised is None else vectorised
    if vectorised:
        estimate = float(np.asarray(statistic(*(a[None, :] for a in data), axis=-1), dtype=float).reshape(-1)[0])
    else:
        estimate = float(statistic(*data))

    values = _evaluate(statistic, data, resample_indices(len(data[0]), n_resamples, rng, stratify), vectorised)
    finite = np.isfinite(values)
    valid, n_failed = values[finite], int(np.sum(~finite))
    nan = float("nan")
    if len(valid) == 0:
        return Interval(estimate, nan, nan, 0, method, confidence, n_failed)

    alpha = (1 - confidence) / 2
    if method == "bca":
        if not np.isfinite(estimate):
            return Interval(estimate, nan, nan, len(valid), method, confidence, n_failed)
        lo_level, hi_level = _bca_levels(estimate, valid, _jackknife(statistic, data, vectorised), alpha)
        if np.isnan(lo_level):
            return Interval(estimate, nan, nan, len(valid), method, confidence, n_failed)
    else:
        lo_level, hi_level = alpha, 1 - alpha
    low, high = np.quantile(valid, [lo_level, hi_level])
    return Interval(estimate, float(low), float(high), len(valid), method, confidence, n_failed)


@dataclass(frozen=True)
class Band:
    """Pointwise percentile intervals of a curve (one statistic per grid point).

    Attributes:
        estimate, low, high: arrays [k] (NaN where no resample gave a finite value at that point).
        n_resamples: resamples whose statistic was finite, per point.
        confidence: the nominal pointwise coverage.
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_resamples: np.ndarray
    confidence: float = 0.95


def bootstrap_band(
    statistic: Callable[..., object],
    *arrays: object,
    n_resamples: int = 2000,
    seed: SeedLike,
    stratify: object = None,
    confidence: float = 0.95,
) -> Band:
    """Pointwise percentile bands of a curve-valued ``statistic(*arrays)``: the resamples of
    :func:`bootstrap_ci` (same rows, same seed semantics), with the statistic evaluated at every grid point
    of one resample at once.

    Args:
        statistic: takes blocks ``[b, n]`` with ``axis=-1`` and returns ``[b, k]`` (one value per grid point).
        *arrays, n_resamples, seed, stratify, confidence: as for :func:`bootstrap_ci`.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    data = _as_arrays(arrays)
    estimate = np.asarray(statistic(*(a[None, :] for a in data), axis=-1), dtype=float).reshape(-1)
    blocks = resample_indices(len(data[0]), n_resamples, as_generator(seed), stratify)
    values = np.concatenate([np.asarray(statistic(*(a[idx] for a in data), axis=-1), dtype=float)
                             .reshape(len(idx), estimate.size) for idx in blocks])
    finite = np.isfinite(values)
    alpha = (1 - confidence) / 2
    masked = np.where(finite, values, np.nan)
    with warnings.catch_warnings():  # a grid point without a finite resample: NaN bounds, said by n_resamples
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(masked, [alpha, 1 - alpha], axis=0)
    return Band(estimate, low, high, finite.sum(axis=0), confidence)
