"""Parsed check bodies (orjson's dicts) to the engine's arrays: one check
(:func:`check_values`, the single route's compiled call) or many (:func:`check_batch`),
the plainly valid ones only (None sends the caller to the slow path)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np

import geofence
from api.models import MAX_FIXES
from geofence.decisions.inputs import MAX_DEVICE_CLASS, Q_UNKNOWN, QUALITIES
from geofence.rfc3339 import parse_rfc3339

_BODY_KEYS = frozenset(
    (
        "trip_id",
        "bike_id",
        "vehicle_type",
        "ended_at",
        "fixes",
        "heading_deg",
        "beacons",
        "device_class",
    )
)
_REQUIRED = frozenset(("trip_id", "bike_id", "vehicle_type", "ended_at", "fixes"))
_FIX_KEYS = frozenset(("lon", "lat", "accuracy_m", "at", "crs", "quality"))
#: a fix's quality -> its CheckBatch code (None: no quality, Q_UNKNOWN)
_QUALITY_CODE: dict[Any, int] = {q: i for i, q in enumerate(QUALITIES)} | {None: Q_UNKNOWN}
_VEHICLES = frozenset(("bike", "ebike"))
_VEHICLE_BYTES = frozenset((b"bike", b"ebike"))
_CRS = frozenset(("wgs84", "cgcs2000", "gcj02", "bd09"))
_DICT = {dict}
_LON = itemgetter("lon")
_LAT = itemgetter("lat")
_NUMBER = frozenset((float, int))
_NUMBER_OR_NONE = frozenset((float, int, type(None)))

_times: dict[str, float | None] = {}


def parse_time_cached(value: str) -> float | None:
    """POSIX seconds of an RFC 3339 time (:func:`geofence.rfc3339.parse_rfc3339`, as the
    slow path reads it), or None (not one, too long).

    Trip ends share few distinct times (one a second at most per client clock): the
    parses are cached, up to 4,096 of them.
    """
    t = _times.get(value)
    if t is None and value not in _times:
        if not 0 < len(value) <= 64:
            return None
        try:
            t = parse_rfc3339(value).timestamp()
        except ValueError:
            t = None
        if len(_times) >= 4096:
            _times.clear()
        _times[value] = t
    return t


def _text_ok(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= 256 and "\x00" not in v


def check_batch(bodies: Sequence[Any], operator: str | None) -> geofence.CheckBatch | None:
    """The arrays of ``bodies`` (WGS-84, NaN-padded), or None unless all are plainly valid."""
    try:
        if len(bodies) == 1:
            return _one(bodies[0], operator)
        return _check_batch(bodies, operator)
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        return None


def _number(v: Any, lo: float, hi: float) -> float | None:
    """``v`` as a float if it is a JSON number within [lo, hi], else None."""
    t = type(v)
    if (t is float or t is int) and lo <= v <= hi:
        return float(v)
    return None


def _header(b: Any) -> float | None:
    """``ended_at`` of a body whose fields are plainly valid but for the heading and the
    fixes' values (the fixes a list of 1 to MAX_FIXES), else None."""
    if type(b) is not dict:
        return None
    keys = b.keys()
    if not (keys <= _BODY_KEYS and _REQUIRED <= keys):
        return None
    if not (_text_ok(b["trip_id"]) and _text_ok(b["bike_id"])):
        return None
    if b["vehicle_type"] not in _VEHICLES:
        return None
    beacons = b.get("beacons")
    if beacons is not None and (type(beacons) is not list or beacons):
        return None  # beacons are resolved against the index by the slow path
    fixes = b["fixes"]
    if type(fixes) is not list or not 0 < len(fixes) <= MAX_FIXES:
        return None
    end = b["ended_at"]
    return parse_time_cached(end) if type(end) is str else None


Values = tuple[list[float], float, "float | None", "str | None"]


def check_values(b: Any) -> Values | None:
    """One plainly valid body as :func:`geofence.decide_values` takes it: ``(values,
    ended_at, heading_deg, device_class)``, the fixes' five numbers each (WGS-84), or
    None (the caller takes the schema's path). The single-check route's reader: scalar
    checks, no array set-up."""
    try:
        return _values(b)
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        return None


