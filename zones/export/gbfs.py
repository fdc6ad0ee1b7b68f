"""GBFS 3.0 and 2.3 feeds of a zone set, each with its own version's semantics.

``build_feeds`` returns the documents (``gbfs``, ``system_information``,
``station_information``, ``station_status``, ``geofencing_zones``); the service serves
them (``api.routes.standards``) and ``zones export`` writes them. ``gbfs.json`` lists
exactly these five files, and every one of them is produced: a feed lists only what it
serves.

Stations
    Every fenced parking box active at ``now`` is a virtual station (``station_area``
    its MultiPolygon, ``lat``/``lon`` a point inside it, ``capacity``, ``parking_type``
    from the zone or ``sidewalk_parking``: Zhuhai's painted boxes stand on the pavement).
    Unfenced boxes are not stations: only a fenced box settles a trip.

Vehicle availability (``station_status``)
    Both versions' schemas require ``station_status`` whenever ``station_information``
    is published, and 3.0 requires ``station_status`` or ``vehicle_status`` in any feed.
    The city rents nothing and does not count bikes (each operator's own GBFS feed carries
    its bikes); what it can say truthfully is "this system is not renting here, it
    accepts returns": ``is_renting: false``, ``is_returning: true``, ``is_installed:
    true``, and 0 vehicles of *this* system available for rental. ``last_reported`` is
    when the zone set took effect. Its ``ttl`` is at most 300 s (GBFS: near-realtime
    files never more than 5 minutes out of date), although it only changes with the zone
    set.

Geofencing, 3.0 (its "Geofencing Rule Precedence")
    Rules apply to a polygon's interior (RFC 7946 winding, counter-clockwise exteriors);
    of overlapping polygons the earlier one wins; ``global_rules`` apply elsewhere. So:
    the no-parking areas first (``ride_end_allowed: false``; starting allowed, to move
    a badly parked bike away), then the service area (``station_parking: true``: inside
    Zhuhai a ride ends only at a station), and ``global_rules``: outside Zhuhai no ride
    starts or ends. Stations inside a no-parking area are cut out of it (the engine lets a
    box inside a no-parking area win; both texts also let ``station_area`` take
    precedence over overlapping zones' start/end rules).

Geofencing, 2.3 (its geofencing_zones.json text)
    * Winding: "A clockwise arrangement of points defines the area enclosed by the
      polygon, while a counterclockwise order defines the area outside the polygon":
      every zone here is written as the area it encloses, with clockwise exteriors (and
      counter-clockwise holes), i.e. the reverse of RFC 7946. (``station_area`` is
      plain RFC 7946 GeoJSON in both versions: counter-clockwise.)
    * "the combined set of rules associated with the overlapping polygons applies to the
      union of the polygons": so no two zones with different rules may overlap, or the
      first zone's rules would spread over the other. The zones are therefore disjoint:
      the no-parking areas (less the stations inside them), the rest of the service area
      (the service area less those), and the world outside Zhuhai (a world-sized frame
      less the service area; a multi-part service area, Zhuhai's 72 islands and
      mainland, cannot be written as one "counterclockwise = outside" polygon without
      ambiguity, so the outside is written as an enclosed area too).
    * "Geofencing zones SHOULD be modeled according to restrictions rather than
      allowance" and by default no restriction applies: every zone restricts something.
      2.3 has one ``ride_allowed`` for starting *and* ending, so a no-parking area says
      ``ride_allowed: false`` (a 2.3 reader may not start a ride there either: stricter
      than the city's rule, the only way 2.3 can say "no ending here"), the rest of the
      city ``station_parking: true``, outside Zhuhai ``ride_allowed: false``.
    * A no-parking area open only part of the time keeps its ``start``/``end``; outside
      that window the hole it leaves in the city zone carries no rule (2.3 cannot say
      "the city's rule, except during the window" without overlapping zones).

Numbers: coordinates carry 6 decimals (GBFS: SHOULD, ~0.1 m); times are RFC 3339 in 3.0
and POSIX seconds in 2.3.

Feed metadata (:class:`FeedMeta`): system id, name, operator, contact email, URL, time
zone, licence, from the service's settings or ``zones export`` flags. Bad values raise
:class:`FeedMetaError` naming the field; a placeholder contact email (3.0: "MUST contain
a single contact email") is a warning, not an error, so a test export still works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import numpy as np
import orjson
import shapely

from zones.export._common import (
    Progress,
    Zone,
    as_multipolygons,
    check_rings,
    format_checker,
    geojson_fragments,
    is_uri,
    rfc3339,
    round6,
)

__all__ = [
    "DEFAULT_CONTACT_EMAIL",
    "FEEDS",
    "SCHEMA_DIR",
    "VERSIONS",
    "FeedMeta",
    "FeedMetaError",
    "build_feeds",
    "validate_gbfs",
    "validate_gbfs_docs",
]

VERSIONS: tuple[str, ...] = ("3.0", "2.3")
#: the files a feed serves and lists in gbfs.json (each has an official schema)
FEEDS: tuple[str, ...] = (
    "gbfs",
    "system_information",
    "station_information",
    "station_status",
    "geofencing_zones",
)
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "gbfs"
SYSTEM_NAME = "珠海市共享单车停放区"
SERVICE_AREA_NAME = "珠海市共享单车服务区"
OUTSIDE_NAME = "珠海市服务区以外"
LANGUAGE = "zh-CN"
TIMEZONE = "Asia/Shanghai"
PARKING_TYPES = (
    "parking_lot",
    "street_parking",
    "underground_parking",
    "sidewalk_parking",
    "other",
)
DEFAULT_CONTACT_EMAIL = "gbfs@example.invalid"
GBFS2_MIN_TIME = 1450155600  # the GBFS 2.3 schemas' minimum POSIX time (2015-12-15)
STATUS_MAX_TTL = 300  # GBFS: near-realtime files never more than 5 minutes out of date

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_SPDX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "localhost")
_PLACEHOLDER_TLDS = (".invalid", ".test", ".example", ".localhost", ".local")


class FeedMetaError(ValueError):
    """Bad feed metadata; ``field`` names the setting or flag."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def is_placeholder_email(email: str) -> bool:
    """An address no one reads: RFC 2606 / RFC 6761 reserved domains."""
    domain = email.rsplit("@", 1)[-1].lower()
    return domain in _PLACEHOLDER_DOMAINS or domain.endswith(_PLACEHOLDER_TLDS)


