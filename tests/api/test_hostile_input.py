"""Issue 19: valid-looking input that once answered 500 or failed others' checks.

Times at the ends of the calendar (no UTC datetime), times RFC 3339 does not allow
or does (the leap second), text PostgreSQL cannot store (U+0000), a vanishing
accuracy: each answered 422 naming the field, or decided; never a 500, and never
another request's failure. Both backends (the ``client`` fixture).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import geofence
from api.columns import parse_time_cached
from geofence.errors import CheckError
from geofence.rfc3339 import parse_rfc3339

OVERFLOW = ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "9999-12-31T23:59:60Z"]
NOT_RFC3339 = [
    "2026-11-26 08:31:05+08:00",  # a space for T
    "2026-W48-4T08:31:05+08:00",  # a week date
    "2026-330T08:31:05+08:00",  # an ordinal date
    "2026-11-26T08:31+08:00",  # no seconds
    "2026-11-26T08:31:05",  # no offset
    "2026-11-26T08:31:05+0800",  # offset without a colon
    "2026-11-26T08:31:05Z\n",
]


def _pointers(r: Any) -> list[str]:
    return [e.get("pointer") for e in r.json().get("errors", [])]


@pytest.mark.parametrize("value", OVERFLOW + NOT_RFC3339)
def test_a_time_without_a_utc_datetime_or_not_rfc3339_is_a_422_naming_the_field(
    client, keys, make_body, store, value
):
    h = keys.h(keys.meituan)
    r = client.post("/v1/checks", json=make_body(0, ended_at=value), headers=h)
    assert r.status_code == 422, r.text
    assert _pointers(r) == ["/ended_at"]
    body = make_body(0)
    body["fixes"][0]["at"] = value
    r = client.post("/v1/checks", json=body, headers=h)
    assert r.status_code == 422, r.text
    assert _pointers(r) == ["/fixes/0/at"]
    assert store.count_checks() == 0


@pytest.mark.parametrize("value", OVERFLOW)
def test_a_batch_with_one_such_time_names_that_check_and_records_nothing(
    client, keys, make_body, store, value
):
    checks = [make_body(0), make_body(1, ended_at=value), make_body(2)]
    r = client.post("/v1/checks/batch", json={"checks": checks}, headers=keys.h(keys.meituan))
    assert r.status_code == 422, r.text
    assert _pointers(r) == ["/checks/1/ended_at"]
    assert store.count_checks() == 0


def test_a_leap_second_is_accepted_as_the_next_second(client, keys, make_body):
    h = keys.h(keys.meituan)
    for k, value in enumerate(["2026-12-31T23:59:60Z", "2027-01-01T07:59:60+08:00"]):
        body = make_body(0, ended_at=value, trip=f"T-leap-{k}")
        body["fixes"][0]["at"] = value
        r = client.post("/v1/checks", json=body, headers=h)
        assert r.status_code == 200, r.text
    r = client.post("/v1/checks", json=make_body(0, ended_at="2026-12-31T23:58:60Z"), headers=h)
    assert r.status_code == 422
    assert _pointers(r) == ["/ended_at"]


def test_leap_second_and_range_rules():
    assert (
        parse_rfc3339("2026-12-31T23:59:60Z").timestamp()
        == parse_rfc3339("2027-01-01T00:00:00Z").timestamp()
    )
    assert parse_rfc3339("2026-06-30T19:29:60-04:30").isoformat() == "2026-06-30T19:30:00-04:30"
    assert parse_rfc3339("0001-01-01T00:00:00Z").year == 1
    assert parse_rfc3339("9999-12-31T23:59:59.999999Z").year == 9999
    assert parse_rfc3339("2026-11-26t08:31:05.1234567z").microsecond == 123456
    for bad in [*OVERFLOW, *NOT_RFC3339, "2026-02-29T00:00:00Z", "2026-11-26T08:31:05+24:00"]:
        with pytest.raises(ValueError):
            parse_rfc3339(bad)


@pytest.mark.parametrize(
    "value", [*OVERFLOW, *NOT_RFC3339, "2026-12-31T23:59:60Z", "2026-11-26T08:31:05.5-03:30"]
)
def test_the_fast_path_reads_times_as_the_engine_does(value):
    body = {
        "trip_id": "T",
        "bike_id": "B",
        "vehicle_type": "bike",
        "ended_at": value,
        "fixes": [{"lon": 113.5, "lat": 22.2}],
    }
    try:
        slow: float | None = geofence.Check.from_mapping(body).ended_at
    except CheckError:
        slow = None
    assert parse_time_cached(value) == slow


def test_a_vanishing_accuracy_is_decided(client, keys, make_body):
    body = make_body(0, accuracy_m=1e-200)
    r = client.post("/v1/checks", json=body, headers=keys.h(keys.meituan))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] in ("settle", "reject", "review")


def _nul_bodies(make_body) -> list[tuple[dict[str, Any], str]]:
    out = []
    for field in ("trip_id", "bike_id", "device_class"):
        out.append((make_body(0, trip=f"T-nul-{field}", **{field: "x\x00y"}), f"/{field}"))
    b = make_body(0, trip="T-nul-beacon", beacons=[{"id": "ZH-BLE\x00", "rssi": -60}])
    out.append((b, "/beacons/0/id"))
    return out


def test_text_the_store_cannot_hold_is_a_422_naming_the_field(client, keys, make_body, store):
    h = keys.h(keys.meituan)
    for body, pointer in _nul_bodies(make_body):
        r = client.post("/v1/checks", json=body, headers=h)
        assert r.status_code == 422, r.text
        assert _pointers(r) == [pointer]
        r = client.post("/v1/checks/batch", json={"checks": [make_body(1), body]}, headers=h)
        assert r.status_code == 422, r.text
        assert _pointers(r) == ["/checks/1" + pointer]
    assert store.count_checks() == 0


def test_one_nul_request_among_honest_ones_fails_only_itself(client, keys, make_body, store):
    h = keys.h(keys.meituan)
    bad = _nul_bodies(make_body)
    honest = [make_body(k % 20, trip=f"T-honest-{k}") for k in range(40)]
    jobs = [(b, True) for b in honest] + [(b, False) for b, _ in bad]
    jobs = jobs[::2] + jobs[1::2]  # the NUL ones among the honest ones

    def post(job: tuple[dict[str, Any], bool]) -> tuple[int, bool]:
        return client.post("/v1/checks", json=job[0], headers=h).status_code, job[1]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, jobs))
    assert all(code == 200 for code, ok in results if ok)
    assert all(code == 422 for code, ok in results if not ok)
    assert store.count_checks() == len(honest)


@pytest.mark.parametrize(
    ("route", "param"),
    [
        ("/v1/stats", "from"),
        ("/v1/stats", "to"),
        ("/v1/stats/hotspots", "from"),
        ("/v1/stats/hotspots", "to"),
        ("/v1/checks/recent", "since"),
    ],
)
@pytest.mark.parametrize("value", [*OVERFLOW, "2026-11-26 08:31:05+08:00"])
def test_a_query_time_without_a_utc_datetime_is_refused_naming_the_parameter(
    client, keys, route, param, value
):
    r = client.get(route, params={param: value}, headers=keys.h(keys.admin))
    assert r.status_code in (400, 422), r.text
    assert param in r.text


def test_query_times_at_the_ends_of_the_calendar_are_answered(client, keys):
    h = keys.h(keys.admin)
    params = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"}
    assert client.get("/v1/stats", params=params, headers=h).status_code == 200
    r = client.get("/v1/checks/recent", params={"since": "2026-12-31T23:59:60Z"}, headers=h)
    assert r.status_code == 200, r.text
