"""Request and response models (pydantic), with the examples the OpenAPI document shows.

Request bodies of the hot routes are ``TypedDict`` schemas validated straight from
the raw bytes by a ``TypeAdapter`` (pydantic-core parses and checks in one pass and
hands back plain dicts, which is what :meth:`geofence.Check.from_mapping` reads):
several times faster than model instances for a 10,000-check batch. Response
models are only documentation: routes return JSON built by the engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    WithJsonSchema,
    with_config,
)
from typing_extensions import TypedDict

from geofence.decisions.inputs import MAX_DEVICE_CLASS, OUTCOMES, QUALITIES, REASONS
from geofence.rfc3339 import parse_rfc3339

__all__ = [
    "MAX_FIXES",
    "BatchRequest",
    "BatchResponse",
    "CheckRecord",
    "CheckRequest",
    "Decision",
    "Fix",
    "PolicyActivation",
    "PolicyInfo",
    "PolicyList",
    "Problem",
    "QueryTime",
    "Stats",
    "ZoneSetCreated",
    "ZoneSetInfo",
    "ZoneSetList",
    "check_adapter",
    "policy_document_schema",
    "request_schemas",
]

MAX_FIXES = 50

EXAMPLE_CHECK: dict[str, Any] = {
    "trip_id": "T-20261126-000042",
    "bike_id": "HB-5528301",
    "vehicle_type": "bike",
    "ended_at": "2026-11-26T08:15:30+08:00",
    "fixes": [
        {
            "lon": 113.5763421,
            "lat": 22.2709652,
            "accuracy_m": 6.0,
            "at": "2026-11-26T08:15:25+08:00",
            "crs": "gcj02",
        },
        {
            "lon": 113.5763448,
            "lat": 22.2709601,
            "accuracy_m": 4.5,
            "at": "2026-11-26T08:15:29+08:00",
            "crs": "gcj02",
            "quality": "single",
        },
    ],
    "heading_deg": 92.0,
    "beacons": [{"id": "ZH-BLE-00017", "rssi": -61}],
    "device_class": "lock-bd-v3",
}

EXAMPLE_DECISION: dict[str, Any] = {
    "outcome": "settle",
    "zone": {
        "id": "ZH-XZ-004211",
        "kind": "parking",
        "fenced": True,
        "district": "香洲区",
        "name": "拱北口岸广场 #3",
    },
    "p_inside": 0.97,
    "distance_m": -0.8,
    "nearest": [{"zone_id": "ZH-XZ-004211", "distance_m": 0.0, "bearing_deg": 0.0}],
    "reasons": ["inside_fenced_box"],
    "zone_set_version": 3,
    "policy": "pol-3f9a1c2e0b7d",
    "check_id": "c_01JDQ6V3M8T5W2ZK9Y4R7N0B1C",
    "decided_at": "2026-11-26T00:15:30.512345Z",
    "position": {"lon": 113.5714327, "lat": 22.2734871, "accuracy_m": 3.71},
    "policy_version": 2,
}

#: a fix's quality (the engine's QUALITIES, spelled out for the schema)
Quality = Literal["rtk_fixed", "rtk_float", "dgps", "single", "estimated"]
assert Quality.__args__ == QUALITIES  # type: ignore[attr-defined]

_STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")

Lon = Annotated[float, Field(ge=-180.0, le=180.0, description="Longitude, degrees")]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, description="Latitude, degrees")]


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold U+0000: refused here, on both backends, so that one
    # request's text never fails the group commit it shares with others
    if "\x00" in value:
        raise ValueError("contains U+0000 (NUL), which the store cannot hold")
    return value


#: text the store keeps as received (ids, device classes)
Text = Annotated[str, AfterValidator(_storable)]
Id = Annotated[Text, Field(min_length=1, max_length=256)]
Time = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="RFC 3339 time with a UTC offset",
        examples=["2026-11-26T08:15:30+08:00"],
        json_schema_extra={"format": "date-time"},
    ),
]


def _query_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("expected an RFC 3339 time string")  # pragma: no cover
    return parse_rfc3339(value)


#: a time in a query string: RFC 3339 as the bodies' times (:mod:`geofence.rfc3339`),
#: its UTC instant in the years 0001-9999 (the stores compare in UTC)
QueryTime = Annotated[
    datetime,
    PlainValidator(_query_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


@with_config(_STRICT)
class Fix(TypedDict):
    """One GPS fix. The last fix of a check is where the lock closed."""

    lon: Lon
    lat: Lat
    accuracy_m: NotRequired[
        Annotated[
            float | None,
            Field(gt=0.0, le=10_000.0, description="68 % horizontal radius, metres"),
        ]
    ]
    at: NotRequired[Time | None]
    crs: NotRequired[
        Annotated[
            Literal["wgs84", "cgcs2000", "gcj02", "bd09"],
            Field(description="Coordinate system of lon/lat (default wgs84)"),
        ]
    ]
    quality: NotRequired[
        Annotated[
            Quality | None,
            Field(
                description="The receiver's fix quality (NMEA GGA 4, 5, 2, 1, 6); "
                "omit it when the device reports none"
            ),
        ]
    ]


@with_config(_STRICT)
class Beacon(TypedDict):
    """A Bluetooth road stud heard at the trip end."""

    id: Id
    rssi: Annotated[float, Field(ge=-150.0, le=20.0, description="Signal strength, dBm")]


@with_config(ConfigDict(**_STRICT, json_schema_extra={"examples": [EXAMPLE_CHECK]}))
class CheckRequest(TypedDict):
    """A trip-end check (DESIGN §6). The operator is the API key's, not a field."""

    trip_id: Id
    bike_id: Id
    vehicle_type: Literal["bike", "ebike"]
    ended_at: Time
    fixes: Annotated[list[Fix], Field(min_length=1, max_length=MAX_FIXES)]
    heading_deg: NotRequired[
        Annotated[
            float | None,
            Field(ge=0.0, lt=360.0, description="Bike heading, degrees clockwise from north"),
        ]
    ]
    beacons: NotRequired[Annotated[list[Beacon], Field(max_length=64)]]
    device_class: NotRequired[
        Annotated[
            Annotated[Text, Field(min_length=1, max_length=MAX_DEVICE_CLASS)] | None,
            Field(
                description="The operator's name for the device model or firmware "
                "(its error model is calibrated per class)",
                examples=["lock-bd-v3"],
            ),
        ]
    ]


