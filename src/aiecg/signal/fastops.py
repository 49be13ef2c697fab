"""Faster drop-in equivalents of the numpy/scipy routines the per-record path calls many times.

Each function returns exactly (bit for bit, and in the same memory order, which decides how a later sum over the
result adds up) what the routine it replaces returns on the inputs we give it; only the set-up per call is cheaper:

* ``median``: ``np.median`` of a short 1-D array (RR intervals) by sorting it; over a short axis (the beats of
  one record, 3-30) up to ``NETWORK_MAX`` beats through Batcher's odd-even merge sorting network (Knuth, TAOCP
  vol. 3, 5.3.4), elementwise minima and maxima over whole [lead, window] slices, else by sorting a contiguous
  copy; ``np.median`` partitions along a strided axis, which costs 3-10x more for [lead, beat, window] stacks.
* ``nanmedian``: ``np.nanmedian`` (NaN = missing) the same way; for short axes numpy goes through masked arrays.
* ``sosfiltfilt``: ``scipy.signal.sosfiltfilt`` (odd padding, steady-state initial conditions) with the
  initial conditions (``sosfilt_zi``, a linear solve per section) computed once per filter design, and both
  passes run in place by scipy's own compiled cascade (``scipy.signal._sosfilt._sosfilt``, the kernel
  ``sosfilt`` calls after copying and moving axes; ``sosfilt`` itself where that private module is missing).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal as sps

try:  # scipy's compiled cascade: the kernel of sosfilt without its validation, axis moves and copies
    from scipy.signal._sosfilt import _sosfilt
except ImportError:  # a scipy that moved it: the public function gives the same numbers, a little slower
    _sosfilt = None

NETWORK_MAX = 24
"""The longest axis ``median`` sorts with a sorting network (its comparators grow as n log^2 n)."""


@lru_cache(maxsize=NETWORK_MAX + 1)
def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparator pairs (i, j), i < j, of Batcher's odd-even merge sort for ``n`` wires (the network for the next
    power of two, less the comparators that touch a wire >= n, which still sorts: those wires act as +inf)."""
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple((a, b) for a, b in pairs if b < n)


def _network_sorted(a: np.ndarray, axis: int) -> list[np.ndarray]:
    """The slices of ``a`` along ``axis``, sorted elementwise (a NaN anywhere in a slice reaches every output,
    since every output of a sorting network depends on every input and minimum/maximum propagate NaN)."""
    rows = [a[(slice(None),) * (axis % a.ndim) + (i,)] for i in range(a.shape[axis])]
    for i, j in sorting_network(len(rows)):
        rows[i], rows[j] = np.minimum(rows[i], rows[j]), np.maximum(rows[i], rows[j])
    return rows


def _sorted_last(a: np.ndarray, axis: int) -> np.ndarray:
    """A C-contiguous copy of ``a`` with ``axis`` moved last and sorted along it (NaNs sort last)."""
    s = np.moveaxis(np.asarray(a), axis, -1).copy()
    s.sort(axis=-1)
    return s


def _in_order_of(a: np.ndarray, axis: int, values: np.ndarray) -> np.ndarray:
    """``values`` (``a`` reduced over ``axis``) laid out in memory as numpy lays out a reduction of ``a`` (its
    remaining axes in ``a``'s memory order: a fancy-indexed stack gives a lead-fastest median, for example)."""
    out = np.empty_like(a[(slice(None),) * (axis % a.ndim) + (0,)], dtype=values.dtype)
    out[...] = values
    return out


SHORT_1D = 64
"""1-D arrays up to this long (RR intervals, per-lead values) are sorted whole: ``np.median``'s set-up costs more."""


def _median_1d(a: np.ndarray) -> np.floating:
    """``np.median`` of a short 1-D array: the same scalar type and value (integers averaged as float64)."""
    s = np.sort(a)
    if s.dtype.kind != "f":
        s = s.astype(np.float64)  # np.median averages integers in float64
    if np.isnan(s[-1]):
        return s.dtype.type(np.nan)
    h = s.size // 2
    return s[h] if s.size % 2 else (s[h - 1] + s[h]) / 2


