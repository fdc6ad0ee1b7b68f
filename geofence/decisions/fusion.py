"""Fusing a check's trail of fixes into one position and sigma (:func:`_fuse`).

The error model is in the package's docstring; each fix's class (operator, device
class, quality) is looked up in the policy's calibration table
(:mod:`geofence.calibration`). The kernel allocates nothing (it is
compiled without numba's runtime, see ``_jit``): its medians use the small sorting and
selection networks here, on work arrays from :func:`_fuse_work`.
"""

from __future__ import annotations

import math

import numpy as np

from geofence.decisions._jit import _jit, _jit_borrowed, _jit_inline


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


@_jit
def _fuse_work(m):
    """The work arrays of :func:`_fuse` for trails of up to ``m`` fixes."""
    return (
        np.empty(m),  # information weight 1 / sigma^2 of each fix's noise
        np.empty(m),  # east offset from the last fix (m)
        np.empty(m),  # north offset
        np.empty(m, np.bool_),  # kept: fresh and not a repeat
        np.empty(m, np.bool_),  # a repeat of an earlier fix
        np.empty(max(m, 8)),  # _sort8 sorts in 8 slots
        np.empty(m),  # the shared bias's variance of each fix's class
        np.empty(m),  # outlier share of each fix's class
        np.empty(m),  # 1.0 where the fix's class may settle a narrow box
        np.empty(m),  # squared residuals in the fixes' own variances
    )


_IRLS_PASSES = 2  # Student-t reweighting passes from the median and its robust scale
_SCATTER_PRIOR_DOF = 2.0  # pseudo degrees of freedom of the reported scale (see _fuse)
_CHI2_2_MEDIAN = 2.0 * math.log(2.0)  # the median of a chi-square of 2 degrees of freedom
_MIN_SIGMA_M = 1e-3  # no fix is trusted beyond a millimetre (accuracy_m may be tiny)


@_jit_inline
def _t_weight(r2, nu):
    """A fix's Student-t weight at ``r2`` squared sigmas from the estimate, capped at 1:
    ``min(1, (nu + 2) / (nu + r2))``, which is 1 exactly when ``r2 <= 2`` (most fixes:
    no division)."""
    if r2 <= 2.0:
        return 1.0
    return (nu + 2.0) / (nu + r2)


@_jit_inline
def _binomial_tail(n, e, h):
    """P(X >= h) for X ~ Binomial(n, e), 0 <= e < 1, summed from the pmf's recursion."""
    if e <= 0.0:
        return 0.0
    pk = 1.0
    for _ in range(n):  # (1 - e) ** n without pow: n is a trail's few fixes
        pk *= 1.0 - e
    ratio = e / (1.0 - e)
    tail = 0.0
    for k in range(n + 1):
        if k >= h:
            tail += pk
        pk *= (n - k) / (k + 1.0) * ratio
    return min(tail, 1.0)


