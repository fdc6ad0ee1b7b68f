"""The fast path of ``/v1/checks`` (:mod:`api.columns`) against the slow one.

Oracle: whenever :func:`api.columns.check_batch` accepts bodies, the request schema and
:meth:`geofence.Check.from_mapping` accept them too and
:meth:`geofence.CheckBatch.from_checks` builds the same arrays; anything it declines
is left to the slow path, which words the error.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import geofence
from api import columns
from api.models import batch_adapter
from geofence.decisions.inputs import QUALITIES
from geofence.rfc3339 import parse_rfc3339

LON, LAT = 113.5233, 22.2688
TIMES = ["2026-11-26T08:31:05+08:00", "2026-11-26T00:31:01Z", "2026-11-26T08:31:05"]
#: issue 19: no UTC datetime, not RFC 3339, a leap second (accepted)
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59-08:00",
    "2026-11-26 08:31:05+08:00",
    "2026-W48-4T08:31:05+08:00",
    "2026-11-26T08:31+08:00",
    "2026-12-31T23:59:60Z",
]
PLAIN = {
    "trip_id": "T-1",
    "bike_id": "B-1",
    "vehicle_type": "bike",
    "ended_at": TIMES[0],
    "fixes": [{"lon": LON, "lat": LAT}],
}


@pytest.fixture(scope="module")
def index(small_fc: dict[str, Any]) -> geofence.ZoneIndex:
    return geofence.ZoneIndex(geofence.ZoneSet.from_geojson(small_fc, version=1))


def _slow(index: geofence.ZoneIndex, bodies: list[Any]) -> geofence.CheckBatch | None:
    """The arrays the schema and the engine build, or None if either refuses."""
    try:
        parsed = batch_adapter.validate_json(orjson.dumps({"checks": bodies}))["checks"]
        checks = [geofence.Check.from_mapping(b, operator="op") for b in parsed]
    except (ValidationError, geofence.CheckError):
        return None
    return geofence.CheckBatch.from_checks(index, checks, geofence.Policy(), "op")


def _same(a: geofence.CheckBatch, b: geofence.CheckBatch) -> None:
    for name in ("lon", "lat", "accuracy_m", "at", "n_fixes", "ended_at", "heading_deg"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.beacon_zone, b.beacon_zone)
    assert a.operator == b.operator
    for name in ("quality", "device_class"):  # None when no check has one
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.device_classes == b.device_classes


numbers = st.one_of(
    st.floats(-200, 200, allow_nan=False), st.integers(-200, 200), st.booleans(), st.none()
)
fix = st.fixed_dictionaries(
    {"lon": st.floats(113.0, 114.0) | numbers, "lat": st.floats(21.9, 22.5) | numbers},
    optional={
        "accuracy_m": st.floats(0, 20_000, allow_nan=False) | numbers,
        "at": st.sampled_from([*TIMES, *HOSTILE_TIMES, "yesterday", ""]) | st.none(),
        "crs": st.sampled_from(["wgs84", "cgcs2000", "gcj02", "bd09", "GCJ02", "utm"]),
        "extra": st.just(1),
        "quality": st.sampled_from([*QUALITIES, "RTK_FIXED", "fixed", "", 4]) | st.none(),
    },
)
CLASSES = ["lock-bd-v3", "app-android", "x" * 64]
body = st.fixed_dictionaries(
    {
        "trip_id": st.sampled_from(["T-1", "", "x" * 300, "T\x00"]),
        "bike_id": st.sampled_from(["B-1", "\x00"]),
        "vehicle_type": st.sampled_from(["bike", "ebike", "car"]),
        "ended_at": st.sampled_from([*TIMES, *HOSTILE_TIMES, "soon"]),
        "fixes": st.lists(fix, min_size=0, max_size=6),
    },
    optional={
        "heading_deg": st.floats(-10, 400, allow_nan=False) | st.none() | st.just(360),
        "beacons": st.just([]) | st.just([{"id": "S-1", "rssi": -60.0}]),
        "device_class": st.sampled_from([*CLASSES, "", "x" * 65, 7, "a\x00"]) | st.none(),
    },
)


valid_fix = st.fixed_dictionaries(
    {"lon": st.floats(113.0, 114.0) | st.integers(113, 114), "lat": st.floats(21.9, 22.5)},
    optional={
        "accuracy_m": st.floats(0.01, 10_000) | st.integers(1, 50) | st.none(),
        "at": st.sampled_from(TIMES[:2]) | st.none(),
        "crs": st.sampled_from(["wgs84", "cgcs2000", "gcj02", "bd09"]),
        "quality": st.sampled_from(QUALITIES) | st.none(),
    },
)
#: text the store can hold (no U+0000, no lone surrogates)
STORABLE = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
valid_body = st.fixed_dictionaries(
    {
        "trip_id": st.text(STORABLE, min_size=1, max_size=20),
        "bike_id": st.just("B-1"),
        "vehicle_type": st.sampled_from(["bike", "ebike"]),
        "ended_at": st.sampled_from([*TIMES[:2], HOSTILE_TIMES[-1]]),
        "fixes": st.lists(valid_fix, min_size=1, max_size=8),
    },
    optional={
        "heading_deg": st.floats(0, 359.9) | st.integers(0, 359) | st.none(),
        "beacons": st.just([]),
        "device_class": st.sampled_from(CLASSES) | st.none(),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(valid_body, min_size=1, max_size=5))
def test_the_fast_path_takes_valid_bodies_and_builds_the_engines_arrays(
    index: geofence.ZoneIndex, bodies: list[dict[str, Any]]
) -> None:
    fast = columns.check_batch(bodies, "op")
    assert fast is not None
    slow = _slow(index, bodies)
    assert slow is not None
    _same(fast, slow)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(body | valid_body, min_size=1, max_size=4))
def test_fast_path_accepts_only_what_the_slow_path_accepts_and_builds_the_same_arrays(
    index: geofence.ZoneIndex, bodies: list[dict[str, Any]]
) -> None:
    fast = columns.check_batch(bodies, "op")
    if fast is None:
        return  # the slow path decides (and words the error)
    slow = _slow(index, bodies)
    assert slow is not None, "the fast path accepted what the schema refuses"
    _same(fast, slow)


def test_plain_bodies_take_the_fast_path(index: geofence.ZoneIndex) -> None:
    bodies = [
        {
            "trip_id": f"T-{i}",
            "bike_id": "B-1",
            "vehicle_type": "bike",
            "ended_at": TIMES[0],
            "fixes": [
                {"lon": LON + j * 1e-5, "lat": LAT, "accuracy_m": 3.0, "at": TIMES[1]}
                for j in range(1 + i % 3)  # ragged
            ],
            "heading_deg": 90 if i % 2 else None,
        }
        for i in range(7)
    ]
    bodies[3]["fixes"][0]["crs"] = "gcj02"
    for batch in (bodies, bodies[:1]):
        fast = columns.check_batch(batch, "op")
        assert fast is not None
        slow = _slow(index, batch)
        assert slow is not None
        _same(fast, slow)


@pytest.mark.parametrize(
    "change",
    [
        {"fixes": []},
        {"beacons": [{"id": "S-1", "rssi": -60.0}]},  # resolved by the slow path
        {"vehicle_type": "car"},
        {"ended_at": "2026-11-26T08:31:05"},  # no UTC offset
        {"fixes": [{"lon": True, "lat": LAT}]},
        {"fixes": [{"lon": "113.5", "lat": LAT}]},
        {"fixes": [{"lon": LON, "lat": LAT, "accuracy_m": 0}]},
        {"fixes": [{"lon": LON, "lat": LAT, "crs": "GCJ02"}]},
        {"fixes": [{"lon": LON, "lat": LAT, "speed": 3}]},
        {"fixes": [{"lon": LON, "lat": LAT, "quality": "rtk"}]},
        {"fixes": [{"lon": LON, "lat": LAT, "quality": 4}]},
        {"device_class": ""},
        {"device_class": "x" * 65},
        {"device_class": ["lock"]},
        {"operator": "someone"},
    ],
)
def test_the_fast_path_declines_what_it_does_not_plainly_accept(change: dict[str, Any]) -> None:
    b = PLAIN | change
    assert columns.check_batch([b], "op") is None
    assert columns.check_batch([b, b], "op") is None


def test_a_batch_the_fast_path_declines_is_decided_by_the_slow_path(
    client, keys, make_body
) -> None:
    bodies = [make_body(i, trip=f"T-{i}") for i in range(4)]
    bodies[2]["beacons"] = [{"id": "ZH-BLE-NOPE", "rssi": -60.0}]
    r = client.post("/v1/checks/batch", json={"checks": bodies}, headers=keys.h(keys.meituan))
    assert r.status_code == 200, r.text
    for b, d in zip(bodies, r.json()["results"], strict=True):
        one = client.post("/v1/checks", json=b, headers=keys.h(keys.meituan)).json()
        strip = {"check_id", "decided_at"}
        assert {k: v for k, v in d.items() if k not in strip} == {
            k: v for k, v in one.items() if k not in strip
        }


def test_the_hot_routes_are_counted_under_their_templates(client, keys, make_body) -> None:
    h = keys.h(keys.meituan)
    assert client.post("/v1/checks", json=make_body(0), headers=h).status_code == 200
    assert client.post("/v1/checks/batch", json={"checks": [make_body(0)]}, headers=h).is_success
    bad = client.post("/v1/checks", content=b"{", headers=h | {"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    text = client.get("/metrics").text
    for route, status in (("/v1/checks", 200), ("/v1/checks/batch", 200), ("/v1/checks", 400)):
        line = f'geofence_http_requests_total{{method="POST",route="{route}",status="{status}"}}'
        assert line in text


def test_decision_dicts_equal_the_engines_decisions(
    index: geofence.ZoneIndex, small_fc: dict[str, Any]
) -> None:
    rng = np.random.default_rng(7)
    bodies = []
    for i, f in enumerate(small_fc["features"][:60]):
        ring = f["geometry"]["coordinates"][0]
        cx = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        cy = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        if i % 3 == 2:  # off every box: rejected with nearest boxes
            cx, cy = cx + 0.0004, cy + 0.0002
        acc = [0.5, 3.0, 8.0, 30.0][i % 4]
        bodies.append(
            {
                "trip_id": f"T-{i}",
                "bike_id": "B-1",
                "vehicle_type": "bike",
                "ended_at": TIMES[0],
                "fixes": [
                    {"lon": cx + float(d) * 1e-6, "lat": cy, "accuracy_m": acc}
                    | ({"quality": "rtk_fixed"} if acc < 1 else {})
                    for d in rng.normal(size=1 + i % 3)
                ],
                "heading_deg": float(i * 7 % 360),
            }
        )
    bodies.append(bodies[0] | {"fixes": [{"lon": LON + 1.0, "lat": LAT, "accuracy_m": 3.0}]})
    batch = columns.check_batch(bodies, "op")
    assert batch is not None
    decided = geofence.decide_arrays(index, batch, geofence.Policy(), 1.8e9)
    ids = [f"c_{i}" for i in range(len(bodies))]
    fast = columns.decision_dicts(decided, ids, "STAMP", 7)
    slow = [
        decided.decision(i, ids[i]).to_dict() | {"decided_at": "STAMP", "policy_version": 7}
        for i in range(len(ids))
    ]
    assert fast == slow
    assert {d["outcome"] for d in fast} >= {"settle", "reject"}
    # the batch route's JSON of the same decisions: orjson's bytes of each dict
    for version in (7, None):
        texts = columns.decision_texts(decided, ids, "2026-11-26T00:00:00.5%Z", version)
        dicts = columns.decision_dicts(decided, ids, "2026-11-26T00:00:00.5%Z", version)
        assert texts == [orjson.dumps(d) for d in dicts]
    assert columns.decision_texts(decided, [], "STAMP") == []


def _decided_slow(index: geofence.ZoneIndex, b: dict[str, Any]) -> Any:
    """The engine's decision of ``b`` through the schema and a Check (or its error)."""
    parsed = batch_adapter.validate_json(orjson.dumps({"checks": [b]}))["checks"][0]
    check = geofence.Check.from_mapping(parsed, operator="op")
    try:
        return geofence.decide(index, check, geofence.Policy(), 1.8e9, check_id="c")
    except geofence.CheckError as exc:
        return str(exc)


