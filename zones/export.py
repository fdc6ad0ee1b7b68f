"""Export a zone set: GeoJSON, GBFS 3.0 / 2.3 feeds, an MDS 2.0 Geography document.

``export(fc, fmt, out_dir)`` writes into ``out_dir`` and returns the files written:

- ``geojson``: ``zones.geojson``, the RFC 7946 FeatureCollection as bundled
  (counter-clockwise exteriors, clockwise holes; ids, properties and order kept).
- ``gbfs-3.0`` / ``gbfs-2.3``: ``gbfs.json``, ``system_information.json``,
  ``station_information.json`` and ``geofencing_zones.json``.

  * Every fenced parking box that is active at ``now`` is a virtual station
    (``station_id`` = zone id, ``lat``/``lon`` = a point inside the box,
    ``is_virtual_station``, ``station_area`` as a MultiPolygon, ``capacity``,
    ``parking_type``; boxes not yet or no longer active are left out unless
    ``active_only=False``). Unfenced boxes are not stations: only a fenced box settles a
    trip.
  * ``geofencing_zones.json``: the no-parking areas not yet expired (``start``/``end``
    from ``active_from``/``active_to``; rides may not end there: 3.0
    ``ride_end_allowed: false``, 2.3 ``ride_allowed: false``), then the service area
    (``zones.districts.service_area()``) with ``station_parking: true``. GBFS gives the
    first of overlapping zones precedence, hence no-parking first. 3.0 adds
    ``global_rules``: outside the service area rides may neither start nor end.
  * ``parking_type`` defaults to ``sidewalk_parking`` (of the schema's enum
    ``parking_lot|street_parking|underground_parking|sidewalk_parking|other``): Zhuhai's
    painted bike boxes stand on the pavement; a zone's own ``parking_type`` property,
    when it is one of the enum, wins.
  * The schemas require ``gbfs.json`` to list ``station_status`` whenever it lists
    ``station_information``. Vehicle counts are the operator's real-time data, not the
    city's, so the export lists ``station_status`` at ``{base_url}station_status.json``
    (or ``status_url``) for the operator's backend to serve, and does not write it.
  * GeoJSON winding: both GBFS versions say "must follow the right-hand rule", i.e.
    RFC 7946's counter-clockwise exteriors and clockwise holes; that is what we write.

- ``mds``: ``geographies.json``, an MDS 2.0 Geography document
  ``{"version": "2.0.0", "data": {"geographies": [...]}}``, one geography per zone:
  ``geography_id`` (UUID5 of the zone id in a namespace derived from ``system_id``: the
  same zone keeps its id across exports), ``name``, ``description``,
  ``geography_type`` (``stop`` for parking boxes, ``restricted_area`` for no-parking
  areas: MDS documents the field as one of its listed types "or custom text"; these two
  are the listed types closest to a designated parking place and an area where vehicles
  may pass but not park), ``geography_json`` (a FeatureCollection with the zone),
  ``published_date`` (ms since the epoch), ``effective_date``/``retire_date`` from
  ``active_from``/``active_to`` when set, and ``prev_geographies`` (empty).

``validate_gbfs(out_dir, version)`` checks a GBFS export against the bundled official
schemas (``zones/schemas/gbfs``, Draft-07 with a format checker) and against what the
schemas cannot say: closed rings, at least four positions, lon/lat ranges and winding.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import orjson
import shapely

from geofence.errors import ZoneDataError
from zones.diff import parse_zones

__all__ = [
    "FORMATS",
    "GBFS_FEEDS",
    "LANGUAGE",
    "SYSTEM_NAME",
    "TIMEZONE",
    "check_rings",
    "export",
    "format_checker",
    "geography_id",
    "run_cli",
    "validate_gbfs",
]

FORMATS: tuple[str, ...] = ("geojson", "gbfs-3.0", "gbfs-2.3", "mds")
GBFS_VERSIONS: tuple[str, ...] = ("3.0", "2.3")
#: the files a GBFS export writes (each validated against its official schema)
GBFS_FEEDS: tuple[str, ...] = (
    "gbfs",
    "system_information",
    "station_information",
    "geofencing_zones",
)
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas" / "gbfs"

SYSTEM_NAME = "珠海市共享单车停放区"
SERVICE_AREA_NAME = "珠海市共享单车服务区"
LANGUAGE = "zh-CN"
TIMEZONE = "Asia/Shanghai"
CST = timezone(timedelta(hours=8))  # China Standard Time: no daylight saving
PARKING_TYPES = (
    "parking_lot",
    "street_parking",
    "underground_parking",
    "sidewalk_parking",
    "other",
)
DEFAULT_CONTACT_EMAIL = "gbfs@example.invalid"
MDS_VERSION = "2.0.0"
GBFS2_MIN_TIME = 1450155600  # the GBFS 2.3 schemas' minimum POSIX time (2015-12-15)

Progress = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- helpers


def _now(now: datetime | None) -> datetime:
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


def _rfc3339(t: datetime) -> str:
    return t.astimezone(CST).isoformat(timespec="seconds")


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def _ccw(geoms: np.ndarray) -> np.ndarray:
    """Exteriors counter-clockwise, holes clockwise (RFC 7946 right-hand rule)."""
    return np.asarray(shapely.orient_polygons(geoms, exterior_cw=False), dtype=object)


def _geojson_fragments(geoms: np.ndarray) -> list[orjson.Fragment]:
    return [orjson.Fragment(s) for s in shapely.to_geojson(geoms).tolist()]


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    parts, idx = shapely.get_parts(geoms, return_index=True)
    return np.asarray(shapely.multipolygons(parts, indices=idx), dtype=object)


def _write(path: Path, obj: Any) -> Path:
    path.write_bytes(orjson.dumps(obj))
    return path


@dataclass(frozen=True)
class _Zone:
    pos: int
    id: str
    props: dict[str, Any]
    active_from: datetime | None
    active_to: datetime | None

    def active_at(self, t: datetime) -> bool:
        return (self.active_from is None or self.active_from <= t) and (
            self.active_to is None or t < self.active_to
        )


def _zones(table: Any) -> list[_Zone]:
    out = []
    for i, (fid, p) in enumerate(zip(table.ids.tolist(), table.properties, strict=True)):
        out.append(
            _Zone(
                pos=i,
                id=fid,
                props=p,
                active_from=_parse_time(p.get("active_from"), fid, "active_from"),
                active_to=_parse_time(p.get("active_to"), fid, "active_to"),
            )
        )
    return out


def _name(z: _Zone) -> str:
    n = z.props.get("name")
    return n if isinstance(n, str) and n else z.id


# --------------------------------------------------------------------------- export


def export(
    fc: Mapping[str, Any],
    fmt: str,
    out_dir: str | Path,
    *,
    system_id: str = "zhuhai-parking",
    now: datetime | None = None,
    base_url: str | None = None,
    status_url: str | None = None,
    feed_contact_email: str = DEFAULT_CONTACT_EMAIL,
    ttl: int = 3600,
    parking_type: str = "sidewalk_parking",
    service_area: shapely.Geometry | None = None,
    active_only: bool = True,
    progress: Progress | None = None,
) -> list[Path]:
    """Write ``fc`` in format ``fmt`` into ``out_dir`` (created if needed).

    ``base_url`` is where the GBFS files will be published (``gbfs.json`` links to them;
    default ``https://example.invalid/{system_id}/gbfs/{version}/``). ``service_area``
    (WGS-84) defaults to :func:`zones.districts.service_area`. With ``active_only`` (the
    default) a GBFS feed shows the stations active at ``now`` and the no-parking areas not
    yet expired; ``active_only=False`` exports every zone. ``progress`` is called as
    ``progress(step, done, total)``. Raises :class:`~geofence.errors.ZoneDataError` when
    the zone set cannot be read, :class:`ValueError` for an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    if parking_type not in PARKING_TYPES:
        raise ValueError(f"parking_type must be one of {', '.join(PARKING_TYPES)}")
    t = _now(now)
    report: Progress = progress or (lambda step, done, total: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    report("reading zones", 0, 1)
    table = parse_zones(fc)
    zones = _zones(table)
    geoms = _ccw(table.geoms)
    report("reading zones", 1, 1)

    if fmt == "geojson":
        return [_export_geojson(fc, table, geoms, out, report)]
    if fmt == "mds":
        return [_export_mds(zones, geoms, out, system_id, t, report)]
    version = fmt.removeprefix("gbfs-")
    if service_area is None:
        from zones.districts import service_area as _service_area

        service_area = _service_area()
    url = base_url or f"https://example.invalid/{system_id}/gbfs/{version}/"
    if not url.endswith("/"):
        url += "/"
    return _export_gbfs(
        zones,
        geoms,
        out,
        version=version,
        system_id=system_id,
        now=t,
        base_url=url,
        status_url=status_url or f"{url}station_status.json",
        email=feed_contact_email,
        ttl=ttl,
        parking_type=parking_type,
        service_area=service_area,
        active_only=active_only,
        report=report,
    )


def _export_geojson(
    fc: Mapping[str, Any], table: Any, geoms: np.ndarray, out: Path, report: Progress
) -> Path:
    n = len(table)
    report("writing GeoJSON", 0, n)
    frags = _geojson_fragments(geoms)
    feats = [
        {
            "type": "Feature",
            "id": fid,
            "geometry": g,
            "properties": table.features[i].get("properties") or {},
        }
        for i, (fid, g) in enumerate(zip(table.ids.tolist(), frags, strict=True))
    ]
    doc = {k: v for k, v in fc.items() if k not in ("type", "features")}
    doc = {"type": "FeatureCollection", **doc, "features": feats}
    path = _write(out / "zones.geojson", doc)
    report("writing GeoJSON", n, n)
    return path


# ---- MDS


@cache
def _namespace(system_id: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:x-geofence:{system_id}:zones")


def geography_id(zone_id: str, system_id: str = "zhuhai-parking") -> str:
    """The MDS ``geography_id`` of a zone: UUID5, stable across exports."""
    return str(uuid.uuid5(_namespace(system_id), zone_id))


def _mds_type(z: _Zone) -> tuple[str, str]:
    if z.props.get("kind") == "no_parking":
        return "restricted_area", "no-parking area (禁停区): vehicles may pass, not park"
    if z.props.get("fenced"):
        return "stop", "fenced parking box (电子围栏停放区, park-in-box settlement 入栏结算)"
    return "stop", "parking box (停放区), not fenced"


def _export_mds(
    zones: list[_Zone],
    geoms: np.ndarray,
    out: Path,
    system_id: str,
    now: datetime,
    report: Progress,
) -> Path:
    n = len(zones)
    report("writing MDS geographies", 0, n)
    published = _ms(now)
    frags = _geojson_fragments(geoms)
    geos = []
    for z, g in zip(zones, frags, strict=True):
        gtype, desc = _mds_type(z)
        item: dict[str, Any] = {
            "geography_id": geography_id(z.id, system_id),
            "name": _name(z),
            "description": desc,
            "geography_type": gtype,
            "geography_json": {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "id": z.id, "geometry": g, "properties": z.props}],
            },
            "published_date": published,
            "prev_geographies": [],
        }
        if z.active_from is not None:
            item["effective_date"] = _ms(z.active_from)
        if z.active_to is not None:
            item["retire_date"] = _ms(z.active_to)
        geos.append(item)
    path = _write(
        out / "geographies.json",
        {"version": MDS_VERSION, "data": {"geographies": geos}},
    )
    report("writing MDS geographies", n, n)
    return path


# ---- GBFS


def _text(version: str, s: str) -> Any:
    return [{"text": s, "language": LANGUAGE}] if version == "3.0" else s


def _header(version: str, now: datetime, ttl: int, data: Any) -> dict[str, Any]:
    last = _rfc3339(now) if version == "3.0" else int(now.timestamp())
    return {"last_updated": last, "ttl": ttl, "version": version, "data": data}


def _export_gbfs(
    zones: list[_Zone],
    geoms: np.ndarray,
    out: Path,
    *,
    version: str,
    system_id: str,
    now: datetime,
    base_url: str,
    status_url: str,
    email: str,
    ttl: int,
    parking_type: str,
    service_area: shapely.Geometry,
    active_only: bool,
    report: Progress,
) -> list[Path]:
    v3 = version == "3.0"
    written: list[Path] = []
    total = len(zones)

    # gbfs.json (discovery) and system_information.json
    feeds = [
        {"name": name, "url": f"{base_url}{name}.json"}
        for name in ("system_information", "station_information", "geofencing_zones")
    ]
    feeds.insert(2, {"name": "station_status", "url": status_url})
    data: Any = {"feeds": feeds} if v3 else {LANGUAGE: {"feeds": feeds}}
    written.append(_write(out / "gbfs.json", _header(version, now, ttl, data)))

    info: dict[str, Any] = {"system_id": system_id}
    if v3:
        info |= {
            "languages": [LANGUAGE],
            "name": _text(version, SYSTEM_NAME),
            "opening_hours": "24/7",
        }
    else:
        info |= {"language": LANGUAGE, "name": SYSTEM_NAME}
    info |= {"feed_contact_email": email, "timezone": TIMEZONE}
    written.append(_write(out / "system_information.json", _header(version, now, ttl, info)))

    # station_information.json: fenced, active parking boxes
    report("building stations", 0, total)
    st = [
        z
        for z in zones
        if z.props.get("kind") == "parking"
        and z.props.get("fenced") is True
        and (z.active_at(now) or not active_only)
    ]
    pos = np.array([z.pos for z in st], dtype=np.intp)
    areas = _geojson_fragments(_as_multipolygons(geoms[pos])) if len(pos) else []
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms[pos]))
    stations = []
    for z, area, (lon, lat) in zip(st, areas, pts.tolist(), strict=True):
        cap = z.props.get("capacity")
        ptype = z.props.get("parking_type")
        stations.append(
            {
                "station_id": z.id,
                "name": _text(version, _name(z)),
                "lat": round(lat, 7),  # 1 cm; the point stays well inside a >= 1.5 m box
                "lon": round(lon, 7),
                "is_virtual_station": True,
                "station_area": area,
                **({"capacity": cap} if isinstance(cap, int) and cap >= 0 else {}),
                "parking_type": ptype if ptype in PARKING_TYPES else parking_type,
            }
        )
    report("building stations", total, total)
    written.append(
        _write(
            out / "station_information.json",
            _header(version, now, ttl, {"stations": stations}),
        )
    )

    # geofencing_zones.json: no-parking areas first (they take precedence), then the area
    report("building geofencing zones", 0, total)
    np_zones = [
        z
        for z in zones
        if z.props.get("kind") == "no_parking"
        and (z.active_to is None or now < z.active_to or not active_only)
    ]
    np_pos = np.array([z.pos for z in np_zones], dtype=np.intp)
    np_geoms = _geojson_fragments(_as_multipolygons(geoms[np_pos])) if len(np_pos) else []
    if v3:
        no_end = {
            "ride_start_allowed": True,
            "ride_end_allowed": False,
            "ride_through_allowed": True,
        }
        in_area = {
            "ride_start_allowed": True,
            "ride_end_allowed": True,
            "ride_through_allowed": True,
            "station_parking": True,
        }
    else:
        no_end = {"ride_allowed": False, "ride_through_allowed": True}
        in_area = {"ride_allowed": True, "ride_through_allowed": True, "station_parking": True}
    features = []
    for z, g in zip(np_zones, np_geoms, strict=True):
        props: dict[str, Any] = {"name": _text(version, _name(z))}
        for key, t in (("start", z.active_from), ("end", z.active_to)):
            if t is None:
                continue
            if v3:
                props[key] = _rfc3339(t)
            elif t.timestamp() >= GBFS2_MIN_TIME:  # 2.3's schema floor; earlier = always
                props[key] = int(t.timestamp())
        props["rules"] = [no_end]
        features.append({"type": "Feature", "geometry": g, "properties": props})
    sa_geom = _as_multipolygons(_ccw(np.array([service_area], dtype=object)))
    features.append(
        {
            "type": "Feature",
            "geometry": _geojson_fragments(sa_geom)[0],
            "properties": {"name": _text(version, SERVICE_AREA_NAME), "rules": [in_area]},
        }
    )
    gz: dict[str, Any] = {"geofencing_zones": {"type": "FeatureCollection", "features": features}}
    if v3:  # outside the service area: no rides start or end
        gz["global_rules"] = [
            {"ride_start_allowed": False, "ride_end_allowed": False, "ride_through_allowed": True}
        ]
    written.append(_write(out / "geofencing_zones.json", _header(version, now, ttl, gz)))
    report("building geofencing zones", total, total)
    return written