@_jit_borrowed
def _fuse(
    lon, lat, acc, at, nfix, ended_at, qual, dcls, lut, ctab, default_acc, max_age, max_skew,
    nu, out, work,
):  # fmt: skip
    """Fuse each check's trail (see the module docstring): out columns lon, lat, sigma
    (per axis, shared bias included), stale (0/1), spread (m), outlier share of the
    fused position, narrow (1.0: the trail may settle a narrow box).

    ``qual`` (n, m) quality codes, ``dcls`` (n,) device-class codes (-1: none),
    ``lut`` (classes + 1, qualities) rows of ``ctab`` (rows, 5): see
    :meth:`geofence.calibration.Calibration.lookup`. ``work``: :func:`_fuse_work` of at
    least ``lon.shape[1]`` fixes.
    """
    w, dx, dy, keep, dup, tmp, b2, eps, nar, r2 = work
    nd = lut.shape[0] - 1
    for i in range(lon.shape[0]):
        n = nfix[i]
        lon0 = lon[i, n - 1]
        lat0 = lat[i, n - 1]
        kx = 111_320.0 * math.cos(math.radians(lat0))
        ky = 110_574.0
        c = dcls[i]
        if c < 0:
            c = nd
        fresh = 0
        for j in range(n):
            row = lut[c, qual[i, j]]
            a = acc[i, j]
            if not (a == a):
                a = default_acc
            s = max(ctab[row, 0] * a, ctab[row, 1]) / 1.5095921854516636
            s = max(s, _MIN_SIGMA_M)
            w[j] = 1.0 / (s * s)
            b2[j] = ctab[row, 2] * ctab[row, 2]
            eps[j] = ctab[row, 3]
            nar[j] = ctab[row, 4]
            dx[j] = (lon[i, j] - lon0) * kx
            dy[j] = (lat[i, j] - lat0) * ky
            # a cached fix sent again (the same lon and lat) is one fix, counted once
            rep = False
            for k in range(j):
                if lon[i, k] == lon[i, j] and lat[i, k] == lat[i, j]:
                    rep = True
                    break
            dup[j] = rep
            t = at[i, j]
            ok = not rep and (
                not (t == t) or (ended_at[i] - max_age <= t <= ended_at[i] + max_skew)
            )
            keep[j] = ok
            if ok:
                fresh += 1
        stale = fresh == 0
        if stale:
            for j in range(n):
                keep[j] = not dup[j]
        # From the coordinate-wise median of the kept fixes, Student-t reweighting with
        # a scale c2 on the claimed variances, re-estimated each pass (the EM of a t
        # likelihood with an unknown scale): a trail scattered wider than its claims
        # allow raises c2, which widens the estimate and lets the wider fixes back in;
        # c2 is shrunk toward 1 by _SCATTER_PRIOR_DOF pseudo degrees of freedom of the
        # claims and never below 1 (no trail is trusted beyond its claims).
        nk = 0
        for j in range(n):
            if keep[j]:
                nk += 1
        ex = _masked_median(dx, keep, n, tmp)
        ey = _masked_median(dy, keep, n, tmp)
        far2 = 0.0
        c2 = 1.0
        if nk >= 3:  # start from a robust scale: the median squared residual over chi2(2)'s
            for j in range(n):
                r2[j] = ((dx[j] - ex) ** 2 + (dy[j] - ey) ** 2) * w[j]
            c2 = max(1.0, _masked_median(r2, keep, n, tmp) / _CHI2_2_MEDIAN)
        sw = 0.0
        for p in range(_IRLS_PASSES):
            sw = 0.0
            sx = 0.0
            sy = 0.0
            chi = 0.0
            ic2 = 1.0 / c2
            for j in range(n):
                if keep[j]:
                    q = (dx[j] - ex) ** 2 + (dy[j] - ey) ** 2
                    if p == 0:
                        far2 = max(far2, q)
                    ww = w[j] * _t_weight(q * w[j] * ic2, nu)
                    sw += ww
                    sx += ww * dx[j]
                    sy += ww * dy[j]
                    chi += ww * q
            ex = sx / sw
            ey = sy / sw
            if nk >= 2:
                prior = 2.0 * _SCATTER_PRIOR_DOF
                c2 = max(1.0, (chi + prior) / (2.0 * (nk - 1) + prior))
        # the classes' bias, outlier share and narrow-box licence, weighted like their fix
        sw = 0.0
        sb = 0.0
        se = 0.0
        sn = 0.0
        ic2 = 1.0 / c2
        for j in range(n):
            if keep[j]:
                q = (dx[j] - ex) ** 2 + (dy[j] - ey) ** 2
                ww = w[j] * _t_weight(q * w[j] * ic2, nu)
                sw += ww
                sb += ww * b2[j]
                sn += ww * nar[j]
                se += eps[j]
        noise = c2 / sw
        out[i, 0] = lon0 + ex / kx
        out[i, 1] = lat0 + ey / ky
        out[i, 2] = math.sqrt(sb / sw + noise)
        out[i, 3] = 1.0 if stale else 0.0
        out[i, 4] = math.sqrt(far2)
        # the fused position is an outlier when at least half the kept fixes are
        out[i, 5] = _binomial_tail(nk, se / nk, (nk + 1) // 2)
        out[i, 6] = 1.0 if sn >= 0.5 * sw else 0.0