def _decided_fast(index: geofence.ZoneIndex, b: dict[str, Any]) -> Any:
    """The single route's decision of ``b`` (its reader and the engine's entry point)."""
    got = columns.check_values(b)
    assert got is not None
    vals, ended, heading, device_class = got
    try:
        return geofence.decide_values(
            index,
            geofence.Policy(),
            1.8e9,
            vals,
            ended,
            heading,
            operator="op",
            device_class=device_class,
            check_id="c",
        )
    except geofence.CheckError as exc:
        return str(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=body | valid_body)
def test_the_single_reader_takes_what_check_batch_takes_and_decides_as_the_engine(
    index: geofence.ZoneIndex, b: dict[str, Any]
) -> None:
    got = columns.check_values(b)
    assert (got is None) == (columns.check_batch([b], "op") is None)
    if got is None:
        return  # the schema's path decides (and words the error)
    fast = _decided_fast(index, b)
    if fast is None:  # outside the projection's fast domain: the route calls decide
        return
    assert fast == _decided_slow(index, b)


def test_the_single_reader_decides_settles_rejects_and_reviews_as_the_engine(
    index: geofence.ZoneIndex, small_fc: dict[str, Any]
) -> None:
    rng = np.random.default_rng(11)
    outcomes = set()
    for i, f in enumerate(small_fc["features"][:90]):
        ring = f["geometry"]["coordinates"][0]
        cx = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        cy = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        if i % 3 == 2:  # off every box
            cx, cy = cx + 0.0004, cy + 0.0002
        acc = [0.5, 3.0, 8.0, 30.0][i % 4]
        b = {
            "trip_id": f"T-{i}",
            "bike_id": "B-1",
            "vehicle_type": "bike",
            "ended_at": TIMES[i % 2],
            "fixes": [
                {"lon": cx + float(d) * 1e-6, "lat": cy, "accuracy_m": acc}
                | ({"quality": "rtk_fixed", "at": TIMES[1]} if acc < 1 else {})
                | ({"crs": "gcj02"} if i % 7 == 3 else {})
                for d in rng.normal(size=1 + i % 4)
            ],
            "heading_deg": float(i * 7 % 360) if i % 2 else None,
        }
        if i % 5 == 1:
            b["device_class"] = "lock-bd-v3"
        fast = _decided_fast(index, b)
        assert fast == _decided_slow(index, b)
        outcomes.add(fast.outcome)
    assert outcomes == {"settle", "reject", "review"}


