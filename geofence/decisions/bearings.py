"""True bearings of the nearest boxes: grid bearing plus the meridian convergence of
EPSG:4547, for a batch (numpy, vectorized) and for one check (the same bits).
"""

from __future__ import annotations

import math

import numpy as np

from geofence.decisions._jit import _jit, _jit_inline

_RAD = math.pi / 180.0


_DEG = 180.0 / math.pi


def _true_bearings(
    lon: np.ndarray, lat: np.ndarray, dx: np.ndarray, dy: np.ndarray, pos: np.ndarray
) -> None:
    """Offsets to bearings, in place: ``dx[i, c]`` becomes the true bearing of the
    offset ``(dx, dy)`` (grid metres east and north) from the check at ``lon[i],
    lat[i]``, degrees clockwise from north in [0, 360); NaN where ``pos < 0``.

    The grid bearing plus the meridian convergence of EPSG:4547 (CM 114E),
    ``atan(tan(lon - 114) sin(lat))``, for the whole batch with numpy's vectorized
    ``arctan2``, ``tan`` and ``arctan``: ~20 ns a check instead of ~110 for the same
    functions called one value at a time in the kernel (measured). ``arctan2`` is not
    vectorized for NaN, hence the kernel's (0, 1) in empty places.
    :func:`_true_bearings_one` is the same arithmetic for one check, and the same bits.
    """
    np.arctan2(dx, dy, out=dx)
    _finish_bearings(dx, _convergence(lon, lat), pos)


def _convergence(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """``atan(tan(lon - 114) sin(lat))`` in radians; ``sin`` as ``tan / sqrt(1 + tan**2)``
    (numpy's float64 ``tan`` is vectorized, its ``sin`` is not)."""
    t = np.tan(lat * _RAD)
    gamma = t * t
    gamma += 1.0
    np.sqrt(gamma, out=gamma)
    np.divide(t, gamma, out=gamma)
    gamma *= np.tan((lon - 114.0) * _RAD)
    np.arctan(gamma, out=gamma)
    return gamma


def _bearing_degrees(grid: float, gamma: float) -> float:
    """Grid bearing plus convergence (radians) in degrees, in [0, 360)."""
    b = (grid + gamma) * _DEG
    return (b + 360.0 if b < 0.0 else b) + 0.0  # + 0.0: -0.0 -> 0.0


_bearing_degrees_jit = _jit_inline(_bearing_degrees)


@_jit
def _finish_bearings(b, gamma, pos):
    for i in range(b.shape[0]):
        for c in range(b.shape[1]):
            b[i, c] = _bearing_degrees_jit(b[i, c], gamma[i]) if pos[i, c] >= 0 else np.nan


def _convergence_one(lon: float, lat: float) -> float:
    """:func:`_convergence` of one point (numpy's functions on floats: the same bits)."""
    t = float(np.tan(lat * _RAD))
    sin_lat = t / math.sqrt(t * t + 1.0)
    return float(np.arctan(sin_lat * float(np.tan((lon - 114.0) * _RAD))))


def _true_bearings_one(lon: float, lat: float, dx: np.ndarray, dy: np.ndarray) -> list[float]:
    """:func:`_true_bearings` of one check's row of offsets, every place of it (the
    same numpy functions, on floats and one row: the same bits)."""
    gamma = _convergence_one(lon, lat)
    return [_bearing_degrees(g, gamma) for g in np.arctan2(dx, dy).tolist()]