@with_config(
    ConfigDict(
        strict=True,
        allow_inf_nan=False,
        extra="forbid",
        json_schema_extra={"examples": [{"checks": [EXAMPLE_CHECK]}]},
    )
)
class BatchRequest(TypedDict):
    """Up to ``GEOFENCE_BATCH_LIMIT`` (10,000) checks, decided and recorded all or none."""

    checks: Annotated[list[CheckRequest], Field(min_length=1)]


check_adapter: TypeAdapter[CheckRequest] = TypeAdapter(CheckRequest)
batch_adapter: TypeAdapter[BatchRequest] = TypeAdapter(BatchRequest)


def request_schemas() -> dict[str, Any]:
    """JSON Schemas of the request bodies, keyed by component name, refs to components."""
    out: dict[str, Any] = {}
    for adapter in (check_adapter, batch_adapter):
        s = adapter.json_schema(ref_template="#/components/schemas/{model}")
        out.update(s.pop("$defs", {}))
        out[s["title"]] = s
    return out


# ---------------------------------------------------------------------------- responses
class ZoneRef(BaseModel):
    id: str
    kind: Literal["parking", "no_parking"]
    fenced: bool
    district: str
    name: str


class NearestZone(BaseModel):
    zone_id: str
    distance_m: float = Field(description="Metres to the box's nearest point")
    bearing_deg: float | None = Field(description="From the fix to that point, from true north")


