"""Issue 19: a fuzz test over the check schema, on both backends (the ``client``
fixture): one field of a valid check replaced by a boundary value (0, the smallest
and largest doubles, negative numbers, NaN-like strings, the ends of the calendar,
long strings, wrong types), the check sent alone and in a batch. Never a 500; a 422
names the field it is about (its JSON Pointer, or a prefix of it)."""

from __future__ import annotations

import copy
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NUMBERS = [
    0,
    -0.0,
    5e-324,
    1e-300,
    1e-200,
    1.0,
    -1.0,
    -1e-300,
    89.99999999999999,
    90.00000000000001,
    180.0,
    -180.00000000000003,
    359.99999999999994,
    360.0,
    10_000.0,
    10_000.000000000002,
    1e308,
    -1e308,
    sys.float_info.max,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    10**30,
]
STRINGS = [
    "",
    " ",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e400",
    "-0",
    "x" * 257,
    "x" * 5000,
    "é" * 256,
    "\u202e\ufeff",
    "🚲" * 70,
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-08:00",
    "9999-12-31T23:59:60Z",
    "2026-12-31T23:59:60Z",
    "2026-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-11-26T08:15:30.123456789+08:00",
    "2026-11-26T08:15:30+23:59",
    "bike",
    "ebike",
    "rtk_fixed",
    "gcj02",
]
OTHERS: list[Any] = [None, True, False, [], {}, [1.0], {"a": 1}]
VALUES = st.sampled_from(NUMBERS + STRINGS + OTHERS)

#: (JSON Pointer of the field, path into the body)
FIELDS: list[tuple[str, tuple[Any, ...]]] = [
    ("/trip_id", ("trip_id",)),
    ("/bike_id", ("bike_id",)),
    ("/vehicle_type", ("vehicle_type",)),
    ("/ended_at", ("ended_at",)),
    ("/heading_deg", ("heading_deg",)),
    ("/device_class", ("device_class",)),
    ("/beacons", ("beacons",)),
    ("/beacons/0/id", ("beacons", 0, "id")),
    ("/beacons/0/rssi", ("beacons", 0, "rssi")),
    ("/fixes", ("fixes",)),
    ("/fixes/0/lon", ("fixes", 0, "lon")),
    ("/fixes/0/lat", ("fixes", 0, "lat")),
    ("/fixes/0/accuracy_m", ("fixes", 0, "accuracy_m")),
    ("/fixes/0/at", ("fixes", 0, "at")),
    ("/fixes/0/crs", ("fixes", 0, "crs")),
    ("/fixes/0/quality", ("fixes", 0, "quality")),
    ("/fixes/1/lon", ("fixes", 1, "lon")),
]


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = body
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _names_the_field(doc: dict[str, Any], pointer: str, prefix: str = "") -> bool:
    pointers = [str(e.get("pointer") or "") for e in doc.get("errors") or []]
    want = prefix + pointer
    # the field itself, a part of it, or the object or array holding it
    return any(p and (p.startswith(want) or want.startswith(p + "/")) for p in pointers)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(field=st.sampled_from(FIELDS), value=VALUES, n=st.integers(0, 10**6))
def test_no_input_the_schema_reaches_answers_500(client, keys, make_body, field, value, n):
    pointer, path = field
    body = make_body(0, trip=f"T-fuzz-{n}", n_fixes=2, device_class="lock-bd-v3")
    body["heading_deg"] = 90.0
    body["beacons"] = [{"id": "ZH-BLE-1", "rssi": -60}]
    body["fixes"][0]["at"] = body["ended_at"]
    _set(body, path, copy.deepcopy(value))
    h = keys.h(keys.meituan)
    r = client.post("/v1/checks", json=body, headers=h)
    assert r.status_code in (200, 422), (r.status_code, r.text)
    if r.status_code == 422:
        assert _names_the_field(r.json(), pointer), (pointer, r.text)
    body["trip_id"] = f"T-fuzz-batch-{n}" if isinstance(body["trip_id"], str) else value
    r = client.post("/v1/checks/batch", json={"checks": [make_body(1), body]}, headers=h)
    assert r.status_code in (200, 422), (r.status_code, r.text)
    if r.status_code == 422:
        assert _names_the_field(r.json(), pointer, "/checks/1"), (pointer, r.text)