def median(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.median(a, axis=axis)``: the same values, dtype and memory order (NaN where a slice holds a NaN). Short
    1-D arrays of any real dtype and floating-point stacks take the fast paths, anything else ``np.median``."""
    a = np.asarray(a)
    if a.ndim == 1:
        return _median_1d(a) if 0 < a.size <= SHORT_1D and a.dtype.kind in "fiu" else np.median(a)
    if a.dtype.kind != "f" or a.shape[axis] == 0:
        return np.median(a, axis=axis)
    m = a.shape[axis]
    h = m // 2
    if m <= NETWORK_MAX:
        rows = _network_sorted(a, axis)
        # np.median: the middle value, or the mean of the two middle values, (lo + hi) / 2 in the array's dtype
        mid = rows[h].copy() if m % 2 else np.true_divide(rows[h - 1] + rows[h], 2, dtype=a.dtype)
        return _in_order_of(a, axis, mid)
    s = _sorted_last(a, axis)
    if m % 2:
        out = s[..., h].copy()
    else:
        out = np.true_divide(s[..., h - 1] + s[..., h], 2, dtype=s.dtype)
    nan = np.isnan(s[..., -1])
    if nan.any():
        out[nan] = np.nan
    return _in_order_of(a, axis, out)


def nanmedian(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian(a, axis=axis)`` for a floating-point array, without its all-NaN warning (NaN there)."""
    s = _sorted_last(a, axis)
    count = s.shape[-1] - np.isnan(s).sum(axis=-1)
    h = count // 2
    odd = count % 2 == 1
    lo = np.take_along_axis(s, np.maximum(np.where(odd, h, h - 1), 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, np.minimum(h, s.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    # numpy (masked median): (lo + hi) / 2, with lo = hi for an odd count, so exact there
    out = np.true_divide(lo + hi, 2, dtype=s.dtype)
    out[count == 0] = np.nan
    return _in_order_of(np.asarray(a), axis, out)


@lru_cache(maxsize=64)
def _zi(sos_bytes: bytes, n_sections: int) -> np.ndarray:
    sos = np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6)
    return sps.sosfilt_zi(sos)


def sosfiltfilt(sos: np.ndarray, x: np.ndarray, padlen: int | None = None) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)`` for a float64 ``x`` [..., time] and a float64
    ``sos``: odd extension by ``padlen`` samples (default 3 x the number of taps, as scipy's), forward and
    backward ``sosfilt`` from the steady state scaled to the first sample; ``sosfilt_zi`` is cached per design."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    x = np.asarray(x)
    n_sections = sos.shape[0]
    if padlen is None:
        ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        padlen = 3 * ntaps
    if x.dtype != np.float64 or padlen >= x.shape[-1] or padlen < 0:
        return sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)  # scipy's own checks and messages
    zi = _zi(sos.tobytes(), n_sections)
    if padlen > 0:
        left = x[..., 1 : padlen + 1][..., ::-1]
        right = x[..., -padlen - 1 : -1][..., ::-1]
        ext = np.concatenate((2 * x[..., :1] - left, x, 2 * x[..., -1:] - right), axis=-1)
    else:
        ext = x
    y = _cascade(sos, zi, ext, own=padlen > 0)
    y = _cascade(sos, zi, y[..., ::-1])[..., ::-1]
    return y[..., padlen:-padlen] if padlen > 0 else y


def _cascade(sos: np.ndarray, zi: np.ndarray, x: np.ndarray, own: bool = False) -> np.ndarray:
    """``sosfilt(sos, x, axis=-1, zi=zi * x[..., :1])[0]`` for a float64 ``x`` [..., time], C-ordered; ``x`` is
    filtered in place when ``own`` (an array of the caller's, C-contiguous), else left as it is."""
    if _sosfilt is None:
        return sps.sosfilt(sos, x, axis=-1, zi=zi.reshape((zi.shape[0],) + (1,) * (x.ndim - 1) + (2,))
                           * x[..., :1])[0]
    y = x.reshape(-1, x.shape[-1])
    if not (own and y.flags.c_contiguous and np.shares_memory(y, x)):
        y = np.array(y, dtype=np.float64, order="C")  # a copy to filter in place
    state = np.ascontiguousarray((zi[:, None, :] * y[None, :, :1]).transpose(1, 0, 2))  # [signal, section, 2]
    _sosfilt(sos, y, state)
    return y.reshape(x.shape)