@dataclass(frozen=True)
class FeedMeta:
    """Who publishes the feed (``system_information``); :meth:`check` raises on bad
    values, :meth:`warnings` lists what a real feed should fix."""

    system_id: str = "zhuhai-parking"
    name: str = SYSTEM_NAME
    operator: str | None = None
    feed_contact_email: str = DEFAULT_CONTACT_EMAIL
    url: str | None = None
    timezone: str = TIMEZONE
    license_id: str | None = None
    license_url: str | None = None

    def check(self) -> FeedMeta:
        """Raise :class:`FeedMetaError` for the first bad field; return self."""
        if not _ID.match(self.system_id):
            raise FeedMetaError("system_id", f"{self.system_id!r} is not 1-64 of A-Z a-z 0-9 . _ -")
        for field in ("name", "operator"):
            v = getattr(self, field)
            if v is not None and (not v.strip() or len(v) > 255):
                raise FeedMetaError(field, "must be 1-255 characters, not blank")
        email = self.feed_contact_email
        if not _EMAIL.match(email) or len(email) > 254:
            raise FeedMetaError("feed_contact_email", f"{email!r} is not a single e-mail address")
        for field in ("url", "license_url"):
            v = getattr(self, field)
            if v is not None and not (
                is_uri(v) and urlsplit(v).scheme in ("http", "https") and urlsplit(v).netloc
            ):
                raise FeedMetaError(field, f"{v!r} is not an absolute http(s) URL")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise FeedMetaError("timezone", f"{self.timezone!r} is not an IANA time zone") from None
        if self.license_id is not None and not _SPDX.match(self.license_id):
            raise FeedMetaError("license_id", f"{self.license_id!r} is not an SPDX identifier")
        if self.license_id is not None and self.license_url is not None:
            raise FeedMetaError(
                "license_url",
                "give license_id (an SPDX licence) or license_url (a custom one), not both",
            )
        return self

    def warnings(self) -> list[str]:
        out = []
        if is_placeholder_email(self.feed_contact_email):
            out.append(
                f"feed_contact_email {self.feed_contact_email!r} is a placeholder: GBFS 3.0 "
                "says it MUST be a real contact for feed consumers (set it with "
                "--feed-contact-email or GEOFENCE_FEED_CONTACT_EMAIL)"
            )
        if self.license_id is None and self.license_url is None:
            out.append(
                "no licence (license_id / license_url): GBFS reads that as CC0 (public domain)"
            )
        return out

    def license_url_2_3(self) -> str | None:
        """2.3 has only ``license_url``: an SPDX id becomes its SPDX page."""
        if self.license_url is not None:
            return self.license_url
        if self.license_id is not None:
            return f"https://spdx.org/licenses/{self.license_id}.html"
        return None