# ---------------------------------------------------------------------------- the reader
def _layouts(doc: Any) -> st.SearchStrategy[bytes]:
    """``doc`` as JSON bytes: compact (orjson), spaced, or indented."""
    return st.sampled_from(
        [
            orjson.dumps(doc),
            json.dumps(doc).encode(),
            json.dumps(doc, indent=2, ensure_ascii=False).encode(),
            json.dumps(doc, separators=(" ,", " : ")).replace("{", "{\t").encode(),
        ]
    )


def _check_scanned(index: geofence.ZoneIndex, raw: bytes) -> bool:
    """If the reader takes ``raw``, orjson and :func:`columns.check_batch` take it too and
    build the same arrays, and each check's text parses to the body sent."""
    got = columns.scan_batch(raw, "op", 10_000)
    if got is None:
        return False
    batch, spans, ended = got
    bodies = orjson.loads(raw)["checks"]
    ref = columns.check_batch(bodies, "op")
    assert ref is not None, "the reader accepted what check_batch refuses"
    _same(batch, ref)
    assert len(spans) == len(ended) == len(bodies)
    for (c0, c1, t0, t1, b0, b1), end, b in zip(spans.tolist(), ended, bodies, strict=True):
        assert orjson.loads(raw[c0:c1]) == b
        assert (raw[t0:t1].decode(), raw[b0:b1].decode()) == (b["trip_id"], b["bike_id"])
        assert end == parse_rfc3339(b["ended_at"]) and end.utcoffset() == timedelta(0)
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bodies=st.lists(body | valid_body, min_size=1, max_size=4))
def test_the_reader_accepts_only_what_check_batch_accepts_and_builds_the_same_arrays(
    index: geofence.ZoneIndex, data: st.DataObject, bodies: list[dict[str, Any]]
) -> None:
    _check_scanned(index, data.draw(_layouts({"checks": bodies})))