#: a decision's outcome and reason codes (the engine's, spelled out for the schema)
Outcome = Literal["settle", "reject", "review"]
Reason = Literal[
    "inside_fenced_box",
    "inside_unfenced_box",
    "outside_all_boxes",
    "in_no_parking_zone",
    "accuracy_too_poor",
    "near_edge",
    "zone_inactive",
    "operator_not_allowed",
    "heading_mismatch",
    "beacon_match",
    "outside_service_area",
    "stale_fix",
]
assert Outcome.__args__ == OUTCOMES  # type: ignore[attr-defined]
assert Reason.__args__ == REASONS  # type: ignore[attr-defined]


class Position(BaseModel):
    """Where the engine put the bike: the fused position of the fixes, WGS-84."""

    lon: float
    lat: float
    accuracy_m: float = Field(description="68 % horizontal radius of the fused position, metres")


class Decision(BaseModel):
    """A settlement decision (DESIGN §3)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_DECISION]})

    outcome: Outcome
    zone: ZoneRef | None
    p_inside: float = Field(description="Probability that the bike is in a fenced box")
    distance_m: float | None = Field(
        description="Signed distance to the matched box's edge, negative inside"
    )
    nearest: list[NearestZone]
    reasons: list[Reason]
    zone_set_version: int | None
    policy: str = Field(description="The id of the policy that decided (a hash of its values)")
    check_id: str | None
    decided_at: datetime
    position: Position
    policy_version: int | None = Field(
        default=None,
        description="The stored policy version that decided (null on checks recorded before "
        "policies were versioned)",
    )


class BatchResponse(BaseModel):
    """The decisions, in the order of the request's checks."""

    results: list[Decision]


class CheckRecord(BaseModel):
    """An audit-log record: the request as received and the decision as answered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "check_id": EXAMPLE_DECISION["check_id"],
                    "operator": "hellobike",
                    "trip_id": EXAMPLE_CHECK["trip_id"],
                    "bike_id": EXAMPLE_CHECK["bike_id"],
                    "idempotency_key": "2f1d6c1e-trip-000042",
                    "batch_id": None,
                    "zone_set_version": 3,
                    "policy": EXAMPLE_DECISION["policy"],
                    "policy_version": 2,
                    "decided_at": EXAMPLE_DECISION["decided_at"],
                    "request": EXAMPLE_CHECK,
                    "decision": EXAMPLE_DECISION,
                }
            ]
        }
    )

    check_id: str
    operator: str
    trip_id: str
    bike_id: str
    idempotency_key: str | None
    batch_id: str | None
    zone_set_version: int | None
    policy: str
    policy_version: int | None
    decided_at: datetime
    request: dict[str, Any] = Field(description="The check as received (a CheckRequest)")
    decision: Decision


EXAMPLE_ZONE_SET = {
    "version": 3,
    "prev_version": 2,
    "created_at": "2026-11-26T02:00:00Z",
    "source": "zhuhai-2026-11.geojson",
    "checksum": "9b1f…",
    "n_zones": 18300,
    "n_parking": 18000,
    "n_fenced": 13000,
    "n_no_parking": 300,
    "active": False,
}


class ZoneSetInfo(BaseModel):
    """A stored zone-set version (immutable)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ZONE_SET]})

    version: int
    prev_version: int | None = Field(description="The version active when this one was uploaded")
    created_at: datetime
    source: str
    checksum: str = Field(description="SHA-256 over the zones' ids, attributes and geometries")
    n_zones: int
    n_parking: int
    n_fenced: int
    n_no_parking: int
    active: bool
    report: dict[str, Any] | None = Field(
        default=None, description="zones.validate report (one version's metadata only)"
    )


class ActiveZoneSet(ZoneSetInfo):
    """The active version, and how long this server took to build its index."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [EXAMPLE_ZONE_SET | {"active": True, "build_seconds": 0.31}]}
    )

    build_seconds: float = Field(description="Seconds this server took to build the index")


class ZoneSetCreated(ZoneSetInfo):
    """201: the new (inactive) version and its validation report."""

    report: dict[str, Any] | None = Field(
        default=None, description="zones.validate report: ok, counts, issues (warnings)"
    )


class ZoneSetList(BaseModel):
    active: int | None
    zone_sets: list[ZoneSetInfo]


class Activation(BaseModel):
    """The result of an activation (or rollback)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": 3,
                    "previous": 2,
                    "build_seconds": 0.31,
                    "zone_set": EXAMPLE_ZONE_SET | {"active": True},
                }
            ]
        }
    )

    active: int
    previous: int | None
    build_seconds: float
    zone_set: ZoneSetInfo


