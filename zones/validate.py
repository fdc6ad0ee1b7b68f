"""Zone-set validation: ``geofence zones validate FILE``.

:func:`validate` reads a GeoJSON FeatureCollection (DESIGN §3) and returns a
:class:`Report`: one :class:`Issue` per broken rule and feature, each naming the
feature (its id, ``#<index>`` when it has none, ``None`` for the file itself), a
stable kebab-case ``rule`` code, a message and a hint on how to fix it. Errors make
a file unfit to upload; warnings do not. The validator never raises on bad content:
whatever the bytes, it returns a report (only an unreadable path raises ``OSError``).

Rules (severity, code):

file level
    error   ``not-json``, ``not-feature-collection``, ``unsupported-crs``, ``no-features``
feature structure and properties
    error   ``not-a-feature``, ``missing-id``, ``bad-id-type``, ``duplicate-id``,
            ``unknown-kind``, ``bad-properties``, ``bad-property-type``,
            ``bad-active-period``
    warning ``missing-property`` (a parking box without ``fenced``: it defaults to false)
geometry
    error   ``missing-geometry``, ``bad-geometry-type`` (not a Polygon, or a
            MultiPolygon for a parking box), ``bad-geometry`` (malformed
            coordinates array), ``empty-geometry``, ``non-finite-coordinate``
            (NaN/Infinity, also numbers too large for a double), ``too-few-positions``,
            ``unclosed-ring``, ``lonlat-swapped``, ``lonlat-out-of-range``,
            ``zero-area``, ``self-intersection``, ``invalid-geometry`` (other GEOS
            validity failures: hole outside shell, nested shells, ...)
    warning ``clockwise-exterior``, ``counter-clockwise-hole`` (RFC 7946 winding;
            ``--fix`` rewinds them, see :func:`fix_winding`)
size (:class:`SizeLimits`; the service's ``GEOFENCE_ZONE_*`` settings)
    error   ``id-too-long``, ``name-too-long``, ``too-many-operators`` (operators or
            beacons of one zone), ``too-many-vertices`` (one zone), and for the file
            ``too-many-zones``, ``too-many-vertices-in-set``: a 10 MB id or name, a
            million operators or vertices would otherwise be stored, activated and
            then cost every nearby check (issue 19)
placement
    error   ``outside-service-area`` (the zone does not touch the city outline)
    warning ``partly-outside-service-area`` (a parking box straddling the outline)
    warning ``looks-like-gcj02``, ``looks-like-bd09`` (with a ``reference`` layer:
            the zone moved 100 m to 2.5 km from the reference zone with the same id,
            and reading it as GCJ-02 / BD-09 puts it back within 5 m)
parking boxes
    warning ``implausible-box-size`` (width, length or area outside
            :data:`BOX_WIDTH_M`, :data:`BOX_LENGTH_M`, :data:`BOX_AREA_M2`, measured
            on the minimum rotated rectangle in EPSG:4547 metres)
    error   ``overlapping-boxes`` (two parking boxes sharing more than
            :data:`OVERLAP_MIN_M2`; boxes that merely touch, along an edge or at a
            corner, are fine: adjacent painted boxes share a line. Active periods do
            not excuse an overlap: the index resolves overlaps without looking at
            time, and a replaced box belongs in a new zone-set version)

Speed: per-feature structure and property checks are one Python pass; geometry
construction, validity, winding, area, service-area, size and overlap checks are
vectorized shapely calls over all zones at once (an 18,000-zone file validates in
well under the 5 s budget).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeGuard

import numpy as np
import orjson
import shapely

__all__ = [
    "BOX_AREA_M2",
    "BOX_LENGTH_M",
    "BOX_WIDTH_M",
    "HINTS",
    "OVERLAP_MIN_M2",
    "SIZE_RULES",
    "Issue",
    "Report",
    "SizeLimits",
    "fix_winding",
    "load_geojson",
    "validate",
]

Severity = Literal["error", "warning"]

#: plausible parking-box width, length (metres) and area (m²); outside: a warning
BOX_WIDTH_M = (0.8, 6.0)
BOX_LENGTH_M = (2.0, 40.0)
BOX_AREA_M2 = (1.0, 240.0)
#: two parking boxes overlap when their intersection exceeds this (m²); less is touching
OVERLAP_MIN_M2 = 0.01
#: a zone (or a polygon part) smaller than this (m²) has zero area
ZERO_AREA_M2 = 1e-4
#: GCJ-02 / BD-09 suspicion: moved this far (m) from the reference zone ...
DATUM_SHIFT_RANGE_M = (100.0, 2500.0)
#: ... and reading it as GCJ-02 / BD-09 puts it back within this distance (m)
DATUM_MATCH_M = 5.0

KINDS = ("parking", "no_parking")


#: the rules of :class:`SizeLimits`
SIZE_RULES = frozenset(
    {
        "id-too-long",
        "name-too-long",
        "too-many-operators",
        "too-many-vertices",
        "too-many-zones",
        "too-many-vertices-in-set",
    }
)


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """Upload size rules. The defaults (the service's settings' defaults) pass the
    bundled Zhuhai set (ids of 13 characters, names of 16, 1 operator and 3 beacons,
    10 vertices a zone, 92,484 in all, 18,300 zones) by wide margins."""

    id_chars: int = 64
    name_chars: int = 200
    operators: int = 64
    vertices: int = 10_000
    set_vertices: int = 2_000_000
    zones: int = 60_000


_MAX_INT32 = 2**31 - 1
_WGS84_CRS_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
    "urn:ogc:def:crs:EPSG::4490",  # CGCS2000: within centimetres of WGS-84
    "EPSG:4490",
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

#: rule -> how to fix it (an issue may carry a more specific hint)
HINTS: dict[str, str] = {
    "not-json": "the file must be UTF-8 JSON; check for truncation or a stray character "
    "at the position given",
    "not-feature-collection": 'the top level must be {"type": "FeatureCollection", '
    '"features": [...]} (RFC 7946)',
    "unsupported-crs": "RFC 7946 files are WGS-84 lon/lat: reproject to WGS-84 and drop "
    'the "crs" member',
    "no-features": "a zone set without zones would reject every trip; export the zones",
    "not-a-feature": 'each element of "features" must be {"type": "Feature", "id": ..., '
    '"geometry": ..., "properties": {...}}',
    "missing-id": 'give the feature a unique string "id" (e.g. "ZH-XZ-000123")',
    "bad-id-type": 'ids are strings: quote it (e.g. "17" instead of 17)',
    "duplicate-id": "ids must be unique in a zone set: renumber one of the features",
    "unknown-kind": 'set properties.kind to "parking" or "no_parking"',
    "bad-properties": "properties must be a JSON object with kind, fenced, district, ...",
    "bad-property-type": "fix the property's value to the type DESIGN §3 gives it",
    "bad-active-period": "active_from must be before active_to (or set one to null)",
    "missing-property": 'add "fenced": true for an e-fenced box with park-in-box '
    "settlement, false otherwise",
    "missing-geometry": "give the feature a Polygon geometry",
    "bad-geometry-type": "parking boxes are Polygons; no-parking areas are Polygons or "
    "MultiPolygons",
    "bad-geometry": "coordinates must be rings of [lon, lat] number pairs",
    "empty-geometry": "give the polygon at least its exterior ring",
    "non-finite-coordinate": "replace NaN/Infinity with the real coordinate (JSON has no NaN)",
    "too-few-positions": "a ring needs at least 4 positions (3 corners and the first "
    "repeated at the end)",
    "unclosed-ring": "repeat the ring's first position as its last",
    "lonlat-swapped": "coordinates are [lat, lon]: swap them to [lon, lat] (RFC 7946 order)",
    "lonlat-out-of-range": "lon must be within ±180 and lat within ±90 degrees: is the "
    "file projected (metres) rather than WGS-84?",
    "zero-area": "the ring's corners are collinear or repeated: redraw the polygon",
    "self-intersection": "the outline crosses itself (a bowtie?): reorder the corners so "
    "the edges do not cross",
    "invalid-geometry": "fix the polygon's topology (holes inside the shell, parts "
    "disjoint); shapely.make_valid can help",
    "clockwise-exterior": "RFC 7946 wants exterior rings counter-clockwise: rerun with "
    "--fix --out FILE",
    "counter-clockwise-hole": "RFC 7946 wants holes clockwise: rerun with --fix --out FILE",
    "outside-service-area": "the zone is not in Zhuhai: check its coordinates and datum",
    "partly-outside-service-area": "check that the box is on land inside the city outline",
    "looks-like-gcj02": "the file seems to be in GCJ-02 (Amap/Tencent): re-export in "
    "WGS-84, or convert with geofence.crs.gcj02_to_wgs84",
    "looks-like-bd09": "the file seems to be in BD-09 (Baidu): re-export in WGS-84, or "
    "convert with geofence.crs.bd09_to_wgs84",
    "implausible-box-size": "boxes are typically 1.5-3 m wide and 4-20 m long: check the "
    "units and the corners",
    "overlapping-boxes": "parking boxes must not overlap: shrink, move or merge them",
    "id-too-long": "use a short, stable code as the id (e.g. ZH-XZ-000123)",
    "name-too-long": "shorten the name; put long descriptions elsewhere",
    "too-many-operators": "list the operators (or beacons) of this box only",
    "too-many-vertices": "simplify the outline (shapely.simplify) or split the area",
    "too-many-zones": "split the city into smaller zone sets, or raise GEOFENCE_ZONE_SET_ZONES_MAX",
    "too-many-vertices-in-set": "simplify the outlines, or raise GEOFENCE_ZONE_SET_VERTICES_MAX",
}


# ---------------------------------------------------------------------------- report
@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule: which feature, which rule, what is wrong, how to fix it."""

    severity: Severity
    feature: str | None
    rule: str
    message: str
    hint: str
    index: int | None = None  # position in "features", None for file-level issues

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """The outcome of :func:`validate`.

    ``ok`` is true when there is no error (warnings allowed). ``fixed`` lists what
    :func:`fix_winding` changed when the CLI ran with ``--fix``.
    """

    issues: list[Issue] = field(default_factory=list)
    n_features: int = 0
    source: str | None = None
    fixed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    def rules(self) -> set[str]:
        """The set of rule codes reported."""
        return {i.rule for i in self.issues}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "n_features": self.n_features,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "fixed": list(self.fixed),
            "issues": [i.to_dict() for i in self.issues],
        }

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        verdict = "OK" if self.ok else "FAILED"
        src = f"{self.source}: " if self.source else ""
        return (
            f"{src}{verdict}: {self.n_features} features, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings"
        )