def _values(b: Any) -> Values | None:
    ended = _header(b)
    if ended is None:
        return None
    heading = b.get("heading_deg")
    if heading is not None:
        heading = _number(heading, 0.0, 360.0)
        if heading is None or heading == 360.0:
            return None
    device_class = b.get("device_class")
    if device_class is not None and not _class_ok(device_class):
        return None
    nan = math.nan
    vals: list[float] = []
    convert: dict[str, list[int]] | None = None
    for j, f in enumerate(b["fixes"]):
        if type(f) is not dict or not f.keys() <= _FIX_KEYS:
            return None
        x = _number(f["lon"], -180.0, 180.0)
        y = _number(f["lat"], -90.0, 90.0)
        if x is None or y is None:
            return None
        a = f.get("accuracy_m")
        if a is None:
            a = nan
        else:
            a = _number(a, 0.0, 10_000.0)
            if not a:  # None, or 0 (the schema wants > 0)
                return None
        t: Any = nan
        code = Q_UNKNOWN
        if len(f) > 3 or "accuracy_m" not in f:
            t = f.get("at")
            if t is None:
                t = nan
            else:
                t = parse_time_cached(t) if type(t) is str else None
                if t is None:
                    return None
            crs = f.get("crs")
            if crs is not None and crs != "wgs84" and crs != "cgcs2000":
                if crs not in _CRS:
                    return None
                if convert is None:
                    convert = {}
                convert.setdefault(crs, []).append(j)
            q = f.get("quality")
            if q is not None:
                code = _QUALITY_CODE.get(q, -1) if type(q) is str else -1
                if code < 0:
                    return None
        vals += (x, y, a, t, code)
    if convert:
        for name, jj in convert.items():
            lon, lat = geofence.crs.to_wgs84(
                np.array([vals[5 * j] for j in jj]), np.array([vals[5 * j + 1] for j in jj]), name
            )
            for j, x, y in zip(jj, lon.tolist(), lat.tolist(), strict=True):
                vals[5 * j] = x
                vals[5 * j + 1] = y
    return vals, ended, heading, device_class


def _one(b: Any, operator: str | None) -> geofence.CheckBatch | None:
    """:func:`check_batch` of one body (:func:`_values` in arrays)."""
    got = _values(b)
    if got is None:
        return None
    vals, ended, heading, device_class = got
    m = len(vals) // 5
    block = np.array(vals, np.float64).reshape(m, 5).T.reshape(5, 1, m)
    codes = block[4, 0]
    return geofence.CheckBatch(
        lon=block[0].copy(),
        lat=block[1].copy(),
        accuracy_m=block[2].copy(),
        at=block[3].copy(),
        n_fixes=np.array([m], np.int64),
        ended_at=np.array([ended], np.float64),
        heading_deg=np.array([math.nan if heading is None else heading], np.float64),
        beacon_zone=np.array([-1], np.int64),
        operator=operator,
        quality=None if (codes == Q_UNKNOWN).all() else codes.astype(np.int8).reshape(1, m),
        device_class=None if device_class is None else np.zeros(1, np.int32),
        device_classes=() if device_class is None else (device_class,),
    )


