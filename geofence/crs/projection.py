"""`project` / `unproject` convert WGS-84 (= CGCS2000) longitude/latitude to and from
metres in `PROJECTED_CRS`, EPSG:4547, the CGCS2000 3-degree Gauss-Kruger zone with
central meridian 114E that covers Zhuhai (x = easting, y = northing).

The Transverse Mercator itself is :mod:`geofence._tmerc` (vectorized Krueger series);
pyproj handles the points outside its domain.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from geofence import _tmerc
from geofence.crs.names import PROJECTED_CRS, _coords, _Pair

_GEOGRAPHIC_CRS: Final[str] = "EPSG:4490"  # CGCS2000 lon/lat, taken as WGS-84 (see geofence.crs)


@functools.lru_cache(maxsize=2)
def _transformer(inverse: bool) -> Transformer:
    """The lon/lat <-> `PROJECTED_CRS` transformer, created once per direction."""
    if inverse:
        return Transformer.from_crs(PROJECTED_CRS, _GEOGRAPHIC_CRS, always_xy=True)
    return Transformer.from_crs(_GEOGRAPHIC_CRS, PROJECTED_CRS, always_xy=True)


def _transform(a: npt.ArrayLike, b: npt.ArrayLike, inverse: bool) -> _Pair:
    transformer = _transformer(inverse)
    if type(a) in (float, int) and type(b) in (float, int):  # fast path: ~1 us, not ~4 us
        u, v = transformer.transform(a, b)
        return np.array([u], dtype=np.float64), np.array([v], dtype=np.float64)
    a_out, b_out = _coords(a, b)
    if a_out.size == 1:
        flat_a = a_out.reshape(-1)
        flat_b = b_out.reshape(-1)
        flat_a[0], flat_b[0] = transformer.transform(float(flat_a[0]), float(flat_b[0]))
    elif a_out.size:
        transformer.transform(a_out, b_out, inplace=True)
    return a_out, b_out


def project(lon: npt.ArrayLike, lat: npt.ArrayLike) -> _Pair:
    """Project WGS-84 (= CGCS2000) longitude/latitude to metres in `PROJECTED_CRS`.

    Transverse Mercator with central meridian 114E, false easting 500 km, scale 1
    (EPSG:4547). Points within 15 degrees of the central meridian and 85 of the
    equator are computed by :mod:`geofence._tmerc` (Krueger's series, vectorized:
    ~17 ns a point instead of ~135 through pyproj; within 1e-8 m of PROJ, and the
    same bits for a point alone or in any batch); the others (and NaN, infinities)
    by a cached, thread-safe pyproj transformer. Within Zhuhai the scale error is
    below 2e-4 (at most 2 cm per 100 m).

    Parameters
    ----------
    lon, lat : array_like
        WGS-84 degrees (any numeric shape; broadcast together).

    Returns
    -------
    x, y : numpy.ndarray of float64
        Easting and northing in metres, new arrays of the broadcast shape (``(1,)``
        for scalars). NaN in either coordinate gives ``(nan, nan)``; points PROJ
        cannot project (``|lat| > 90``, infinite input) give ``inf``.

    Non-numeric coordinates or shapes that do not broadcast raise `CRSError` (the
    conventions of :mod:`geofence.crs`).

    Examples
    --------
    >>> x, y = project(113.5, 22.2)
    >>> print(f"{x[0]:.4f} {y[0]:.4f}")
    448441.1648 2456031.8064
    """
    if type(lon) is float and type(lat) is float and _tmerc.in_domain_one(lon, lat):
        x1, y1 = _tmerc.forward_one(lon, lat)  # ~3 us, not ~15 for a 1-element array
        return np.array([x1]), np.array([y1])
    x, y = _coords(lon, lat)
    shape = x.shape
    lon_f = x.reshape(-1)
    lat_f = y.reshape(-1)
    fast = _tmerc.in_domain(lon_f, lat_f)
    if fast.all():
        fx, fy = _tmerc.forward(lon_f, lat_f)
        return fx.reshape(shape), fy.reshape(shape)
    out_x = np.empty_like(lon_f)
    out_y = np.empty_like(lat_f)
    out_x[~fast], out_y[~fast] = _transform(lon_f[~fast], lat_f[~fast], inverse=False)
    out_x[fast], out_y[fast] = _tmerc.forward(lon_f[fast], lat_f[fast])
    return out_x.reshape(shape), out_y.reshape(shape)


def unproject(x: npt.ArrayLike, y: npt.ArrayLike) -> _Pair:
    """Convert metres in `PROJECTED_CRS` back to WGS-84 (= CGCS2000) longitude/latitude.

    The inverse of `project` (round trip well below 1 mm).

    Parameters
    ----------
    x, y : array_like
        Easting and northing in metres (any numeric shape; broadcast together).

    Returns
    -------
    lon, lat : numpy.ndarray of float64
        Degrees, new arrays of the broadcast shape (``(1,)`` for scalars). NaN in
        either coordinate gives ``(nan, nan)``.

    Non-numeric coordinates or shapes that do not broadcast raise `CRSError` (the
    conventions of :mod:`geofence.crs`).

    Examples
    --------
    >>> lon, lat = unproject(448441.1648, 2456031.8064)
    >>> print(f"{lon[0]:.7f} {lat[0]:.7f}")
    113.5000000 22.2000000
    """
    return _transform(x, y, inverse=True)