class _Collector:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(
        self,
        severity: Severity,
        rule: str,
        message: str,
        *,
        feature: str | None = None,
        index: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.issues.append(
            Issue(severity, feature, rule, message, hint or HINTS.get(rule, ""), index)
        )

    def error(self, rule: str, message: str, **kw: Any) -> None:
        self.add("error", rule, message, **kw)

    def warning(self, rule: str, message: str, **kw: Any) -> None:
        self.add("warning", rule, message, **kw)


# ---------------------------------------------------------------------------- loading
class _NotJSON(Exception):
    pass


def _parse_json(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # the standard library accepts NaN / Infinity (not JSON, but common): parse them so
    # that the report can name the feature instead of stopping at "not JSON"
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _NotJSON(str(exc)) from None


def load_geojson(source: Mapping[str, Any] | str | Path | bytes) -> Any:
    """Read a GeoJSON document: a mapping is returned as is, bytes are parsed, a ``str``
    is JSON text when it starts with ``{`` or ``[`` and a file path otherwise.

    Raises ``OSError`` for an unreadable file and ``ValueError`` for text that is not
    JSON (``NaN``/``Infinity`` literals are accepted).
    """
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        data: bytes | str = bytes(source)
    elif isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        data = source
    else:
        data = Path(source).read_bytes()
    try:
        return _parse_json(data)
    except _NotJSON as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _source_name(source: Any) -> str | None:
    if isinstance(source, Path):
        return str(source)
    if isinstance(source, str) and source.lstrip()[:1] not in ("{", "["):
        return source
    return None


# ---------------------------------------------------------------------------- helpers
def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, list | tuple):
        return "array"
    return type(v).__name__


def _a_type(v: Any) -> str:
    """The JSON type of ``v`` with its article: "an array", "a string", "null"."""
    t = _type_name(v)
    return t if t == "null" else ("an " if t[0] in "aeiou" else "a ") + t


def _short(v: Any, n: int = 40) -> str:
    try:
        r = repr(v)
    except Exception:  # pragma: no cover - exotic objects in a mapping
        r = "<unprintable>"
    return r if len(r) <= n else r[: n - 1] + "…"


def _is_seq(v: Any) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(v, list | tuple)


def _parse_time(v: str) -> float | None:
    if not _RFC3339.match(v):
        return None
    try:
        return datetime.fromisoformat(v).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


_SEQ_TYPES = frozenset({list, tuple})
_NUM_TYPES = frozenset({float, int})


def _ring_array(ring: Any) -> tuple[np.ndarray | None, str | None, str]:
    """Check one ring; return (n x 2 array, None, "") or (None, rule, detail)."""
    if not _is_seq(ring):
        return None, "bad-geometry", f"is {_a_type(ring)}, not an array of positions"
    # fast path: a list of [lon, lat] (or [lon, lat, alt]) lists of plain numbers
    fast = (
        bool(ring)
        and {type(pos) for pos in ring} <= _SEQ_TYPES
        and len({len(pos) for pos in ring} - {2, 3}) == 0
        and len({len(pos) for pos in ring}) == 1
        and {type(v) for pos in ring for v in pos} <= _NUM_TYPES
    )
    if not fast:
        for k, pos in enumerate(ring):
            if not _is_seq(pos) or not 2 <= len(pos) <= 3:
                return None, "bad-geometry", f"position {k} is {_short(pos)}, not [lon, lat]"
            for v in pos:
                if not _is_number(v):
                    return None, "bad-geometry", f"position {k} has {_a_type(v)} {_short(v)}"
        if not ring:
            return None, "too-few-positions", "has no positions; a ring needs at least 4"
        if len({len(pos) for pos in ring}) > 1:
            return None, "bad-geometry", "mixes 2- and 3-coordinate positions"
    try:
        a = np.array(ring, dtype=np.float64)[:, :2]
    except OverflowError:
        return None, "non-finite-coordinate", "has a number too large for a double"
    if not np.isfinite(a).all():
        k = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        return None, "non-finite-coordinate", f"position {k} is {ring[k]!r}"
    closed = len(a) > 1 and ring[0][0] == ring[-1][0] and ring[0][1] == ring[-1][1]
    if len(a) < 4:
        extra = "" if closed else " and is not closed"
        return None, "too-few-positions", f"has {len(a)} positions{extra}; a ring needs 4+"
    if not closed:
        return (
            None,
            "unclosed-ring",
            f"is not closed: first position {a[0].tolist()} != last {a[-1].tolist()}",
        )
    return a, None, ""


def _geometry_rings(
    geom: Any, kind: Any
) -> tuple[list[list[np.ndarray]] | None, str, list[tuple[str, str]]]:
    """Structural check of a feature's geometry.

    Returns (parts, geometry type, problems): ``parts`` is a list of polygons, each a
    list of rings (exterior first) as n x 2 arrays, or ``None`` when a problem stops
    the geometry checks; problems are (rule, message).
    """
    if geom is None:
        return None, "", [("missing-geometry", "has no geometry")]
    if not isinstance(geom, Mapping):
        return None, "", [("bad-geometry", f"geometry is {_a_type(geom)}, not an object")]
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        polys_raw = [coords]
        where = ["Polygon"]
    elif gtype == "MultiPolygon":
        if kind == "parking":
            return (
                None,
                gtype,
                [
                    (
                        "bad-geometry-type",
                        "is a parking box with a MultiPolygon geometry; a box is one Polygon",
                    )
                ],
            )
        if not _is_seq(coords):
            return None, gtype, [("bad-geometry", "MultiPolygon coordinates are not an array")]
        if not coords:
            return None, gtype, [("empty-geometry", "MultiPolygon has no polygons")]
        polys_raw = list(coords)
        where = [f"MultiPolygon part {k}" for k in range(len(polys_raw))]
    else:
        return (
            None,
            str(gtype),
            [("bad-geometry-type", f"geometry type {_short(gtype)} is not Polygon")],
        )
    parts: list[list[np.ndarray]] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for poly, w in zip(polys_raw, where, strict=True):
        if not _is_seq(poly):
            problems.append(("bad-geometry", f"{w} coordinates are not an array of rings"))
            continue
        if not poly:
            problems.append(("empty-geometry", f"{w} has no rings"))
            continue
        rings: list[np.ndarray] = []
        for r, ring in enumerate(poly):
            a, rule, detail = _ring_array(ring)
            name = f"{w} exterior ring" if r == 0 else f"{w} hole {r}"
            if a is None:
                if rule not in seen:  # one issue per rule and feature
                    seen.add(str(rule))
                    problems.append((str(rule), f"{name} {detail}"))
            else:
                rings.append(a)
        parts.append(rings)
    if problems:
        return None, gtype, problems
    return parts, gtype, []


def _range_problem(coords: np.ndarray) -> tuple[str, str] | None:
    """(rule, message) when a zone's coordinates are beyond lon ±180 / lat ±90."""
    lon, lat = coords[:, 0], coords[:, 1]
    if not ((np.abs(lon) > 180).any() or (np.abs(lat) > 90).any()):
        return None
    if (np.abs(lat) <= 180).all() and (np.abs(lon) <= 90).all():
        worst = float(lat[np.argmax(np.abs(lat))])
        return (
            "lonlat-swapped",
            f"latitude {worst:g} is beyond ±90 while the swapped pair is in range",
        )
    k = int(np.flatnonzero((np.abs(lon) > 180) | (np.abs(lat) > 90))[0])
    return (
        "lonlat-out-of-range",
        f"position ({float(lon[k]):g}, {float(lat[k]):g}) is beyond lon ±180 / lat ±90",
    )


def _range_filter(z: _Zones, out: _Collector | None) -> _Zones:
    """Drop zones with coordinates out of range (vectorized test), reporting them."""
    counts = [sum(len(r) for p in parts for r in p) for parts in z.parts]
    coords = np.concatenate([r for parts in z.parts for p in parts for r in p])
    bad = (np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90)
    if not bad.any():
        return z
    zone_of = np.repeat(np.arange(len(counts)), counts)
    drop = set(np.unique(zone_of[bad]).tolist())
    starts = np.r_[0, np.cumsum(counts)]
    kept = _Zones()
    for k in range(len(z.parts)):
        if k in drop:
            problem = _range_problem(coords[starts[k] : starts[k + 1]])
            if out is not None and problem is not None:
                out.error(problem[0], problem[1], feature=z.label[k], index=z.feat[k])
            continue
        kept.feat.append(z.feat[k])
        kept.label.append(z.label[k])
        kept.kind.append(z.kind[k])
        kept.parts.append(z.parts[k])
        kept.multi.append(z.multi[k])
    return kept


# ---------------------------------------------------------------------------- properties
def _check_properties(props: Any, label: str, index: int, out: _Collector) -> str | None:
    """Check DESIGN §3 properties; return the kind (None when missing or unknown)."""
    if props is None:
        out.error(
            "unknown-kind",
            "has no properties (so no kind)",
            feature=label,
            index=index,
        )
        return None
    if not isinstance(props, Mapping):
        out.error(
            "bad-properties",
            f"properties is {_a_type(props)}, not an object",
            feature=label,
            index=index,
        )
        return None

    def bad(name: str, want: str, v: Any) -> None:
        out.error(
            "bad-property-type",
            f"property {name!r} must be {want}, got {_type_name(v)} {_short(v)}",
            feature=label,
            index=index,
            hint=f"set {name!r} to {want}",
        )

    kind_v = props.get("kind")
    kind: str | None = None
    if "kind" not in props or kind_v is None:
        out.error("unknown-kind", "has no 'kind' property", feature=label, index=index)
    elif not isinstance(kind_v, str) or kind_v not in KINDS:
        out.error(
            "unknown-kind",
            f"kind {_short(kind_v)} is not 'parking' or 'no_parking'",
            feature=label,
            index=index,
        )
    else:
        kind = kind_v

    if "fenced" in props:
        if props["fenced"] is not None and not isinstance(props["fenced"], bool):
            bad("fenced", "a boolean", props["fenced"])
    elif kind == "parking":
        out.warning(
            "missing-property",
            "parking box has no 'fenced' property: it will be treated as not fenced",
            feature=label,
            index=index,
        )
    for name in ("district", "name"):
        v = props.get(name)
        if v is not None and not isinstance(v, str):
            bad(name, "a string", v)
    cap = props.get("capacity")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= _MAX_INT32
    ):
        bad("capacity", "an integer >= 0", cap)
    for name in ("operators", "beacons"):
        v = props.get(name)
        if v is not None and (not _is_seq(v) or not all(isinstance(s, str) for s in v)):
            bad(name, "a list of strings", v)
    h = props.get("heading_deg")
    if h is not None and not (_is_number(h) and math.isfinite(h) and 0 <= h < 360):
        bad("heading_deg", "a number in [0, 360) or null", h)
    times: dict[str, float | None] = {}
    for name in ("active_from", "active_to"):
        v = props.get(name)
        times[name] = None
        if v is None:
            continue
        t = _parse_time(v) if isinstance(v, str) else None
        if t is None:
            bad(name, "an RFC 3339 time with a UTC offset (e.g. 2024-05-01T00:00:00+08:00)", v)
        times[name] = t
    a, b = times["active_from"], times["active_to"]
    if a is not None and b is not None and a >= b:
        out.error(
            "bad-active-period",
            f"active_from {props['active_from']!r} is not before active_to {props['active_to']!r}",
            feature=label,
            index=index,
        )
    return kind