plain_fix = st.fixed_dictionaries(
    {"lon": st.floats(113.0, 114.0) | st.integers(113, 114), "lat": st.floats(21.9, 22.5)},
    optional={
        "accuracy_m": st.floats(0.01, 10_000) | st.integers(1, 50) | st.none(),
        "quality": st.sampled_from(QUALITIES) | st.none(),
    },
)
plain_body = st.fixed_dictionaries(
    {
        "trip_id": st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1),
        "bike_id": st.just("B-1"),
        "vehicle_type": st.sampled_from(["bike", "ebike"]),
        "ended_at": st.sampled_from([*TIMES[:2], HOSTILE_TIMES[-1]]),
        "fixes": st.lists(plain_fix, min_size=1, max_size=50),
    },
    optional={
        "heading_deg": st.floats(0, 359.9) | st.integers(0, 359) | st.none(),
        "device_class": st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1).map(
            lambda s: s.replace('"', "'").replace("\\", "/")[:64]
        )
        | st.sampled_from(CLASSES),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(plain_body, min_size=1, max_size=5))
def test_the_reader_takes_plain_batches(
    index: geofence.ZoneIndex, bodies: list[dict[str, Any]]
) -> None:
    for b in bodies:  # the reader takes no escapes (a quote or a backslash in an id)
        b["trip_id"] = b["trip_id"].replace('"', "'").replace("\\", "/")
    for raw in (orjson.dumps({"checks": bodies}), json.dumps({"checks": bodies}).encode()):
        assert _check_scanned(index, raw)