class Counts(BaseModel):
    """Checks and their outcomes."""

    checks: int
    settle: int
    reject: int
    review: int
    in_box_rate: float | None = Field(description="settle / checks")


class StatsRow(Counts):
    key: str | None


class StatsTotal(Counts):
    """Every group's counts together."""


class Stats(BaseModel):
    """Checks and in-box rate per group over ``[from, to)``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_by": "operator",
                    "from": "2026-11-01T00:00:00Z",
                    "to": None,
                    "groups": [
                        {
                            "key": "hellobike",
                            "checks": 1200,
                            "settle": 980,
                            "reject": 200,
                            "review": 20,
                            "in_box_rate": 0.8167,
                        }
                    ],
                    "total": {
                        "checks": 1200,
                        "settle": 980,
                        "reject": 200,
                        "review": 20,
                        "in_box_rate": 0.8167,
                    },
                    "truncated": False,
                }
            ]
        }
    )

    group_by: Literal["operator", "district", "zone", "day"]
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    groups: list[StatsRow]
    total: StatsTotal
    truncated: bool = Field(
        description="More groups matched than `limit`: `groups` holds the first `limit` "
        "(`total` counts every one)"
    )


class ProblemError(BaseModel):
    """One broken field, header, feature or rule of a problem's ``errors``."""

    pointer: str | None = Field(
        default=None,
        description="JSON Pointer into the body (`/fixes/0/lat`), or `query:NAME`, "
        "`path:NAME`, `header:NAME`",
    )
    type: str | None = Field(default=None, description="The rule broken (pydantic's error type)")
    message: str
    field: str | None = Field(default=None, description="A policy document's field")
    feature: str | None = Field(default=None, description="A zone set's feature id")
    rule: str | None = Field(default=None, description="The zone-set or policy rule broken")


class Problem(BaseModel):
    """An RFC 9457 problem document (every 4xx and 5xx, `application/problem+json`).

    ``type`` is a relative reference to a page that explains the problem
    (`/problems/{slug}`, listed under the `problems` tag); ``about:blank`` for a plain
    HTTP status (an unknown route, a method not allowed).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/validation",
                    "title": "The request does not match the schema",
                    "status": 422,
                    "detail": "1 field(s) failed validation",
                    "errors": [
                        {
                            "pointer": "/fixes/0/lat",
                            "type": "less_than_equal",
                            "message": "Input should be less than or equal to 90",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(examples=["/problems/validation"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None
    errors: list[ProblemError] | None = None
    report: dict[str, Any] | None = Field(
        default=None, description="invalid-zone-set: the full validation report"
    )


class Health(BaseModel):
    status: Literal["ok", "ready"]
    zone_set_version: int | None = None


# ------------------------------------------------------------------ GeoJSON and the map
class Feature(BaseModel):
    """A GeoJSON Feature (RFC 7946), WGS-84."""

    type: Literal["Feature"]
    id: str | None = None
    geometry: dict[str, Any] | None = Field(description="A GeoJSON geometry")
    properties: dict[str, Any] | None


class ZoneProperties(BaseModel):
    """A zone's properties (DESIGN §3)."""

    kind: Literal["parking", "no_parking"]
    fenced: bool
    district: str
    name: str
    capacity: int
    operators: list[str]
    heading_deg: float | None
    beacons: list[str]
    active_from: datetime | None
    active_to: datetime | None
    zone_set_version: int | None = Field(default=None, description="GET /v1/zones/{id} only")
    distance_m: float | None = Field(default=None, description="/v1/zones/nearest only")
    bearing_deg: float | None = Field(default=None, description="/v1/zones/nearest only")


class ZoneFeature(Feature):
    """A zone of the active set."""

    id: str  # type: ignore[assignment]
    properties: ZoneProperties  # type: ignore[assignment]