def _check_sizes(props: Any, label: str, index: int, out: _Collector, limits: SizeLimits) -> None:
    """The size rules of a feature's properties (name, operators, beacons)."""
    if not isinstance(props, Mapping):
        return
    name = props.get("name")
    if isinstance(name, str) and len(name) > limits.name_chars:
        out.error(
            "name-too-long",
            f"name of {len(name)} characters; at most {limits.name_chars}",
            feature=label,
            index=index,
        )
    for key in ("operators", "beacons"):
        v = props.get(key)
        if _is_seq(v) and len(v) > limits.operators:
            out.error(
                "too-many-operators",
                f"{len(v)} {key}; a zone lists at most {limits.operators}",
                feature=label,
                index=index,
            )


# ---------------------------------------------------------------------------- geometry
@dataclass
class _Zones:
    """The zones whose structure passed, ready for vectorized checks."""

    feat: list[int] = field(default_factory=list)  # feature index
    label: list[str] = field(default_factory=list)
    kind: list[str | None] = field(default_factory=list)
    parts: list[list[list[np.ndarray]]] = field(default_factory=list)
    multi: list[bool] = field(default_factory=list)


def _build(z: _Zones) -> tuple[np.ndarray, ...]:
    """Vectorized shapely construction.

    Returns (geometry per zone, polygons, zone of each polygon, rings, ring is exterior,
    zone of each ring).
    """
    ring_arrays: list[np.ndarray] = []
    ring_poly: list[int] = []
    ring_ext: list[bool] = []
    poly_zone: list[int] = []
    for zi, parts in enumerate(z.parts):
        for rings in parts:
            p = len(poly_zone)
            poly_zone.append(zi)
            for r, a in enumerate(rings):
                ring_arrays.append(a)
                ring_poly.append(p)
                ring_ext.append(r == 0)
    lengths = np.fromiter((len(a) for a in ring_arrays), dtype=np.int64, count=len(ring_arrays))
    coords = np.concatenate(ring_arrays)
    rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(ring_arrays)), lengths))
    polys = shapely.polygons(rings, indices=np.asarray(ring_poly, dtype=np.int64))
    pz = np.asarray(poly_zone, dtype=np.int64)
    multi = np.asarray(z.multi, dtype=bool)
    geoms = np.empty(len(z.parts), dtype=object)
    # single-polygon zones (one polygon each, in order)
    single = ~multi[pz]
    geoms[pz[single]] = polys[single]
    if multi.any():
        sel = multi[pz]
        zones_m = np.flatnonzero(multi)
        remap = np.full(len(multi), -1, dtype=np.int64)
        remap[zones_m] = np.arange(len(zones_m))
        geoms[zones_m] = shapely.multipolygons(polys[sel], indices=remap[pz[sel]])
    ring_zone = pz[np.asarray(ring_poly, dtype=np.int64)]
    return geoms, polys, pz, rings, np.asarray(ring_ext, dtype=bool), ring_zone