# --------------------------------------------------------------------------- validation

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


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


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(_SCHEME.match(parts.scheme))


def format_checker() -> jsonschema.FormatChecker:
    """``jsonschema.FormatChecker()``, plus RFC 3339 ``date-time`` and ``uri`` checks when
    the optional libraries that jsonschema uses for them are not installed."""
    fc = jsonschema.FormatChecker()
    if "date-time" not in fc.checkers:
        fc.checks("date-time")(_is_datetime)
    if "uri" not in fc.checkers:
        fc.checks("uri")(_is_uri)
    return fc


@cache
def _schema(version: str, feed: str) -> dict[str, Any]:
    return orjson.loads((SCHEMA_DIR / f"v{version}" / f"{feed}.json").read_bytes())


def _ring_area2(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def check_rings(geometry: Any, where: str) -> list[str]:
    """What a JSON schema cannot check in a GeoJSON (Multi)Polygon: closed rings of at
    least four positions, lon in [-180, 180] and lat in [-90, 90], counter-clockwise
    exteriors and clockwise holes (RFC 7946 right-hand rule, as both GBFS versions ask)."""
    errs: list[str] = []
    if not isinstance(geometry, Mapping):
        return [f"{where}: geometry is not an object"]
    gtype, coords = geometry.get("type"), geometry.get("coordinates")
    polys = [coords] if gtype == "Polygon" else coords if gtype == "MultiPolygon" else None
    if not isinstance(polys, list):
        return [f"{where}: not a Polygon/MultiPolygon"]
    for p, poly in enumerate(polys):
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
            a2 = _ring_area2(ring)
            if r == 0 and a2 <= 0:
                errs.append(f"{tag}: exterior ring is not counter-clockwise")
            elif r > 0 and a2 >= 0:
                errs.append(f"{tag}: hole is not clockwise")
    return errs


def _geometry_errors(feed: str, doc: Any) -> Iterable[str]:
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, Mapping):
        return
    if feed == "station_information":
        for i, s in enumerate(data.get("stations") or []):
            if isinstance(s, Mapping) and "station_area" in s:
                sid = s.get("station_id", i)
                yield from check_rings(s["station_area"], f"{feed}: station {sid} station_area")
    elif feed == "geofencing_zones":
        zones = data.get("geofencing_zones")
        feats = zones.get("features") if isinstance(zones, Mapping) else None
        for i, f in enumerate(feats or []):
            if isinstance(f, Mapping):
                yield from check_rings(f.get("geometry"), f"{feed}: feature {i} geometry")


