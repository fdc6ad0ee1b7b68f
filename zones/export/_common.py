"""What every export shares: the zones as read once, times, geometry helpers, JSON checks.

Kept apart from the per-standard modules so that each of them (``geojson``, ``gbfs``,
``mds``) holds only what its own standard says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import orjson
import shapely

from geofence.errors import ZoneDataError

__all__ = [
    "CST",
    "Progress",
    "Zone",
    "as_multipolygons",
    "ccw",
    "check_rings",
    "format_checker",
    "geojson_fragments",
    "is_uri",
    "ms",
    "now_or",
    "read_zones",
    "rfc3339",
    "round6",
]

CST = timezone(timedelta(hours=8))  # China Standard Time: no daylight saving
Progress = Callable[[str, int, int], None]
#: GBFS "SHOULD provide 6 digits (0.000001) of precision" (~11 cm); MDS follows suit
DECIMALS = 6


def now_or(now: datetime | None) -> datetime:
    """``now``, or the current time; naive times are refused."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _parse_time(value: Any, fid: str, key: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            t = None
        if t is not None and t.tzinfo is not None:
            return t
    raise ZoneDataError(
        f"{fid}: {key} is not an RFC 3339 time with an offset: {value!r}",
        feature_id=fid,
        rule="property_type",
    )


def rfc3339(t: datetime) -> str:
    return t.astimezone(CST).isoformat(timespec="seconds")


def ms(t: datetime) -> int:
    """Milliseconds since the epoch (the MDS ``timestamp``)."""
    return round(t.timestamp() * 1000)


def round6(geoms: np.ndarray) -> np.ndarray:
    """Coordinates rounded to 6 decimals (GBFS's SHOULD; 1e-6° is ~0.1 m, well under a
    2 m box). ``np.round`` on the coordinates: ``shapely.set_precision`` would also
    repair what snapping breaks, at 4x the cost (1.0 s against 0.25 s on the bundled
    set), and nothing here is thin enough to break."""
    return np.asarray(shapely.transform(geoms, lambda c: np.round(c, DECIMALS)), dtype=object)


def ccw(geoms: np.ndarray) -> np.ndarray:
    """Exteriors counter-clockwise, holes clockwise (RFC 7946 right-hand rule)."""
    return np.asarray(shapely.orient_polygons(geoms, exterior_cw=False), dtype=object)


def geojson_fragments(geoms: np.ndarray) -> list[orjson.Fragment]:
    return [orjson.Fragment(s) for s in shapely.to_geojson(geoms).tolist()]


def as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    parts, idx = shapely.get_parts(geoms, return_index=True)
    return np.asarray(shapely.multipolygons(parts, indices=idx), dtype=object)


@dataclass(frozen=True)
class Zone:
    """One zone as the exports read it (its position in the parsed table, id, properties
    and activity window)."""

    pos: int
    id: str
    props: dict[str, Any]
    active_from: datetime | None
    active_to: datetime | None

    def active_at(self, t: datetime) -> bool:
        return (self.active_from is None or self.active_from <= t) and (
            self.active_to is None or t < self.active_to
        )

    @property
    def name(self) -> str:
        n = self.props.get("name")
        return n if isinstance(n, str) and n else self.id


def read_zones(fc: Mapping[str, Any]) -> tuple[Any, list[Zone], np.ndarray]:
    """Parse ``fc`` (``zones.diff.parse_zones``): the table, its zones, and their
    geometries with RFC 7946 winding. Raises :class:`ZoneDataError`."""
    from zones.diff import parse_zones

    table = parse_zones(fc)
    zones = [
        Zone(
            pos=i,
            id=fid,
            props=p,
            active_from=_parse_time(p.get("active_from"), fid, "active_from"),
            active_to=_parse_time(p.get("active_to"), fid, "active_to"),
        )
        for i, (fid, p) in enumerate(zip(table.ids.tolist(), table.properties, strict=True))
    ]
    return table, zones, ccw(table.geoms)


# --------------------------------------------------------------------------- JSON checks

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def is_uri(value: object) -> bool:
    """An absolute URI (a scheme, no whitespace)."""
    if not isinstance(value, str):
        return True
    if any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(_SCHEME.match(parts.scheme))


def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(_UUID.match(value))


def format_checker() -> jsonschema.FormatChecker:
    """``jsonschema.FormatChecker()``, plus RFC 3339 ``date-time``, ``uri`` and ``uuid``
    checks when the optional libraries that jsonschema uses for them are missing."""
    fc = jsonschema.FormatChecker()
    for name, fn in (("date-time", _is_datetime), ("uri", is_uri), ("uuid", _is_uuid)):
        if name not in fc.checkers:
            fc.checks(name)(fn)
    return fc


def _ring_area2(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def check_rings(geometry: Any, where: str, *, exterior_ccw: bool | None = True) -> list[str]:
    """What a JSON schema cannot check in a GeoJSON (Multi)Polygon: closed rings of at
    least four positions, lon in [-180, 180] and lat in [-90, 90], at most 6 decimals,
    and the winding: ``exterior_ccw=True`` asks RFC 7946's counter-clockwise exteriors and
    clockwise holes, ``False`` the reverse (GBFS 2.3's enclosing clockwise polygon),
    ``None`` only that holes wind against their exterior."""
    errs: list[str] = []
    if not isinstance(geometry, Mapping):
        return [f"{where}: geometry is not an object"]
    gtype, coords = geometry.get("type"), geometry.get("coordinates")
    polys = [coords] if gtype == "Polygon" else coords if gtype == "MultiPolygon" else None
    if not isinstance(polys, list):
        return [f"{where}: not a Polygon/MultiPolygon"]
    for p, poly in enumerate(polys):
        outer = 0.0
        for r, raw in enumerate(poly):
            tag = f"{where}: polygon {p} ring {r}"
            try:
                ring = np.asarray(raw, dtype=float)
            except (TypeError, ValueError):
                errs.append(f"{tag}: positions are not numbers")
                continue
            if ring.ndim != 2 or ring.shape[1] < 2 or len(ring) < 4:
                errs.append(f"{tag}: fewer than 4 positions")
                continue
            if not np.array_equal(ring[0, :2], ring[-1, :2]):
                errs.append(f"{tag}: ring not closed")
                continue
            lon, lat = ring[:, 0], ring[:, 1]
            if not (np.all(np.abs(lon) <= 180) and np.all(np.abs(lat) <= 90)):
                errs.append(f"{tag}: position outside lon [-180, 180] / lat [-90, 90]")
                continue
            if np.any(np.abs(ring[:, :2] - np.round(ring[:, :2], DECIMALS)) > 1e-12):
                errs.append(f"{tag}: more than {DECIMALS} decimals")
            a2 = _ring_area2(ring)
            if r == 0:
                outer = a2
                if exterior_ccw is True and a2 <= 0:
                    errs.append(f"{tag}: exterior ring is not counter-clockwise")
                elif exterior_ccw is False and a2 >= 0:
                    errs.append(f"{tag}: exterior ring is not clockwise")
            elif a2 * outer >= 0:
                errs.append(f"{tag}: hole winds like its exterior")
    return errs