class ZoneCollection(BaseModel):
    """Zones of the active set (a GeoJSON FeatureCollection)."""

    type: Literal["FeatureCollection"]
    zone_set_version: int | None
    numberMatched: int = Field(description="Zones matching the query")
    numberReturned: int = Field(description="Zones in this answer")
    next: str | None = Field(
        default=None, description="/v1/zones: the next page's relative URL, null on the last"
    )
    features: list[ZoneFeature]


class NearestQuery(BaseModel):
    lon: float
    lat: float
    crs: Literal["wgs84", "cgcs2000", "gcj02", "bd09"]
    wgs84: list[float] = Field(description="The point in WGS-84, [lon, lat]")


class NearestCollection(BaseModel):
    """The zones nearest a point, nearest first (a GeoJSON FeatureCollection)."""

    type: Literal["FeatureCollection"]
    zone_set_version: int | None
    query: NearestQuery
    features: list[ZoneFeature]


class Density(BaseModel):
    """Zones per grid cell: each cell is a row of ``columns``."""

    zone_set_version: int | None
    cell_deg: float
    bbox: list[float]
    columns: list[str]
    cells: list[list[float]]
    total: int


class DayCounts(Counts):
    day: str = Field(description="Calendar day in China Standard Time, YYYY-MM-DD")


class ZoneStats(Counts):
    """A zone's checks over the last ``days`` days."""

    zone_id: str
    zone: dict[str, Any] = Field(description="The zone's id, zone set version and properties")
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    days: float
    by_day: list[DayCounts]


class RecentCheck(BaseModel):
    check_id: str
    operator: str
    outcome: Outcome
    reasons: list[Reason]
    zone_id: str | None
    district: str | None
    decided_at: datetime
    lon: float | None
    lat: float | None
    accuracy_m: float | None


class RecentChecks(BaseModel):
    """The newest decisions, newest first, as points (the fused position)."""

    now: datetime
    since: datetime | None
    checks: list[RecentCheck]
    next: str | None = Field(description="The next page's relative URL, null on the last")


class SeriesLine(BaseModel):
    key: str | None
    checks: int
    in_box_rate: float | None
    points: list[DayCounts]


class StatsSeries(BaseModel):
    """In-box rate per group and per China Standard Time day."""

    group_by: Literal["operator", "district"]
    days: list[str]
    series: list[SeriesLine]


class HotspotParameters(BaseModel):
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    days: float
    radius_m: float
    min_count: int
    rejected_trip_ends: int
    zone_set_version: int | None


class Hotspots(BaseModel):
    """Clusters of rejected trip ends, each a Feature with a proposed box."""

    type: Literal["FeatureCollection"]
    parameters: HotspotParameters
    features: list[Feature]


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946), WGS-84."""

    type: Literal["FeatureCollection"]
    features: list[Feature]


class ZoneSetDocument(FeatureCollection):
    """A stored zone set: the GeoJSON FeatureCollection as uploaded (DESIGN §3)."""


class MdsDocument(BaseModel):
    """An MDS 2.0 Geography answer, as the official reference defines it
    (`zones/schemas/mds-2.0/reference/geography.yaml`)."""

    version: str
    data: dict[str, Any] | None = None
    geographies: list[dict[str, Any]] | None = None
    geography: dict[str, Any] | None = None


class MdsError(BaseModel):
    """MDS's error object (the MDS routes answer it, not a problem document)."""

    error: str
    error_description: str
    error_details: list[str]


class GbfsFile(BaseModel):
    """A GBFS 3.0 or 2.3 file (the official GBFS JSON schemas define ``data``)."""

    last_updated: int | str = Field(description="POSIX time (2.3) or RFC 3339 (3.0)")
    ttl: int
    version: str
    data: dict[str, Any]


