"""The request bodies of the hot routes (``POST /v1/checks``, ``/v1/checks/batch``) and the
query-string time type.

Bodies are ``TypedDict`` schemas validated straight from the raw bytes by a
``TypeAdapter`` (pydantic-core parses and checks in one pass and hands back plain dicts,
which is what :meth:`geofence.Check.from_mapping` reads): several times faster than
model instances for a 10,000-check batch. Text the store keeps is refused when it holds
U+0000 (PostgreSQL text cannot), on both backends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    WithJsonSchema,
    with_config,
)
from typing_extensions import TypedDict

from geofence.decisions.inputs import MAX_DEVICE_CLASS, QUALITIES
from geofence.rfc3339 import parse_rfc3339

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