def _m2_per_deg2(lat: np.ndarray) -> np.ndarray:
    return 111_320.0 * 110_574.0 * np.cos(np.radians(np.clip(lat, -89.9, 89.9)))


def _project(geoms: np.ndarray) -> np.ndarray:
    from geofence import crs

    def fn(c: np.ndarray) -> np.ndarray:
        x, y = crs.project(c[:, 0], c[:, 1])
        return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])

    return shapely.transform(geoms, fn)


def _first_three(rects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    coords, idx = shapely.get_coordinates(rects, return_index=True)
    n = len(rects)
    counts = np.bincount(idx, minlength=n)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    good = counts >= 4
    s = starts[good]
    return good, coords[s], coords[s + 1], coords[s + 2]


# ---------------------------------------------------------------------------- validate
def validate(
    source: Mapping[str, Any] | str | Path | bytes,
    *,
    reference: Mapping[str, Any] | str | Path | None = None,
    service_area: Any = None,
    limits: SizeLimits | None = None,
) -> Report:
    """Validate a zone set; see the module docstring for the rules.

    ``source``: a FeatureCollection mapping, JSON bytes, JSON text, or a file path.
    ``reference``: an earlier zone set (same forms) to compare against by id, which
    enables the GCJ-02 / BD-09 checks; a reference that is not a FeatureCollection
    raises ``ValueError``. ``service_area``: a shapely geometry in WGS-84 (default
    :func:`zones.districts.service_area`, the Zhuhai city outline). ``limits``: the
    size rules (default :class:`SizeLimits`).
    """
    report = Report(source=_source_name(source))
    out = _Collector()
    try:
        doc = load_geojson(source)
    except ValueError as exc:
        out.error("not-json", f"the file is {exc}")
        report.issues = out.issues
        return report
    _validate_doc(
        doc,
        out,
        report,
        reference=reference,
        service_area=service_area,
        limits=limits or SizeLimits(),
    )
    order = {id(iss): k for k, iss in enumerate(out.issues)}
    report.issues = sorted(
        out.issues, key=lambda i: (-1 if i.index is None else i.index, order[id(i)])
    )
    return report


def _validate_doc(
    doc: Any,
    out: _Collector,
    report: Report,
    *,
    reference: Any,
    service_area: Any,
    limits: SizeLimits,
) -> None:
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        what = (
            f"its type is {_short(doc.get('type'))}"
            if isinstance(doc, Mapping)
            else f"the top level is {_a_type(doc)}"
        )
        out.error("not-feature-collection", f"not a GeoJSON FeatureCollection: {what}")
        return
    features = doc.get("features")
    if not _is_seq(features):
        out.error(
            "not-feature-collection",
            f"'features' is {_a_type(features)}, not an array",
        )
        return
    report.n_features = len(features)
    crs_member = doc.get("crs")
    if crs_member is not None:
        name = None
        if isinstance(crs_member, Mapping) and isinstance(crs_member.get("properties"), Mapping):
            name = crs_member["properties"].get("name")
        if name not in _WGS84_CRS_NAMES:
            out.error("unsupported-crs", f"the file declares crs {_short(name or crs_member)}")
    if not features:
        out.error("no-features", "the FeatureCollection has no features")
        return
    if len(features) > limits.zones:
        out.error(
            "too-many-zones",
            f"the file has {len(features)} features; a zone set holds at most {limits.zones}",
        )
        return

    zones = _Zones()
    set_vertices = 0
    first_index: dict[str, int] = {}
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
            what = (
                f"its type is {_short(feat.get('type'))}"
                if isinstance(feat, Mapping)
                else f"it is {_a_type(feat)}"
            )
            out.error(
                "not-a-feature", f"feature #{i} is not a Feature: {what}", feature=f"#{i}", index=i
            )
            continue
        raw_id = feat.get("id")
        label = f"#{i}"
        if raw_id is None or raw_id == "":
            hint = None
            props = feat.get("properties")
            if isinstance(props, Mapping) and props.get("id") not in (None, ""):
                hint = 'move properties.id to the Feature\'s top-level "id" member'
            out.error("missing-id", f"feature #{i} has no id", feature=label, index=i, hint=hint)
        elif isinstance(raw_id, str):
            label = raw_id
        elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
            label = str(raw_id)
            out.error(
                "bad-id-type",
                f"id {raw_id} is a number, not a string",
                feature=label,
                index=i,
                hint=f'write "id": "{raw_id}"',
            )
        else:
            out.error(
                "bad-id-type",
                f"id {_short(raw_id)} is {_a_type(raw_id)}, not a string",
                feature=label,
                index=i,
            )
        if len(label) > limits.id_chars:
            out.error(
                "id-too-long",
                f"id of {len(label)} characters; at most {limits.id_chars}",
                feature=label[: limits.id_chars] + "…",
                index=i,
            )
            label = label[: limits.id_chars] + "…"
        if label != f"#{i}":
            if label in first_index:
                out.error(
                    "duplicate-id",
                    f"id {label!r} is also used by feature #{first_index[label]} (this is #{i})",
                    feature=label,
                    index=i,
                )
            else:
                first_index[label] = i
        kind = _check_properties(feat.get("properties"), label, i, out)
        _check_sizes(feat.get("properties"), label, i, out, limits)
        parts, gtype, problems = _geometry_rings(feat.get("geometry"), kind)
        for rule, msg in problems:
            out.error(rule, msg, feature=label, index=i)
        if parts is None:
            continue
        n_vertices = sum(len(r) for p in parts for r in p)
        set_vertices += n_vertices
        if n_vertices > limits.vertices:
            out.error(
                "too-many-vertices",
                f"has {n_vertices} vertices; a zone has at most {limits.vertices}",
                feature=label,
                index=i,
            )
            continue
        zones.feat.append(i)
        zones.label.append(label)
        zones.kind.append(kind)
        zones.parts.append(parts)
        zones.multi.append(gtype == "MultiPolygon")

    if set_vertices > limits.set_vertices:
        out.error(
            "too-many-vertices-in-set",
            f"the zones have {set_vertices} vertices in all; a zone set at most "
            f"{limits.set_vertices}",
        )
        return
    if zones.feat:
        zones = _range_filter(zones, out)
    if zones.feat:
        _geometry_checks(zones, out, reference=reference, service_area=service_area)


def _geometry_checks(z: _Zones, out: _Collector, *, reference: Any, service_area: Any) -> None:
    n = len(z.feat)
    geoms, polys, poly_zone, rings, ring_ext, ring_zone = _build(z)

    # zero area: a polygon part whose convex hull (or own area) is ~0 m²
    cen = shapely.get_coordinates(shapely.centroid(shapely.envelope(polys)))
    scale = _m2_per_deg2(cen[:, 1])
    hull_m2 = shapely.area(shapely.convex_hull(polys)) * scale
    valid_part = shapely.is_valid(polys)
    part_zero = (hull_m2 < ZERO_AREA_M2) | (
        valid_part & (shapely.area(polys) * scale < ZERO_AREA_M2)
    )
    zero = np.zeros(n, dtype=bool)
    zero[poly_zone[part_zero]] = True

    reasons = shapely.is_valid_reason(geoms)
    valid = np.array([r == "Valid Geometry" for r in reasons], dtype=bool) & ~zero
    for k in np.flatnonzero(zero).tolist():
        out.error(
            "zero-area",
            "has zero area (its corners are collinear or repeated)",
            feature=z.label[k],
            index=z.feat[k],
        )
    for k in np.flatnonzero(~valid & ~zero).tolist():
        reason = str(reasons[k])
        rule = "self-intersection" if "self-intersection" in reason.lower() else "invalid-geometry"
        out.error(rule, f"invalid polygon: {reason}", feature=z.label[k], index=z.feat[k])

    # service area
    if service_area is None:
        from zones.districts import service_area as _default_area

        service_area = _default_area()
    shapely.prepare(service_area)
    vk = np.flatnonzero(valid)
    inter = np.zeros(n, dtype=bool)
    covered = np.zeros(n, dtype=bool)
    if len(vk):
        inter[vk] = shapely.intersects(service_area, geoms[vk])
        covered[vk] = shapely.covers(service_area, geoms[vk])
    kind = np.array([k or "" for k in z.kind])
    outside = valid & ~inter
    swapped_zone = np.zeros(n, dtype=bool)
    if outside.any():
        ok_ = np.flatnonzero(outside)
        swapped = shapely.transform(geoms[ok_], lambda c: c[:, ::-1].copy())
        swap_in = shapely.intersects(service_area, swapped)
        for k, s in zip(ok_.tolist(), swap_in.tolist(), strict=True):
            c = shapely.centroid(geoms[k])
            if s:
                swapped_zone[k] = True
                out.error(
                    "lonlat-swapped",
                    f"lies outside the service area at ({c.x:.5f}, {c.y:.5f}) but inside it "
                    "with lon and lat swapped",
                    feature=z.label[k],
                    index=z.feat[k],
                )
            else:
                out.error(
                    "outside-service-area",
                    f"lies outside the service area, around lon {c.x:.5f} lat {c.y:.5f}",
                    feature=z.label[k],
                    index=z.feat[k],
                )
    for k in np.flatnonzero(valid & inter & ~covered & (kind == "parking")).tolist():
        out.warning(
            "partly-outside-service-area",
            "parking box crosses the service-area outline",
            feature=z.label[k],
            index=z.feat[k],
        )

    # winding (RFC 7946): exterior CCW, holes CW; only for valid zones
    # (not for zones read as lon/lat swapped: swapping reverses their rings)
    rv = (valid & ~swapped_zone)[ring_zone]
    ccw = np.zeros(len(rings), dtype=bool)
    ccw[rv] = shapely.is_ccw(rings[rv])
    bad_ext = rv & ring_ext & ~ccw
    bad_hole = rv & ~ring_ext & ccw
    for rule, mask, what in (
        ("clockwise-exterior", bad_ext, "exterior ring"),
        ("counter-clockwise-hole", bad_hole, "hole"),
    ):
        zs, counts = np.unique(ring_zone[mask], return_counts=True)
        for k, c in zip(zs.tolist(), counts.tolist(), strict=True):
            plural = f"{c} {what}s are" if c > 1 else f"its {what} is"
            direction = "clockwise" if what == "exterior ring" else "counter-clockwise"
            out.warning(rule, f"{plural} {direction}", feature=z.label[k], index=z.feat[k])

    # metric checks on parking boxes inside the service area
    pk = np.flatnonzero(valid & inter & (kind == "parking"))
    if len(pk):
        _box_checks(z, geoms, pk, out)

    if reference is not None:
        _datum_checks(z, geoms, valid, reference, out)


def _box_checks(z: _Zones, geoms: np.ndarray, pk: np.ndarray, out: _Collector) -> None:
    gm = _project(geoms[pk])
    # a ring valid in lon/lat may touch itself once projected (rounding at the
    # micrometre): repair those copies so the metric checks below cannot fail on them
    broken = ~shapely.is_valid(gm)
    if broken.any():
        gm[broken] = shapely.make_valid(gm[broken])
    area = shapely.area(gm)
    rects = shapely.oriented_envelope(gm)
    good, p0, p1, p2 = _first_three(rects)
    width = np.zeros(len(pk))
    length = np.zeros(len(pk))
    a = np.hypot(*(p1 - p0).T)
    b = np.hypot(*(p2 - p1).T)
    width[good] = np.minimum(a, b)
    length[good] = np.maximum(a, b)
    implausible = (
        (width < BOX_WIDTH_M[0])
        | (width > BOX_WIDTH_M[1])
        | (length < BOX_LENGTH_M[0])
        | (length > BOX_LENGTH_M[1])
        | (area < BOX_AREA_M2[0])
        | (area > BOX_AREA_M2[1])
    )
    for j in np.flatnonzero(implausible):
        k = int(pk[j])
        out.warning(
            "implausible-box-size",
            f"box is {width[j]:.2f} m wide, {length[j]:.2f} m long, {area[j]:.2f} m² "
            f"(plausible: width {BOX_WIDTH_M[0]}-{BOX_WIDTH_M[1]} m, length "
            f"{BOX_LENGTH_M[0]}-{BOX_LENGTH_M[1]} m, area {BOX_AREA_M2[0]}-{BOX_AREA_M2[1]} m²)",
            feature=z.label[k],
            index=z.feat[k],
        )

    # overlaps: candidate pairs from the tree, then the true intersection area
    tree = shapely.STRtree(gm)
    left, right = tree.query(gm, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return
    shared = shapely.area(shapely.intersection(gm[left], gm[right]))
    hit = shared > OVERLAP_MIN_M2
    for a_, b_, s in zip(
        left[hit].tolist(), right[hit].tolist(), shared[hit].tolist(), strict=True
    ):
        first, second = sorted((int(pk[a_]), int(pk[b_])), key=lambda k: z.feat[k])
        out.error(
            "overlapping-boxes",
            f"overlaps parking box {z.label[first]!r} (feature #{z.feat[first]}) by {s:.2f} m²",
            feature=z.label[second],
            index=z.feat[second],
        )


def _reference_centroids(reference: Any) -> dict[str, tuple[float, float]]:
    try:
        doc = load_geojson(reference)
    except ValueError as exc:
        raise ValueError(f"reference: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise ValueError("reference: not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not _is_seq(features):
        raise ValueError("reference: 'features' is not an array")
    z = _Zones()
    for feat in features:
        if not isinstance(feat, Mapping):
            continue
        fid = feat.get("id")
        if isinstance(fid, bool) or not isinstance(fid, str | int) or fid == "":
            continue
        parts, gtype, _ = _geometry_rings(feat.get("geometry"), None)
        if parts is None:
            continue
        z.feat.append(len(z.feat))
        z.label.append(str(fid))
        z.kind.append(None)
        z.parts.append(parts)
        z.multi.append(gtype == "MultiPolygon")
    if z.parts:
        z = _range_filter(z, None)
    if not z.parts:
        return {}
    geoms = _build(z)[0]
    cen = shapely.get_coordinates(shapely.centroid(geoms))
    return {lab: (float(x), float(y)) for lab, (x, y) in zip(z.label, cen, strict=True)}


def _datum_checks(
    z: _Zones, geoms: np.ndarray, valid: np.ndarray, reference: Any, out: _Collector
) -> None:
    from geofence import crs

    ref = _reference_centroids(reference)
    ks = [k for k in np.flatnonzero(valid).tolist() if z.label[k] in ref]
    if not ks:
        return
    cen = shapely.get_coordinates(shapely.centroid(geoms[ks]))
    ref_c = np.array([ref[z.label[k]] for k in ks])
    rx, ry = crs.project(ref_c[:, 0], ref_c[:, 1])
    x, y = crs.project(cen[:, 0], cen[:, 1])
    moved = np.hypot(np.asarray(x) - rx, np.asarray(y) - ry)
    cand = (moved >= DATUM_SHIFT_RANGE_M[0]) & (moved <= DATUM_SHIFT_RANGE_M[1])
    if not cand.any():
        return
    lon, lat = cen[cand, 0], cen[cand, 1]
    crx, cry = np.asarray(rx)[cand], np.asarray(ry)[cand]
    found = np.zeros(int(cand.sum()), dtype=object)
    for name, conv in (("gcj02", crs.gcj02_to_wgs84), ("bd09", crs.bd09_to_wgs84)):
        wl, wa = conv(lon, lat)
        wx, wy = crs.project(np.asarray(wl, dtype=float), np.asarray(wa, dtype=float))
        d = np.hypot(np.asarray(wx) - crx, np.asarray(wy) - cry)
        hit = (d <= DATUM_MATCH_M) & (found == 0)
        found[hit] = name
    idx = np.flatnonzero(cand)
    for j, name in enumerate(found.tolist()):
        if not name:
            continue
        k = ks[idx[j]]
        label = "GCJ-02" if name == "gcj02" else "BD-09"
        out.warning(
            f"looks-like-{name}",
            f"is {moved[idx[j]]:.0f} m from the reference zone with the same id; read as "
            f"{label} it is within {DATUM_MATCH_M:g} m of it",
            feature=z.label[k],
            index=z.feat[k],
        )


# ---------------------------------------------------------------------------- fixing
def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def rewind(fc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Like :func:`fix_winding`, also returning one line per feature it changed."""
    doc = dict(fc)
    features = fc.get("features")
    if not _is_seq(features):
        return doc, []
    fixed: list[str] = []
    new_features: list[Any] = []
    for i, feat in enumerate(features):
        new_features.append(feat)
        if not isinstance(feat, Mapping):
            continue
        geom = feat.get("geometry")
        if not isinstance(geom, Mapping) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        coords = geom.get("coordinates")
        if not _is_seq(coords):
            continue
        polys = [coords] if geom["type"] == "Polygon" else list(coords)
        n_ext = n_hole = 0
        new_polys: list[Any] = []
        for poly in polys:
            if not _is_seq(poly):
                new_polys.append(poly)
                continue
            new_rings: list[Any] = []
            for r, ring in enumerate(poly):
                a, _, _ = _ring_array(ring)
                if a is None:
                    new_rings.append(ring)
                    continue
                s = _signed_area(a)
                if (r == 0 and s < 0) or (r > 0 and s > 0):
                    new_rings.append(list(ring)[::-1])
                    if r == 0:
                        n_ext += 1
                    else:
                        n_hole += 1
                else:
                    new_rings.append(ring)
            new_polys.append(new_rings)
        if not (n_ext or n_hole):
            continue
        new_geom = dict(geom)
        new_geom["coordinates"] = new_polys[0] if geom["type"] == "Polygon" else new_polys
        new_feat = dict(feat)
        new_feat["geometry"] = new_geom
        new_features[-1] = new_feat
        fid = feat.get("id")
        label = str(fid) if isinstance(fid, str | int) and fid != "" else f"#{i}"
        what = []
        if n_ext:
            what.append(f"{n_ext} exterior ring{'s' if n_ext > 1 else ''} to counter-clockwise")
        if n_hole:
            what.append(f"{n_hole} hole{'s' if n_hole > 1 else ''} to clockwise")
        fixed.append(f"{label}: rewound {' and '.join(what)}")
    doc["features"] = new_features
    return doc, fixed


def fix_winding(fc: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``fc`` with RFC 7946 winding: exterior rings counter-clockwise,
    holes clockwise. Malformed rings are left as they are; the input is not modified
    (unchanged features are shared with it)."""
    return rewind(fc)[0]


def dumps_geojson(doc: Any) -> bytes:
    """Serialize a FeatureCollection as compact UTF-8 JSON (NaN written as null)."""
    return orjson.dumps(doc) + b"\n"


# ---------------------------------------------------------------------------- command line
def render(report: Report, console: Any, *, limit: int = 200) -> None:
    """Print ``report`` as a rich table (at most ``limit`` rows, 0 = all) and a summary."""
    from rich.table import Table

    for line in report.fixed:
        console.print(f"fixed {line}", markup=False, highlight=False)
    if report.issues:
        table = Table(show_lines=False, header_style="bold")
        table.add_column("severity")
        table.add_column("feature", overflow="fold")
        table.add_column("rule", no_wrap=True)
        table.add_column("message", overflow="fold")
        table.add_column("hint", overflow="fold")
        shown = report.issues if limit <= 0 else report.issues[:limit]
        for iss in shown:
            style = "red" if iss.severity == "error" else "yellow"
            table.add_row(
                f"[{style}]{iss.severity}[/{style}]",
                iss.feature if iss.feature is not None else "(file)",
                iss.rule,
                iss.message,
                iss.hint,
            )
        console.print(table)
        if len(shown) < len(report.issues):
            console.print(
                f"… and {len(report.issues) - len(shown)} more issues (--limit 0 shows all, "
                "--json prints them as JSON)",
                highlight=False,
            )
    style = "green" if report.ok else "red"
    console.print(f"[{style}]{report.summary()}[/{style}]", highlight=False, soft_wrap=True)


def run_cli(
    file: Path,
    *,
    as_json: bool = False,
    fix: bool = False,
    out: Path | None = None,
    reference: Path | None = None,
    limit: int = 200,
) -> int:
    """``geofence zones validate``: returns the exit code (0 ok, 1 errors, 2 usage)."""
    import sys

    from rich.console import Console

    console = Console()

    def usage(msg: str) -> int:
        sys.stderr.write(f"error: {msg}\n")
        return 2

    if not file.is_file():
        return usage(f"{file}: no such file")
    if reference is not None and not reference.is_file():
        return usage(f"--reference {reference}: no such file")
    if fix and out is None:
        return usage("--fix needs --out FILE (the input is never overwritten)")
    if out is not None and not fix:
        return usage("--out is only used with --fix")
    try:
        data = file.read_bytes()
    except OSError as exc:
        return usage(f"{file}: cannot read ({exc.strerror})")
    fixed: list[str] = []
    target: Any = data
    if fix:
        try:
            doc = _parse_json(data)
        except _NotJSON:
            doc = None
        if isinstance(doc, Mapping) and doc.get("type") == "FeatureCollection":
            target, fixed = rewind(doc)
            assert out is not None
            try:
                out.write_bytes(dumps_geojson(target))
            except OSError as exc:
                return usage(f"--out {out}: cannot write ({exc.strerror})")
            if not as_json:
                what = f"{len(fixed)} features rewound" if fixed else "nothing to rewind"
                console.print(f"fix: {what}; wrote {out}", highlight=False, markup=False)
        elif not as_json:
            console.print("fix: not a FeatureCollection, nothing written", highlight=False)
    try:
        report = validate(target, reference=reference)
    except (ValueError, OSError) as exc:  # only the reference can raise
        return usage(str(exc))
    report.source = str(out) if fixed or (fix and target is not data) else str(file)
    report.fixed = fixed
    if as_json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        render(report, console, limit=limit)
    return 0 if report.ok else 1