@settings(max_examples=400, deadline=None)
@given(
    x=st.floats(-200, 200, allow_nan=False) | st.integers(-(10**17), 10**17),
    fmt=st.sampled_from(["{!r}", "{:.17g}", "{:e}", "{:.3E}", "{:.0f}", "{:.20f}", "{:.15g}"]),
)
def test_the_reader_reads_numbers_as_orjson_does_or_declines(
    index: geofence.ZoneIndex, x: float, fmt: str
) -> None:
    text = fmt.format(x)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    one = (
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike","ended_at":"'
        + TIMES[0].encode()
        + b'","fixes":[{"lon":113.5,"lat":22.2,"accuracy_m":'
        + text.encode()
        + b"}]}]}"
    )
    got = columns.scan_batch(one, "op", 10)
    if got is None:
        return
    assert value is not None and 0 < value <= 10_000
    assert got[0].accuracy_m[0, 0] == float(value)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"checks":[]}',
        b'{"checks":[{"trip_id":"T\\u0031","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}]}',  # escape
        '{"checks":[{"trip_id":"行程","bike_id":"B","vehicle_type":"bike",'
        '"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}]}'.encode(),
        b'{"checks":[{"trip_id":"T","trip_id":"U","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}]}',  # twice
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2,"lon":1}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":0113.5,"lat":22.2}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}]} x',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]},]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}],"x":1}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2,"at":null}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2,"quality":"rtk"}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2,"quality":nul}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike","device_class":"",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike","device_class":null,'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.2}]}]}',
        b'{"checks":[{"trip_id":"T","bike_id":"B","vehicle_type":"bike",'
        b'"ended_at":"2026-11-26T00:31:01Z","fixes":[{"lon":113.5,"lat":22.',
    ],
)
def test_the_reader_leaves_anything_else_to_the_general_path(raw: bytes) -> None:
    assert columns.scan_batch(raw, "op", 10) is None


def test_the_reader_declines_batches_over_the_limit() -> None:
    raw = orjson.dumps({"checks": [PLAIN] * 3})
    assert columns.scan_batch(raw, "op", 2) is None
    assert columns.scan_batch(raw, "op", 3) is not None


def test_a_batch_keeps_each_checks_json_as_received(client, keys, make_body) -> None:
    bodies = [make_body(i, trip=f"T-{i}") for i in range(3)]
    raw = json.dumps({"checks": bodies}, indent=1).encode()
    h = keys.h(keys.meituan) | {"Content-Type": "application/json"}
    r = client.post("/v1/checks/batch", content=raw, headers=h)
    assert r.status_code == 200, r.text
    for b, d in zip(bodies, r.json()["results"], strict=True):
        rec = client.get(f"/v1/checks/{d['check_id']}", headers=h).json()
        assert rec["request"] == b
        assert (rec["trip_id"], rec["bike_id"]) == (b["trip_id"], b["bike_id"])


@settings(max_examples=300, deadline=None)
@given(
    xs=st.lists(
        st.floats(allow_infinity=True, allow_nan=True)
        | st.floats(-400, 400)
        | st.integers(-(10**9), 10**9).map(lambda i: i / 200 + 0.005)  # near halves
        | st.sampled_from([0.125, 2.675, 1.005, -0.0, 0.5e-7, 113.50000005, 1e300]),
        max_size=30,
    ),
    ndigits=st.sampled_from([1, 2, 4, 7]),
)
def test_rounded_is_round_bit_for_bit(xs: list[float], ndigits: int) -> None:
    got = columns.rounded(np.array(xs, np.float64), ndigits)
    want = [round(x, ndigits) for x in xs]
    assert orjson.dumps(got) == orjson.dumps(want)
    assert [math.copysign(1, g) for g in got] == [math.copysign(1, w) for w in want]