#: an error's description per status, for the document
_STATUS_TEXT: dict[int, str] = {
    400: "The body is not JSON (malformed-json)",
    401: "No API key, or an unknown or revoked one (unauthorized)",
    403: "This key's role may not use this route (forbidden)",
    404: "Not found (not-found)",
    409: "A concurrent request holds the Idempotency-Key; retry (idempotency-conflict)",
    413: "The body or the batch is over its limit (body-too-large, batch-too-large)",
    415: "The body's media type or encoding is not accepted (unsupported-media-type)",
    422: "The request breaks the schema or a rule (validation and the types it names)",
    429: "Too many requests for this key: wait `Retry-After` seconds",
    503: "The service is starting or cannot record decisions (not-ready, unavailable)",
}

PROBLEM_JSON = "application/problem+json"


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the errors it really answers, each a problem document
    (the keyed routes' 401, 403 and 429 are added by :mod:`api.openapi` from the role)."""
    return {
        code: {
            "description": _STATUS_TEXT[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


# ---------------------------------------------------------------------------- policies
def policy_document_schema() -> dict[str, Any]:
    """JSON Schema of a policy document (``geofence.Policy.to_mapping()``, every field
    optional), from the policy's own fields and defaults."""
    import dataclasses

    import geofence
    from geofence.calibration import CalibrationRow

    def field_schema(f: Any, default: Any) -> dict[str, Any]:
        if isinstance(default, bool):
            return {"type": "boolean", "default": default}
        if isinstance(default, int) and f.name in ("k_nearest", "trips"):
            return {"type": "integer", "default": default}
        if isinstance(default, int | float):
            return {"type": "number", "default": default}
        return {"type": "string", "default": default}

    row = CalibrationRow()
    row_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            f.name: field_schema(f, getattr(row, f.name)) for f in dataclasses.fields(row)
        },
    }
    policy = geofence.Policy()
    props: dict[str, Any] = {}
    for f in dataclasses.fields(policy):
        if f.name == "calibration":
            props[f.name] = {
                "type": "array",
                "items": row_schema,
                "description": "Error-model rows per (operator, device_class, quality) "
                "over the defaults",
            }
        else:
            props[f.name] = field_schema(f, getattr(policy, f.name))
    return {
        "title": "PolicyDocument",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "examples": [{"settle_p": 0.75, "calibration": [{"device_class": "lock-bd-v3"}]}],
    }


EXAMPLE_POLICY = {
    "version": 2,
    "id": "pol-3f9a1c2e0b7d",
    "prev_version": 1,
    "created_at": "2026-11-26T02:00:00Z",
    "source": "calibrate 2026-11",
    "active": False,
}


class PolicyInfo(BaseModel):
    """A stored policy version (immutable); ``policy`` is its document and id."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_POLICY]})

    version: int
    id: str = Field(description="The policy id decisions record (a hash of its values)")
    prev_version: int | None = Field(description="The version active when this one was stored")
    created_at: datetime
    source: str
    active: bool
    policy: dict[str, Any] | None = Field(
        default=None, description="``{id, …Policy.to_mapping()}`` (not in the list)"
    )


class PolicyList(BaseModel):
    active: int | None
    policies: list[PolicyInfo]


class PolicyActivation(BaseModel):
    """The result of a policy activation (or rollback)."""

    active: int
    previous: int | None
    policy: PolicyInfo


# ---------------------------------------------------------------------------- pages
# Issue 15 items 6-7 (helper `habits`): the paged lists' answers. Every page has `next`,
# the relative URL of the next page (its opaque `cursor` in the query) or null on the
# last page; the same URL is in the `Link: <…>; rel="next"` header.


#: a download's 304 (``If-None-Match`` / ``If-Modified-Since``: api/downloads.py)
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified since the `ETag` or `Last-Modified` the client holds"}
}


class CheckPage(BaseModel):
    """``GET /v1/checks``: recorded checks, newest first."""

    checks: list[CheckRecord]
    next: str | None = Field(description="The next page's relative URL, null on the last")


class ZoneSetPage(ZoneSetList):
    """``GET /v1/zone-sets``: stored versions, newest first."""

    next: str | None = Field(description="The next page's relative URL, null on the last")


__all__ += ["NOT_MODIFIED", "CheckPage", "ZoneSetPage"]