def _class_ok(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= MAX_DEVICE_CLASS and "\x00" not in v


def _classes(names: Sequence[Any]) -> tuple[np.ndarray | None, tuple[str, ...]] | None:
    """Each check's device class (None: none named) as ``(codes, classes)``: codes by
    first appearance, -1 for none, as :meth:`geofence.CheckBatch.from_checks` numbers
    them; ``(None, ())`` when no check names one; None if a name is not plainly valid."""
    if names.count(None) == len(names):
        return None, ()
    codes: dict[str, int] = {}
    out = np.full(len(names), -1, np.int32)
    for i, v in enumerate(names):
        if v is not None:
            if not _class_ok(v):
                return None
            out[i] = codes.setdefault(v, len(codes))
    return out, tuple(codes)


def _check_batch(bodies: Sequence[Any], operator: str | None) -> geofence.CheckBatch | None:
    n = len(bodies)
    if n == 0:
        return None
    ended = [0.0] * n
    heading: list[Any] = [None] * n
    fix_lists: list[Any] = [None] * n
    names: list[Any] = [None] * n
    for i, b in enumerate(bodies):  # per check: a few dict reads
        t = _header(b)
        if t is None:
            return None
        ended[i] = t
        heading[i] = b.get("heading_deg")
        fix_lists[i] = b["fixes"]
        names[i] = b.get("device_class")
    classes = _classes(names)
    if classes is None:
        return None
    # per fix: C loops (map) over the flat list of fix objects
    flat = list(chain.from_iterable(fix_lists))
    if set(map(type, flat)) != _DICT or not all(map(_FIX_KEYS.issuperset, flat)):
        return None
    lon = list(map(_LON, flat))
    lat = list(map(_LAT, flat))
    acc = list(map(dict.get, flat, repeat("accuracy_m")))
    ats = list(map(dict.get, flat, repeat("at")))
    crss = list(map(dict.get, flat, repeat("crs")))
    qualities = list(map(dict.get, flat, repeat("quality")))
    flat_quality = None
    if qualities.count(None) != len(qualities):
        codes = [_QUALITY_CODE.get(q, -1) if q is None or type(q) is str else -1 for q in qualities]
        if -1 in codes:
            return None
        flat_quality = np.array(codes, np.int8)
    times: list[tuple[int, Any]] = []
    if ats.count(None) != len(ats):
        times = [(k, v) for k, v in enumerate(ats) if v is not None]
    other_crs: list[tuple[int, Any]] = []
    if crss.count(None) != len(crss):
        other_crs = [(k, c) for k, c in enumerate(crss) if c is not None and c != "wgs84"]
        if not all(c in _CRS for _, c in other_crs):
            return None
    n_fixes = list(map(len, fix_lists))
    if not (set(map(type, lon)) <= _NUMBER and set(map(type, lat)) <= _NUMBER):
        return None
    if not (set(map(type, acc)) <= _NUMBER_OR_NONE and set(map(type, heading)) <= _NUMBER_OR_NONE):
        return None
    flat_at = np.full(len(lon), np.nan)
    for k, value in times:
        t = parse_time_cached(value) if type(value) is str else None
        if t is None:
            return None
        flat_at[k] = t
    return _arrays(
        np.array(lon, np.float64),
        np.array(lat, np.float64),
        np.array(acc, np.float64),  # None -> NaN
        flat_at,
        np.array(n_fixes, np.int64),
        np.array(ended, np.float64),
        np.array(heading, np.float64),
        operator,
        other_crs,
        flat_quality,
        classes,
    )


def _arrays(
    flat_lon: np.ndarray,
    flat_lat: np.ndarray,
    flat_acc: np.ndarray,
    flat_at: np.ndarray,
    nfix: np.ndarray,
    ended: np.ndarray,
    heading_deg: np.ndarray,
    operator: str | None,
    other_crs: Sequence[tuple[int, Any]] = (),
    flat_quality: np.ndarray | None = None,
    classes: tuple[np.ndarray | None, tuple[str, ...]] = (None, ()),
) -> geofence.CheckBatch | None:
    """The batch of the checks' flat fix columns (NaN: absent), after the range checks
    (None if one fails); ``other_crs``: ``(flat position, crs)`` of fixes to convert;
    ``flat_quality``: the fixes' quality codes (None: no fix has one); ``classes``: the
    checks' device-class codes and names (see :func:`_classes`)."""
    n = len(nfix)
    ok = (
        (np.abs(flat_lon) <= 180.0).all()
        and (np.abs(flat_lat) <= 90.0).all()
        and not ((flat_acc <= 0.0) | (flat_acc > 10_000.0)).any()
        and not ((heading_deg < 0.0) | (heading_deg >= 360.0)).any()
    )
    if not ok:
        return None
    for name in ("gcj02", "bd09"):
        cells = np.array([k for k, c in other_crs if c == name], np.int64)
        if len(cells):
            flat_lon[cells], flat_lat[cells] = geofence.crs.to_wgs84(
                flat_lon[cells], flat_lat[cells], name
            )
    m = int(nfix.max())
    quality = None
    if n == 1 or (nfix == m).all():
        shape = (n, m)
        grid = [a.reshape(shape) for a in (flat_lon, flat_lat, flat_acc, flat_at)]
        if flat_quality is not None:
            quality = flat_quality.reshape(shape)
    else:  # ragged: scatter into NaN-padded rows
        row = np.repeat(np.arange(n), nfix)
        col = np.arange(len(flat_lon)) - np.repeat(np.cumsum(nfix) - nfix, nfix)
        grid = []
        for a in (flat_lon, flat_lat, flat_acc, flat_at):
            g = np.full((n, m), np.nan)
            g[row, col] = a
            grid.append(g)
        if flat_quality is not None:
            quality = np.full((n, m), Q_UNKNOWN, np.int8)
            quality[row, col] = flat_quality
    return geofence.CheckBatch(
        lon=grid[0],
        lat=grid[1],
        accuracy_m=grid[2],
        at=grid[3],
        n_fixes=nfix,
        ended_at=ended,
        heading_deg=heading_deg,
        beacon_zone=np.full(n, -1, np.int64),
        operator=operator,
        quality=quality,
        device_class=classes[0],
        device_classes=classes[1],
    )