def validate_gbfs(out_dir: str | Path, version: str, *, max_errors: int = 200) -> list[str]:
    """Validate the GBFS files in ``out_dir`` against the bundled official schemas of
    ``version`` (``"3.0"`` or ``"2.3"``; ``"gbfs-3.0"`` works too) with a format checker,
    and check their geometries' rings (:func:`check_rings`). Returns the errors, one line
    each (at most ``max_errors``); an empty list means valid."""
    version = version.removeprefix("gbfs-")
    if version not in GBFS_VERSIONS:
        raise ValueError(f"unknown GBFS version {version!r} (one of {', '.join(GBFS_VERSIONS)})")
    out = Path(out_dir)
    checker = format_checker()
    errors: list[str] = []
    for feed in GBFS_FEEDS:
        path = out / f"{feed}.json"
        if not path.is_file():
            errors.append(f"{feed}.json: missing")
            continue
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            errors.append(f"{feed}.json: not JSON ({exc})")
            continue
        validator = jsonschema.Draft7Validator(_schema(version, feed), format_checker=checker)
        for err in validator.iter_errors(doc):
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            msg = err.message if len(err.message) <= 300 else err.message[:297] + "..."
            errors.append(f"{feed}.json: {where}: {msg}")
            if len(errors) >= max_errors:
                return errors
        for msg in _geometry_errors(feed, doc):
            errors.append(f"{feed}.json: {msg.removeprefix(feed + ': ')}")
            if len(errors) >= max_errors:
                return errors
    return errors


