"""The order in which a batch is decided (Z-order of the fused positions), and the
gathers and scatters of the kernel's inputs and outputs into it and back.
"""

from __future__ import annotations

import math

import numpy as np

from geofence import _kernels
from geofence.decisions._jit import _jit, _jit_inline

_SPATIAL_ORDER_MIN = 64  # smaller batches are decided in their own order


_MORTON_CELL_M = 64.0


@_jit_inline
def _spread_bits(v):
    """The low 31 bits of ``v`` moved to the even bit positions (bit k to bit 2k)."""
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


@_jit
def _morton_keys(x, y, cell, out):
    """Z-order keys of points on a grid of ``cell`` metres (non-finite points last).

    Cell columns and rows are clipped to 31 bits; a non-finite point's key is one
    more than the largest finite key (so that the radix sort has few digits).
    """
    x0 = np.inf
    y0 = np.inf
    for i in range(x.shape[0]):
        if math.isfinite(x[i]) and math.isfinite(y[i]):
            x0 = min(x0, x[i])
            y0 = min(y0, y[i])
    kmax = np.int64(-1)
    for i in range(x.shape[0]):
        if not (math.isfinite(x[i]) and math.isfinite(y[i])):
            out[i] = -1
            continue
        a = np.int64(min((x[i] - x0) / cell, 2147483647.0))
        b = np.int64(min((y[i] - y0) / cell, 2147483647.0))
        key = _spread_bits(a) | (_spread_bits(b) << 1)
        out[i] = key
        kmax = max(kmax, key)
    for i in range(x.shape[0]):
        if out[i] < 0:
            out[i] = kmax + 1


@_jit
def _radix_order(keys):
    """The stable ascending order of non-negative ``keys`` (``np.argsort(keys,
    kind="stable")``): a least-significant-digit radix sort, 11 bits a pass.

    ~5x faster than NumPy's argsort here: city-wide keys have ~20 bits, two passes.
    """
    n = keys.shape[0]
    kmax = np.int64(0)
    for i in range(n):
        kmax = max(kmax, keys[i])
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    count = np.empty(2049, np.int64)
    shift = 0
    while shift == 0 or (shift < 63 and (kmax >> shift) > 0):
        count[:] = 0
        for i in range(n):
            count[((keys[order[i]] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            count[d + 1] += count[d]
        for i in range(n):
            o = order[i]
            d = (keys[o] >> shift) & 2047
            tmp[count[d]] = o
            count[d] += 1
        order, tmp = tmp, order
        shift += 11
    return order


def _spatial_order(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The order in which the batch kernel decides the checks: along a Z-order curve.

    Each check's decision depends on that check alone; the order only decides what
    is still in the CPU cache: the zones near the previous check (random trips
    across a city miss it on nearly every zone read) and, once the inputs are
    gathered in that order, the inputs and outputs themselves (measured: visiting in
    this order ~1.3x, gathering as well ~1.25x more). None for small batches.
    """
    n = x.shape[0]
    if n < _SPATIAL_ORDER_MIN:
        return None
    keys = np.empty(n, np.int64)
    _morton_keys(x, y, _MORTON_CELL_M, keys)
    return _radix_order(keys)


# How many checks ahead the permutations below prefetch the rows they will touch: the
# checks' rows in Z-order are scattered over arrays of several MB, nearly every access
# a cache miss (16 and 32 measured alike, 8 less).
_PERMUTE_AHEAD = 16


@_jit
def _gather_inputs(order, fused, x, y, ended_at, heading, beacon, ins):
    """The kernel's inputs in ``order``: ``ins`` = (lon, lat, x, y, sigma, stale,
    outlier share, narrow, ended_at, heading, beacon zone), ``fused`` as :func:`_fuse`
    wrote it."""
    lon_o, lat_o, x_o, y_o, s_o, stale_o, e_o, n_o, t_o, h_o, b_o = ins
    n = order.shape[0]
    for j in range(n):
        if j + _PERMUTE_AHEAD < n:  # measured: ~10 ns a check less (of ~33)
            a = order[j + _PERMUTE_AHEAD]
            _kernels._prefetch(fused, a * fused.shape[1])
            _kernels._prefetch(x, a)
            _kernels._prefetch(y, a)
            _kernels._prefetch(ended_at, a)
            _kernels._prefetch(heading, a)
            _kernels._prefetch(beacon, a)
        i = order[j]
        lon_o[j] = fused[i, 0]
        lat_o[j] = fused[i, 1]
        s_o[j] = fused[i, 2]
        stale_o[j] = fused[i, 3] > 0
        e_o[j] = fused[i, 5]
        n_o[j] = fused[i, 6] > 0
        x_o[j] = x[i]
        y_o[j] = y[i]
        t_o[j] = ended_at[i]
        h_o[j] = heading[i]
        b_o[j] = beacon[i]


@_jit_inline
def _scatter(order, src, dst):
    """``dst[order] = src``."""
    n = order.shape[0]
    for j in range(n):
        if j + _PERMUTE_AHEAD < n:
            _kernels._prefetch(dst, order[j + _PERMUTE_AHEAD])
        dst[order[j]] = src[j]


@_jit_inline
def _scatter_rows(order, src, dst):
    """``dst[order] = src`` for 2-D (C-ordered) ``src`` and ``dst``."""
    n = order.shape[0]
    k = src.shape[1]
    for j in range(n):
        if j + _PERMUTE_AHEAD < n:
            _kernels._prefetch(dst, order[j + _PERMUTE_AHEAD] * k)
        i = order[j]
        for c in range(k):
            dst[i, c] = src[j, c]


@_jit
def _scatter_outputs(order, src, dst):
    """``dst[k][order] = src[k]`` for the kernel's eight outputs, one output at a time.

    One pass per output: a pass over all eight wrote to ~15 MB of rows in random
    order, more pages than the TLB holds (measured: 54 ns a check, 29 one output at a
    time, 25 with the prefetch).
    """
    s0, s1, s2, s3, s4, s5, s6, s7 = src
    d0, d1, d2, d3, d4, d5, d6, d7 = dst
    _scatter(order, s0, d0)
    _scatter(order, s1, d1)
    _scatter(order, s2, d2)
    _scatter(order, s3, d3)
    _scatter(order, s4, d4)
    _scatter_rows(order, s5, d5)
    _scatter_rows(order, s6, d6)
    _scatter_rows(order, s7, d7)
