"""Fusing a check's trail of fixes into one position and sigma (:func:`_fuse`).

The fix model is in the package's docstring. The kernel allocates nothing (it is
compiled without numba's runtime, see ``_jit``): its medians use the small sorting and
selection networks here, on work arrays from :func:`_fuse_work`.
"""

from __future__ import annotations

import math

import numpy as np

from geofence.decisions._jit import _jit_borrowed, _jit_inline


@_jit_inline
def _sort_small(a, n):
    """Sort ``a[:n]`` (no NaN) in place, ascending: insertion sort up to 64 values,
    heapsort beyond; allocates nothing.

    Numba's ``ndarray.sort`` allocates a work list on every call (measured: a third
    of the batch kernel's time went to malloc and its quicksort) and needs numba's
    runtime, which :func:`_fuse` is compiled without; the arrays sorted here are
    trails of a few fixes (at most ``MAX_FIXES`` from the API).
    """
    if n > 64:
        for root in range(n // 2 - 1, -1, -1):
            _sift_down(a, root, n)
        for end in range(n - 1, 0, -1):
            a[0], a[end] = a[end], a[0]
            _sift_down(a, 0, end)
        return
    for j in range(1, n):
        v = a[j]
        i = j - 1
        while i >= 0 and a[i] > v:
            a[i + 1] = a[i]
            i -= 1
        a[i + 1] = v


@_jit_inline
def _sift_down(a, root, end):
    """Heapsort's step: move ``a[root]`` down the max-heap ``a[:end]``."""
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and a[child] < a[child + 1]:
            child += 1
        if not a[root] < a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root = child


@_jit_inline
def _sort8(t, n):
    """Sort ``t[:n]`` (n <= 8 <= len(t), no NaN) in place; ``t[n:8]`` becomes inf.

    A sorting network (Batcher's odd-even merge sort, 19 compare-exchanges) of
    min/max, no branch to mispredict: the medians of a 3-8 fix trail took ~half of
    :func:`_fuse`'s time in the insertion sort's mispredicted branches.
    """
    a0 = t[0] if n > 0 else np.inf
    a1 = t[1] if n > 1 else np.inf
    a2 = t[2] if n > 2 else np.inf
    a3 = t[3] if n > 3 else np.inf
    a4 = t[4] if n > 4 else np.inf
    a5 = t[5] if n > 5 else np.inf
    a6 = t[6] if n > 6 else np.inf
    a7 = t[7] if n > 7 else np.inf
    a0, a1 = min(a0, a1), max(a0, a1)
    a2, a3 = min(a2, a3), max(a2, a3)
    a4, a5 = min(a4, a5), max(a4, a5)
    a6, a7 = min(a6, a7), max(a6, a7)
    a0, a2 = min(a0, a2), max(a0, a2)
    a1, a3 = min(a1, a3), max(a1, a3)
    a4, a6 = min(a4, a6), max(a4, a6)
    a5, a7 = min(a5, a7), max(a5, a7)
    a1, a2 = min(a1, a2), max(a1, a2)
    a5, a6 = min(a5, a6), max(a5, a6)
    a0, a4 = min(a0, a4), max(a0, a4)
    a1, a5 = min(a1, a5), max(a1, a5)
    a2, a6 = min(a2, a6), max(a2, a6)
    a3, a7 = min(a3, a7), max(a3, a7)
    a2, a4 = min(a2, a4), max(a2, a4)
    a3, a5 = min(a3, a5), max(a3, a5)
    a1, a2 = min(a1, a2), max(a1, a2)
    a3, a4 = min(a3, a4), max(a3, a4)
    a5, a6 = min(a5, a6), max(a5, a6)
    t[0] = a0
    t[1] = a1
    t[2] = a2
    t[3] = a3
    t[4] = a4
    t[5] = a5
    t[6] = a6
    t[7] = a7


@_jit_inline
def _median5(a0, a1, a2, a3, a4):
    """The median of five values (no NaN): a selection network of min/max, the
    median's value without sorting the other four."""
    a0, a1 = min(a0, a1), max(a0, a1)
    a3, a4 = min(a3, a4), max(a3, a4)
    a3 = max(a0, a3)  # not the smallest of the five
    a1 = min(a1, a4)  # nor the largest
    a1, a2 = min(a1, a2), max(a1, a2)
    return max(a1, min(a2, a3))


@_jit_inline
def _masked_median(values, keep, n, tmp):
    """Median of ``values[:n]`` where ``keep``; ``tmp`` is a work array of n.

    The same value as ``np.median`` (which copies its input on every call): the
    middle value, or the mean ``(a + b) / 2`` of the two middle ones; NaN for no
    value or any NaN. With ``tmp`` of 8 or more, up to 8 values are sorted by
    :func:`_sort8`. Allocates nothing (see ``_jit_borrowed``).
    """
    k = 0
    nan = False
    for j in range(n):
        if keep[j]:
            v = values[j]
            tmp[k] = v
            nan = nan or v != v
            k += 1
    if k == 0 or nan:
        return np.nan
    if k == 5:  # the common trail: 10 min/max instead of sorting 8 slots (~5 ns a check)
        return _median5(tmp[0], tmp[1], tmp[2], tmp[3], tmp[4])
    if k <= 8 and tmp.shape[0] >= 8:
        _sort8(tmp, k)
    else:
        _sort_small(tmp, k)
    half = k >> 1
    if k & 1 == 0:
        return (tmp[half - 1] + tmp[half]) / 2
    return tmp[half]


def _fuse_work(m: int) -> tuple[np.ndarray, ...]:
    """The work arrays of :func:`_fuse` for trails of up to ``m`` fixes."""
    return (
        np.empty(m),
        np.empty(m),
        np.empty(m),
        np.empty(m, np.bool_),
        np.empty(m, np.bool_),
        np.empty(max(m, 8)),  # _sort8 sorts in 8 slots
    )


@_jit_borrowed
def _fuse(lon, lat, acc, at, nfix, ended_at, default_acc, max_age, max_skew, chi2, rho, out, work):
    """Fuse each check's trail: out columns lon, lat, sigma, stale (0/1), spread (m).

    ``work``: :func:`_fuse_work` of at least ``lon.shape[1]`` fixes.
    """
    w, dx, dy, keep, usable, tmp = work
    for i in range(lon.shape[0]):
        n = nfix[i]
        lon0 = lon[i, n - 1]
        lat0 = lat[i, n - 1]
        kx = 111_320.0 * math.cos(math.radians(lat0))
        ky = 110_574.0
        fresh = 0
        for j in range(n):
            a = acc[i, j]
            if not (a == a):
                a = default_acc
            s = a / 1.5095921854516636
            w[j] = 1.0 / (s * s)
            dx[j] = (lon[i, j] - lon0) * kx
            dy[j] = (lat[i, j] - lat0) * ky
            t = at[i, j]
            ok = not (t == t) or (ended_at[i] - max_age <= t <= ended_at[i] + max_skew)
            keep[j] = ok
            if ok:
                fresh += 1
        stale = fresh == 0
        if stale:
            for j in range(n):
                keep[j] = True
        # coordinate-wise median of the usable fixes
        ex = _masked_median(dx, keep, n, tmp)
        ey = _masked_median(dy, keep, n, tmp)
        # Two reweighting passes: the fixes within chi2 of the estimate (their squared
        # distance weighted) and their weighted mean. The first pass, from the median,
        # also finds the farthest fix (the square root of the largest square, not
        # math.hypot, ~25 ns a check; offsets are metres, far from overflow); the
        # second sums the kept fixes' sigma terms, as the final loop did (bit for bit:
        # the same terms in the same order), unless a pass fell back to its nearest fix.
        far2 = 0.0
        refold = False
        for p in range(2):
            sw = 0.0
            sx = 0.0
            sy = 0.0
            sinv = 0.0
            for j in range(n):
                q = (dx[j] - ex) ** 2 + (dy[j] - ey) ** 2
                if p == 0:
                    far2 = max(far2, q)
                    usable[j] = keep[j]
                if usable[j]:
                    keep[j] = q * w[j] <= chi2
                    if keep[j]:
                        sw += w[j]
                        sx += w[j] * dx[j]
                        sy += w[j] * dy[j]
                        if p == 1:
                            sinv += math.sqrt(w[j])
            if sw == 0.0:  # rare: none kept; the nearest usable fix alone
                refold = True
                best_j = -1
                best_d = np.inf
                for j in range(n):
                    if usable[j]:
                        d2 = ((dx[j] - ex) ** 2 + (dy[j] - ey) ** 2) * w[j]
                        if d2 < best_d:
                            best_d = d2
                            best_j = j
                keep[best_j] = True
                sw = w[best_j]
                sx = w[best_j] * dx[best_j]
                sy = w[best_j] * dy[best_j]
            ex = sx / sw
            ey = sy / sw
        spread = math.sqrt(far2)
        if refold:
            sw = 0.0
            sinv = 0.0
            for j in range(n):
                if keep[j]:
                    sw += w[j]
                    sinv += math.sqrt(w[j])
        out[i, 0] = lon0 + ex / kx
        out[i, 1] = lat0 + ey / ky
        out[i, 2] = math.sqrt((1.0 - rho) / sw + rho * (sinv / sw) ** 2)
        out[i, 3] = 1.0 if stale else 0.0
        out[i, 4] = spread