# --------------------------------------------------------------------------- command line


def run_cli(
    file: Path | None,
    *,
    fmt: str,
    out: Path,
    base_url: str | None = None,
    system_id: str = "zhuhai-parking",
    now: datetime | None = None,
) -> int:
    """``geofence zones export [FILE] --format F [--out DIR]``: export with a progress bar,
    list the files written, validate a GBFS export against the official schemas. Returns
    the exit code: 0 done; 1 the zone set breaks a rule or the output failed validation;
    2 usage or file errors."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from zones.diff import BUNDLED_PATH, CliError, load_file

    err = Console(stderr=True)
    src = file or BUNDLED_PATH

    def fail(msg: str) -> None:
        err.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False, soft_wrap=True)

    if fmt not in FORMATS:
        fail(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
        return 2
    if base_url is not None and not (_is_uri(base_url) and urlsplit(base_url).netloc):
        fail(f"--base-url {base_url!r} is not an absolute URL")
        return 2
    try:
        fc = load_file(src)
    except CliError as exc:
        fail(str(exc))
        return exc.code

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=max(total, 1))
            bar.update(tasks[step], completed=done, total=max(total, 1))

        try:
            paths = export(
                fc,
                fmt,
                out,
                system_id=system_id,
                now=now,
                base_url=base_url,
                progress=progress,
            )
        except ZoneDataError as exc:
            fail(f"{src}: {exc} [{exc.rule}]")
            return 1
        except OSError as exc:
            fail(f"{out}: cannot write ({exc.strerror or exc})")
            return 2
        errors: list[str] = []
        if fmt.startswith("gbfs-"):
            task = bar.add_task(f"validating against the GBFS {fmt[5:]} schemas", total=1)
            errors = validate_gbfs(out, fmt)
            bar.update(task, completed=1)

    if errors:
        fail(
            f"{out}: the {fmt} export is not valid against the official schemas "
            f"({len(errors)}{'+' if len(errors) >= 200 else ''} errors)"
        )
        for e in errors[:20]:
            err.print(f"  {e}", markup=False, highlight=False, soft_wrap=True)
        return 1
    for p in paths:
        print(p)
    note = f", valid against the official GBFS {fmt[5:]} schemas" if fmt.startswith("gbfs-") else ""
    err.print(f"wrote {len(paths)} file(s) to {out} from {src.name}{note}", highlight=False)
    return 0
