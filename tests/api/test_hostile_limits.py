"""Issue 19 limits, on both backends (the ``client`` fixture): per-key rate limits,
capped problem documents, hot-spot bounds, zone-set size rules through the API, 503s
without the driver's text, and a row that fails its group commit failing only its own
request (that one is in test_storage.py, beside the other group-commit tests)."""

from __future__ import annotations

import json

import orjson
import pytest
import sqlalchemy as sa

from api.ratelimit import Meter, Policy


# ---------------------------------------------------------------------------- rate limits
def test_the_meter_allows_the_burst_then_the_rate() -> None:
    now = [100.0]
    m = Meter(Policy("key", rate=2.0, burst=4), clock=lambda: now[0])
    assert [m.charge("a")[0] == 0 for _ in range(5)] == [True] * 4 + [False]
    wait = m.charge("a")[0]
    assert wait == pytest.approx(0.5)
    assert m.charge("b")[0] == 0  # another client has its own allowance
    now[0] += 0.5
    assert m.charge("a")[0] == 0 and m.charge("a")[0] > 0
    now[0] += 10.0
    assert m.wait("a") == 0
    assert m.charge("a")[1] == 3  # whole again: the burst less this one


def test_a_key_over_its_rate_gets_429_and_others_do_not(
    client_for, settings_for, keys, make_body
) -> None:
    c = client_for(settings_for(key_rate_per_s=0.1, key_rate_burst=3))
    h, other = keys.h(keys.meituan), keys.h(keys.hellobike)
    codes = [
        c.post("/v1/checks", json=make_body(0, trip=f"T-r{k}"), headers=h).status_code
        for k in range(5)
    ]
    assert codes[:3] == [200] * 3 and codes[3:] == [429, 429]
    r = c.post("/v1/checks", json=make_body(0, trip="T-r9"), headers=h)
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["ratelimit-policy"] == '"key";q=3;w=30'
    assert r.headers["ratelimit"].startswith('"key";r=0;t=')
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert c.post("/v1/checks", json=make_body(0, trip="T-o"), headers=other).status_code == 200


# ---------------------------------------------------------------------------- answers
def test_a_problem_document_lists_100_errors_and_counts_the_rest(client, keys) -> None:
    r = client.post("/v1/checks/batch", json={"checks": [{}] * 200}, headers=keys.h(keys.meituan))
    assert r.status_code == 422
    doc = r.json()
    assert len(doc["errors"]) == 100 and doc["errors_omitted"] == 900
    assert doc["errors"][0]["pointer"].startswith("/checks/0/")
    r = client.post(
        "/v1/checks", json={f"k{i}": 1 for i in range(20)}, headers=keys.h(keys.meituan)
    )
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "too_many_members"


def test_bounds_are_settings(client_for, settings_for, keys, make_body) -> None:
    c = client_for(settings_for(max_fixes=3, batch_limit=2, max_problem_errors=2))
    h = keys.h(keys.meituan)
    r = c.post("/v1/checks", json=make_body(0, n_fixes=4), headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/fixes"
    assert "GEOFENCE_MAX_FIXES" in r.json()["detail"]
    assert c.post("/v1/checks", json=make_body(0, n_fixes=3), headers=h).status_code == 200
    r = c.post("/v1/checks/batch", json={"checks": [make_body(0, n_fixes=4)]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/checks/0/fixes"
    r = c.post("/v1/checks/batch", json={"checks": [make_body(0)] * 3}, headers=h)
    assert r.status_code == 413
    r = c.post("/v1/checks/batch", json={"checks": [{}, {}]}, headers=h)
    assert len(r.json()["errors"]) == 2 and r.json()["errors_omitted"] == 8


# ---------------------------------------------------------------------------- hot spots
@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"radius_m": "1e-300"}, "query:radius_m"),
        ({"radius_m": "1"}, "query:radius_m"),
        ({"radius_m": "25"}, "query:radius_m"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}, "query:from"),
    ],
)
def test_hotspot_inputs_out_of_bounds_are_refused(client, keys, params, pointer) -> None:
    r = client.get("/v1/stats/hotspots", params=params, headers=keys.h(keys.admin))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["pointer"] == pointer


def test_hotspots_read_at_most_max_rejects(
    client_for, settings_for, keys, make_body, far_point
) -> None:
    c = client_for(settings_for(hotspot_max_rejects=5))
    h = keys.h(keys.meituan)
    for k in range(6):
        body = make_body(None, lonlat=far_point, trip=f"T-far-{k}")
        assert c.post("/v1/checks", json=body, headers=h).json()["outcome"] == "reject"
    r = c.get("/v1/stats/hotspots", headers=keys.h(keys.admin))
    assert r.status_code == 422 and "GEOFENCE_HOTSPOT_MAX_REJECTS" in r.json()["detail"]
    c2 = client_for(settings_for(hotspot_max_rejects=6))
    assert c2.get("/v1/stats/hotspots", headers=keys.h(keys.admin)).status_code == 200


# ---------------------------------------------------------------------------- zone sets
def test_zone_set_size_rules_through_the_api(client_for, settings_for, keys, small_fc) -> None:
    c = client_for(settings_for(zone_id_max=20, max_problem_errors=3))
    fc = json.loads(json.dumps(small_fc))
    for f in fc["features"][:10]:
        f["id"] = f["id"] + "-" + "x" * 30
    r = c.post("/v1/zone-sets", content=orjson.dumps(fc), headers=keys.h(keys.admin))
    assert r.status_code == 422, r.text
    doc = r.json()
    assert [e["rule"] for e in doc["errors"]] == ["id-too-long"] * 3
    assert doc["errors_omitted"] == 7
    assert len(doc["report"]["issues"]) == 3 and doc["report"]["issues_omitted"] >= 7
    assert all(len(e["feature"]) <= 21 for e in doc["errors"])


def test_too_many_zones_are_refused_before_parsing(client_for, settings_for, keys) -> None:
    c = client_for(settings_for(zone_set_zones_max=100))
    body = b'{"type":"FeatureCollection","features":[' + b",".join([b"{}"] * 101) + b"]}"
    r = c.post("/v1/zone-sets", content=body, headers=keys.h(keys.admin))
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "too-many-zones"


# ---------------------------------------------------------------------------- the store
def test_a_503_does_not_repeat_the_driver_text(client, keys, make_body, store) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE checks RENAME TO checks_gone"))
    r = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan))
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail == "the audit log could not record the decision; retry"


def test_a_single_check_body_over_its_limit_is_413_declared_or_streamed(
    client_for, settings_for, keys, make_body
) -> None:
    c = client_for(settings_for(max_check_bytes=2048))
    h = keys.h(keys.meituan) | {"content-type": "application/json"}
    body = make_body(0, n_fixes=30)
    data = orjson.dumps(body)
    assert len(data) > 2048
    r = c.post("/v1/checks", content=data, headers=h)
    assert r.status_code == 413 and "GEOFENCE_MAX_CHECK_BYTES" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for i in range(0, len(data), 500):
            yield data[i : i + 500]

    assert c.post("/v1/checks", content=chunks(), headers=h).status_code == 413
    assert c.post("/v1/checks", json=make_body(0, n_fixes=3), headers=h).status_code == 200
