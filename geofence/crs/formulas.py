"""The GCJ-02 and BD-09 formulas: the kernels every conversion of
:mod:`geofence.crs.datum` runs on the points inside China.

Each conversion has a vector kernel (NumPy, 1-D float64 arrays, every point inside
China) and a scalar kernel (``math``, one point); ``_convert`` in
:mod:`~geofence.crs.datum` applies the out-of-China rule, the chunking and the small-input
shortcut around them.

The GCJ-02 and BD-09 formulas are the public reverse-engineered ones (Krasovsky
ellipsoid ``a = 6378245.0``, ``ee = 0.00669342162296594323``; BD-09 with ``x_pi = pi *
3000 / 180`` and offsets ``0.0065`` / ``0.006``), and they reproduce the published
reference pairs of the *eviltransform* and *coordtransform* projects to within 1e-13
degrees. The obfuscations are applied only to points inside China's rough bounding box
(`geofence.crs.out_of_china`); points outside it are returned unchanged by every GCJ-02
and BD-09 conversion, as the reference implementations do. The test is applied to the
coordinates given to a conversion (for composite conversions such as `bd09_to_wgs84`, to
its input).

The forward conversions are closed formulas. GCJ-02 -> WGS-84 and BD-09 -> GCJ-02 have
no closed inverse; they are solved by fixed-point iteration ``w <- w - (f(w) - g)``
until the remaining error, bounded through the map's contraction constant, is below
1e-9 degrees (about 0.1 mm), with at most ``_MAX_ITER`` iterations. (The widespread
one-step ``2 * g - f(g)`` inverse is off by 1-2 m; the closed-form BD-09 inverse in
the reference implementations by up to 0.2 m; both are only starting points here.)

GCJ-02's thirteen trigonometric calls per point are reduced to two ``sin`` calls with
exact multiple-angle identities (``_harmonics``; agreeing with the direct formula to
~1e-14 degrees).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, TypeAlias

import numpy as np

from geofence.crs.names import FloatArray, _Pair, _ScalarPair

# GCJ-02: Krasovsky 1940 ellipsoid, as in every public implementation.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323
_LAT_SCALE: Final = 180.0 / (_A * (1.0 - _EE) * math.pi)  # metres -> degrees, times m**1.5
_LON_SCALE: Final = 180.0 / (_A * math.pi)  # metres -> degrees, times sqrt(m) / cos(lat)

# BD-09.
_X_PI: Final = math.pi * 3000.0 / 180.0
_BD_DLON: Final = 0.0065
_BD_DLAT: Final = 0.006

# Inverse iterations. With e = w - w* the error and r = f(w) - g the residual,
# r = (I + D) e with ||D||_inf <= L, so after the update w <- w - r the error is at
# most L / (1 - L) * |r|. Measured sup ||D||_inf over the China box: 0.0074 for GCJ-02
# (except within ~1e-3 deg of lon 105, where a sqrt(|lon - 105|) term is not Lipschitz
# but contributes < 1e-10 deg), 0.022 for BD-09; the bounds below have margin.
_TOL_DEG: Final = 1e-9  # ~0.1 mm
_GCJ_CONTRACTION: Final = 0.01
_BD_CONTRACTION: Final = 0.03
_GCJ_STOP: Final = _TOL_DEG * (1.0 - _GCJ_CONTRACTION) / _GCJ_CONTRACTION
_BD_STOP: Final = _TOL_DEG * (1.0 - _BD_CONTRACTION) / _BD_CONTRACTION
_MAX_ITER: Final = 10

_2_3: Final = 2.0 / 3.0
_SIN_35: Final = math.sin(math.radians(35.0))
_COS_35: Final = math.cos(math.radians(35.0))


def _harmonics(s: FloatArray, c: FloatArray, *, full: bool) -> tuple[FloatArray, ...]:
    """Sines of multiples of t = v*pi/60 from ``s, c = sin(t), cos(t)``.

    Returns sin(v*pi/30), sin(v*pi/12), sin(v*pi/3), sin(v*pi) and, if `full`,
    sin(2v*pi) and sin(6v*pi): exact multiple-angle identities for 2t, 5t, 20t = 4*5t,
    60t = 3*20t, 120t and 360t replace six transcendental calls. Rounding errors grow
    at most with the multiple (< 1e-13 in a unit sine, < 1e-11 m after the ~13 m
    amplitude of the largest term).
    """
    c2 = c * c
    c4 = c2 * c2
    s2t = 2.0 * s * c  # sin(v*pi/30)
    s5 = s * (16.0 * c4 - 12.0 * c2 + 1.0)  # sin(v*pi/12)
    c5 = c * (16.0 * c4 - 20.0 * c2 + 5.0)
    s10 = 2.0 * s5 * c5
    c10 = 1.0 - 2.0 * s5 * s5
    s20 = 2.0 * s10 * c10  # sin(v*pi/3)
    s60 = s20 * (3.0 - 4.0 * s20 * s20)  # sin(v*pi)
    if not full:
        return s2t, s5, s20, s60
    c20 = 1.0 - 2.0 * s10 * s10
    c60 = c20 * (4.0 * c20 * c20 - 3.0)
    s120 = 2.0 * s60 * c60  # sin(2v*pi)
    s360 = s120 * (3.0 - 4.0 * s120 * s120)  # sin(6v*pi)
    return s2t, s5, s20, s60, s120, s360


def _gcj_offset(lon: FloatArray, lat: FloatArray) -> _Pair:
    """GCJ-02 minus WGS-84, in degrees, at WGS-84 points inside the China box.

    Two ``sin`` calls per point instead of the reference's twelve ``sin`` and one
    ``cos``: every angle is a multiple of x*pi/120 or y*pi/180 (x = lon - 105,
    y = lat - 35, plus a constant 35 deg for the latitude itself). Inside the box
    (and the iterations' ~0.01 deg around it) those base angles are below 0.87 rad,
    so their cosines are ``sqrt(1 - sin**2)`` without loss of precision.
    """
    x = lon - 105.0
    y = lat - 35.0
    # x: half-angle h = x*pi/120 -> t = x*pi/60.
    sh = np.sin(x * (math.pi / 120.0))
    sh2 = sh * sh
    ch = np.sqrt(1.0 - sh2)
    x30, x12, x3, x1, x2v, x6v = _harmonics(2.0 * sh * ch, 1.0 - 2.0 * sh2, full=True)
    # y: third-angle u = y*pi/180 -> t = y*pi/60; lat*pi/180 = u + 35 deg.
    su = np.sin(y * (math.pi / 180.0))
    su2 = su * su
    cu = np.sqrt(1.0 - su2)
    y30, y12, y3, y1 = _harmonics(su * (3.0 - 4.0 * su2), cu * (1.0 - 4.0 * su2), full=False)
    common = (x6v + x2v) * (20.0 * _2_3)
    ax = np.sqrt(np.abs(x))
    xy = 0.1 * x * y
    # Offsets in metres on the Krasovsky ellipsoid (the reference's transformLat/Lng).
    dlat = (
        common
        + (20.0 * _2_3) * y1
        + (40.0 * _2_3) * y3
        + (160.0 * _2_3) * y12
        + (320.0 * _2_3) * y30
        + (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + xy + 0.2 * ax)
    )
    dlon = (
        common
        + (20.0 * _2_3) * x1
        + (40.0 * _2_3) * x3
        + (150.0 * _2_3) * x12
        + (300.0 * _2_3) * x30
        + (300.0 + x + 2.0 * y + 0.1 * x * x + xy + 0.1 * ax)
    )
    s = su * _COS_35 + cu * _SIN_35  # sin(lat)
    s2 = s * s
    magic = 1.0 - _EE * s2
    sqrt_magic = np.sqrt(magic)
    dlat *= magic * sqrt_magic * _LAT_SCALE
    dlon *= sqrt_magic / np.sqrt(1.0 - s2) * _LON_SCALE  # cos(lat) > 0.5 in the box
    return dlon, dlat


def _gcj_offset_scalar(lon: float, lat: float) -> _ScalarPair:
    x = lon - 105.0
    y = lat - 35.0
    xp = x * math.pi
    yp = y * math.pi
    ax = math.sqrt(abs(x))
    common = 20.0 * math.sin(6.0 * xp) + 20.0 * math.sin(2.0 * xp)
    dlat = common + 20.0 * math.sin(yp) + 40.0 * math.sin(yp / 3.0)
    dlat += 160.0 * math.sin(yp / 12.0) + 320.0 * math.sin(yp / 30.0)
    dlon = common + 20.0 * math.sin(xp) + 40.0 * math.sin(xp / 3.0)
    dlon += 150.0 * math.sin(xp / 12.0) + 300.0 * math.sin(xp / 30.0)
    dlat = dlat * _2_3 + (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * ax)
    dlon = dlon * _2_3 + (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * ax)
    rad = lat * (math.pi / 180.0)
    s = math.sin(rad)
    magic = 1.0 - _EE * s * s
    sqrt_magic = math.sqrt(magic)
    return (
        dlon * sqrt_magic / math.cos(rad) * _LON_SCALE,
        dlat * magic * sqrt_magic * _LAT_SCALE,
    )


def _wgs_to_gcj(lon: FloatArray, lat: FloatArray) -> _Pair:
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def _wgs_to_gcj_scalar(lon: float, lat: float) -> _ScalarPair:
    dlon, dlat = _gcj_offset_scalar(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_wgs(lon: FloatArray, lat: FloatArray) -> _Pair:
    dlon, dlat = _gcj_offset(lon, lat)
    wlon = lon - dlon  # the classic one-step inverse: 1-2 m off
    wlat = lat - dlat
    for _ in range(_MAX_ITER):
        dlon, dlat = _gcj_offset(wlon, wlat)
        rlon = wlon + dlon - lon
        rlat = wlat + dlat - lat
        wlon -= rlon
        wlat -= rlat
        # NaN residuals compare false: they count as converged.
        if not ((np.abs(rlon) >= _GCJ_STOP).any() or (np.abs(rlat) >= _GCJ_STOP).any()):
            break
    return wlon, wlat


def _gcj_to_wgs_scalar(lon: float, lat: float) -> _ScalarPair:
    dlon, dlat = _gcj_offset_scalar(lon, lat)
    wlon = lon - dlon
    wlat = lat - dlat
    for _ in range(_MAX_ITER):
        dlon, dlat = _gcj_offset_scalar(wlon, wlat)
        rlon = wlon + dlon - lon
        rlat = wlat + dlat - lat
        wlon -= rlon
        wlat -= rlat
        if not (abs(rlon) >= _GCJ_STOP or abs(rlat) >= _GCJ_STOP):
            break
    return wlon, wlat


def _gcj_to_bd(lon: FloatArray, lat: FloatArray) -> _Pair:
    # z = r + 2e-5 sin(lat x_pi), theta = atan2(lat, lon) + 3e-6 cos(lon x_pi), BD = z e^(i theta)
    # + offsets. Rotating (lon, lat) by delta = 3e-6 cos(lon x_pi) and scaling by z / r
    # is the same without atan2/hypot/cos/sin; cos and sin of |delta| <= 3e-6 by Taylor
    # polynomials exact in double precision.
    r = np.sqrt(lon * lon + lat * lat)
    k = 1.0 + 0.00002 * np.sin(lat * _X_PI) / r
    d = 0.000003 * np.cos(lon * _X_PI)
    d2 = d * d
    cd = k * (1.0 - 0.5 * d2)
    sd = k * d * (1.0 - d2 / 6.0)
    return lon * cd - lat * sd + _BD_DLON, lat * cd + lon * sd + _BD_DLAT


def _gcj_to_bd_scalar(lon: float, lat: float) -> _ScalarPair:
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + _BD_DLON, z * math.sin(theta) + _BD_DLAT


def _bd_to_gcj(lon: FloatArray, lat: FloatArray) -> _Pair:
    # Start from the reference closed form (<= 0.2 m off), rewritten like `_gcj_to_bd`.
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    r = np.sqrt(x * x + y * y)
    k = 1.0 - 0.00002 * np.sin(y * _X_PI) / r
    d = 0.000003 * np.cos(x * _X_PI)
    d2 = d * d
    cd = k * (1.0 - 0.5 * d2)
    sd = k * d * (1.0 - d2 / 6.0)
    glon = x * cd + y * sd
    glat = y * cd - x * sd
    for _ in range(_MAX_ITER):
        blon, blat = _gcj_to_bd(glon, glat)
        rlon = blon - lon
        rlat = blat - lat
        glon -= rlon
        glat -= rlat
        if not ((np.abs(rlon) >= _BD_STOP).any() or (np.abs(rlat) >= _BD_STOP).any()):
            break
    return glon, glat


def _bd_to_gcj_scalar(lon: float, lat: float) -> _ScalarPair:
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    glon = z * math.cos(theta)
    glat = z * math.sin(theta)
    for _ in range(_MAX_ITER):
        blon, blat = _gcj_to_bd_scalar(glon, glat)
        rlon = blon - lon
        rlat = blat - lat
        glon -= rlon
        glat -= rlat
        if not (abs(rlon) >= _BD_STOP or abs(rlat) >= _BD_STOP):
            break
    return glon, glat


def _wgs_to_bd(lon: FloatArray, lat: FloatArray) -> _Pair:
    return _gcj_to_bd(*_wgs_to_gcj(lon, lat))


def _wgs_to_bd_scalar(lon: float, lat: float) -> _ScalarPair:
    return _gcj_to_bd_scalar(*_wgs_to_gcj_scalar(lon, lat))


def _bd_to_wgs(lon: FloatArray, lat: FloatArray) -> _Pair:
    return _gcj_to_wgs(*_bd_to_gcj(lon, lat))


def _bd_to_wgs_scalar(lon: float, lat: float) -> _ScalarPair:
    return _gcj_to_wgs_scalar(*_bd_to_gcj_scalar(lon, lat))


_Kernel: TypeAlias = Callable[[FloatArray, FloatArray], _Pair]
_ScalarKernel: TypeAlias = Callable[[float, float], _ScalarPair]