def _text(v3: bool, s: str) -> Any:
    return [{"text": s, "language": LANGUAGE}] if v3 else s


def _time(v3: bool, t: datetime) -> Any:
    return rfc3339(t) if v3 else int(t.timestamp())


def _header(v3: bool, last: datetime, ttl: int, data: Any) -> dict[str, Any]:
    return {
        "last_updated": _time(v3, last),
        "ttl": ttl,
        "version": "3.0" if v3 else "2.3",
        "data": data,
    }


def _multi(geoms: np.ndarray, *, exterior_cw: bool) -> list[orjson.Fragment]:
    """6-decimal MultiPolygons, exteriors wound as asked (after rounding: snapping may
    re-wind)."""
    if not len(geoms):
        return []
    g = round6(np.asarray(geoms, dtype=object))
    g = shapely.orient_polygons(as_multipolygons(g), exterior_cw=exterior_cw)
    return geojson_fragments(np.asarray(g, dtype=object))


def build_feeds(
    zones: list[Zone],
    geoms: np.ndarray,
    *,
    version: str,
    meta: FeedMeta,
    now: datetime,
    last_updated: datetime,
    ttl: int,
    base_url: str,
    service_area: shapely.Geometry,
    parking_type: str = "sidewalk_parking",
    active_only: bool = True,
    report: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """The five GBFS documents of ``version`` (``"3.0"`` or ``"2.3"``), by feed name.

    ``zones``/``geoms`` from :func:`zones.export._common.read_zones`; ``now`` decides
    which zones are active, ``last_updated`` is when the data last changed; ``base_url``
    ends with ``/`` and is where the files are served (``gbfs.json`` links to them)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown GBFS version {version!r} (one of {', '.join(VERSIONS)})")
    if parking_type not in PARKING_TYPES:
        raise ValueError(f"parking_type must be one of {', '.join(PARKING_TYPES)}")
    meta.check()
    rep: Progress = report or (lambda step, done, total: None)
    v3 = version == "3.0"
    total = len(zones)
    docs: dict[str, dict[str, Any]] = {}

    feeds = [{"name": n, "url": f"{base_url}{n}.json"} for n in FEEDS if n != "gbfs"]
    docs["gbfs"] = _header(
        v3, last_updated, ttl, {"feeds": feeds} if v3 else {LANGUAGE: {"feeds": feeds}}
    )

    info: dict[str, Any] = {"system_id": meta.system_id}
    if v3:
        info |= {"languages": [LANGUAGE], "name": _text(True, meta.name), "opening_hours": "24/7"}
    else:
        info |= {"language": LANGUAGE, "name": meta.name}
    if meta.operator is not None:
        info["operator"] = _text(v3, meta.operator)
    if meta.url is not None:
        info["url"] = meta.url
    info |= {"feed_contact_email": meta.feed_contact_email, "timezone": meta.timezone}
    if v3 and meta.license_id is not None:
        info["license_id"] = meta.license_id
    lic_url = meta.license_url if v3 else meta.license_url_2_3()
    if lic_url is not None:
        info["license_url"] = lic_url
    docs["system_information"] = _header(v3, last_updated, ttl, info)

    # stations: fenced, active parking boxes
    rep("building stations", 0, total)
    st = [
        z
        for z in zones
        if z.props.get("kind") == "parking"
        and z.props.get("fenced") is True
        and (z.active_at(now) or not active_only)
    ]
    st_geoms = geoms[np.array([z.pos for z in st], dtype=np.intp)]
    areas = _multi(st_geoms, exterior_cw=False)  # RFC 7946 in both versions
    pts = shapely.get_coordinates(shapely.point_on_surface(st_geoms)) if len(st) else []
    stations, statuses = [], []
    reported = _time(v3, last_updated)
    for z, area, (lon, lat) in zip(st, areas, np.round(pts, 6).tolist(), strict=True):
        cap = z.props.get("capacity")
        ptype = z.props.get("parking_type")
        stations.append(
            {
                "station_id": z.id,
                "name": _text(v3, z.name),
                "lat": lat,
                "lon": lon,
                "is_virtual_station": True,
                "station_area": area,
                **({"capacity": cap} if isinstance(cap, int) and cap >= 0 else {}),
                "parking_type": ptype if ptype in PARKING_TYPES else parking_type,
            }
        )
        statuses.append(
            {
                "station_id": z.id,
                ("num_vehicles_available" if v3 else "num_bikes_available"): 0,
                "is_installed": True,
                "is_renting": False,
                "is_returning": True,
                "last_reported": reported,
            }
        )
    rep("building stations", total, total)
    docs["station_information"] = _header(v3, last_updated, ttl, {"stations": stations})
    docs["station_status"] = _header(
        v3, last_updated, min(ttl, STATUS_MAX_TTL), {"stations": statuses}
    )

    rep("building geofencing zones", 0, total)
    docs["geofencing_zones"] = _header(
        v3,
        last_updated,
        ttl,
        _geofencing(zones, geoms, st_geoms, v3, now, service_area, active_only),
    )
    rep("building geofencing zones", total, total)
    return docs


def _window(v3: bool, z: Zone) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key, t in (("start", z.active_from), ("end", z.active_to)):
        if t is None:
            continue
        if v3:
            props[key] = rfc3339(t)
        elif t.timestamp() >= GBFS2_MIN_TIME:  # 2.3's schema floor; earlier = always
            props[key] = int(t.timestamp())
    return props


def _geofencing(
    zones: list[Zone],
    geoms: np.ndarray,
    stations: np.ndarray,
    v3: bool,
    now: datetime,
    service_area: shapely.Geometry,
    active_only: bool,
) -> dict[str, Any]:
    np_zones = [
        z
        for z in zones
        if z.props.get("kind") == "no_parking"
        and (z.active_to is None or now < z.active_to or not active_only)
    ]
    np_geoms = geoms[np.array([z.pos for z in np_zones], dtype=np.intp)]
    if len(np_geoms) and len(stations):  # a station inside a no-parking area wins
        tree = shapely.STRtree(stations)
        a, b = tree.query(np_geoms, predicate="intersects")
        if len(a):
            np_geoms = np_geoms.copy()
            for i in np.unique(a):
                np_geoms[i] = shapely.difference(
                    np_geoms[i], shapely.union_all(stations[b[a == i]])
                )
    keep = ~shapely.is_empty(np_geoms) if len(np_geoms) else np.zeros(0, bool)
    np_zones = [z for z, k in zip(np_zones, keep, strict=True) if k]
    np_geoms = np_geoms[keep]
    features = []
    if v3:
        no_end = {
            "ride_start_allowed": True,
            "ride_end_allowed": False,
            "ride_through_allowed": True,
        }
        city = {
            "ride_start_allowed": True,
            "ride_end_allowed": True,
            "ride_through_allowed": True,
            "station_parking": True,
        }
        for z, g in zip(np_zones, _multi(np_geoms, exterior_cw=False), strict=True):
            props = {"name": _text(True, z.name), **_window(True, z), "rules": [no_end]}
            features.append({"type": "Feature", "geometry": g, "properties": props})
        sa = _multi(np.array([service_area], dtype=object), exterior_cw=False)[0]
        features.append(
            {
                "type": "Feature",
                "geometry": sa,
                "properties": {"name": _text(True, SERVICE_AREA_NAME), "rules": [city]},
            }
        )
        return {
            "geofencing_zones": {"type": "FeatureCollection", "features": features},
            "global_rules": [
                {
                    "ride_start_allowed": False,
                    "ride_end_allowed": False,
                    "ride_through_allowed": True,
                }
            ],
        }
    no_ride = {"ride_allowed": False, "ride_through_allowed": True}
    city_rule = {"ride_allowed": True, "ride_through_allowed": True, "station_parking": True}
    for z, g in zip(np_zones, _multi(np_geoms, exterior_cw=True), strict=True):
        props = {"name": z.name, **_window(False, z), "rules": [no_ride]}
        features.append({"type": "Feature", "geometry": g, "properties": props})
    sa = round6(np.array([service_area], dtype=object))[0]
    rest = shapely.difference(sa, shapely.union_all(round6(np_geoms))) if len(np_geoms) else sa
    outside = shapely.difference(shapely.box(-180.0, -90.0, 180.0, 90.0), sa)
    for name, g, rule in (
        (SERVICE_AREA_NAME, rest, city_rule),
        (OUTSIDE_NAME, outside, no_ride),
    ):
        frag = _multi(np.array([g], dtype=object), exterior_cw=True)[0]
        features.append(
            {"type": "Feature", "geometry": frag, "properties": {"name": name, "rules": [rule]}}
        )
    return {"geofencing_zones": {"type": "FeatureCollection", "features": features}}


# --------------------------------------------------------------------------- validation


@cache
def _schema(version: str, feed: str) -> dict[str, Any]:
    return orjson.loads((SCHEMA_DIR / f"v{version}" / f"{feed}.json").read_bytes())


def _geometry_errors(feed: str, doc: Any, v3: bool) -> Iterable[str]:
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, Mapping):
        return
    wind = v3  # geofencing zones: 3.0 RFC 7946; 2.3 "clockwise ... the area enclosed"
    if feed == "station_information":
        for i, s in enumerate(data.get("stations") or []):
            if isinstance(s, Mapping) and "station_area" in s:
                sid = s.get("station_id", i)
                where = f"station {sid} station_area"  # plain RFC 7946 in both versions
                yield from check_rings(s["station_area"], where, exterior_ccw=True)
    elif feed == "geofencing_zones":
        zones = data.get("geofencing_zones")
        feats = zones.get("features") if isinstance(zones, Mapping) else None
        for i, f in enumerate(feats or []):
            if isinstance(f, Mapping):
                yield from check_rings(
                    f.get("geometry"), f"feature {i} geometry", exterior_ccw=wind
                )


def validate_gbfs_docs(
    docs: Mapping[str, Any], version: str, *, max_errors: int = 200
) -> list[str]:
    """Check GBFS documents (by feed name) against the bundled official schemas of
    ``version`` with a format checker, their rings (closed, 6 decimals, the version's
    winding) and that ``gbfs.json`` lists exactly the other documents. Returns the
    errors, one line each (at most ``max_errors``); empty means valid."""
    version = version.removeprefix("gbfs-")
    if version not in VERSIONS:
        raise ValueError(f"unknown GBFS version {version!r} (one of {', '.join(VERSIONS)})")
    v3 = version == "3.0"
    checker = format_checker()
    errors: list[str] = []
    for feed, doc in docs.items():
        if doc is None:
            errors.append(f"{feed}.json: missing")
            continue
        validator = jsonschema.Draft7Validator(_schema(version, feed), format_checker=checker)
        for err in validator.iter_errors(doc):
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            msg = err.message if len(err.message) <= 300 else err.message[:297] + "..."
            errors.append(f"{feed}.json: {where}: {msg}")
        errors.extend(f"{feed}.json: {m}" for m in _geometry_errors(feed, doc, v3))
        if len(errors) >= max_errors:
            return errors[:max_errors]
    disc = docs.get("gbfs")
    if isinstance(disc, Mapping) and isinstance(disc.get("data"), Mapping):
        data = disc["data"] if v3 else next(iter(disc["data"].values()), {})
        listed = {f.get("name") for f in (data.get("feeds") or []) if isinstance(f, Mapping)}
        served = set(docs) - {"gbfs"}
        if listed - served:
            errors.append(f"gbfs.json: lists files not served: {sorted(listed - served)}")
    return errors[:max_errors]


def validate_gbfs(out_dir: str | Path, version: str, *, max_errors: int = 200) -> list[str]:
    """:func:`validate_gbfs_docs` on the files a GBFS export wrote into ``out_dir``
    (every file ``gbfs.json`` may list, when present)."""
    out = Path(out_dir)
    docs: dict[str, Any] = {}
    errors: list[str] = []
    for feed in FEEDS:
        path = out / f"{feed}.json"
        if not path.is_file():
            docs[feed] = None
            continue
        try:
            docs[feed] = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            errors.append(f"{feed}.json: not JSON ({exc})")
    return errors + validate_gbfs_docs(
        {k: v for k, v in docs.items() if k not in {e.split(".")[0] for e in errors}},
        version,
        max_errors=max_errors,
    )
