"""Every 4xx/5xx is ``application/problem+json``; bad input is a clear 4xx, never a 500,
and nothing is half-written."""

from __future__ import annotations

import json

import pytest

from api.errors import DOMAIN_ERRORS
from geofence.errors import CheckError, CRSError, GeofenceError, ZoneDataError

PROBLEM = "application/problem+json"


def _is_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    p = r.json()
    assert {"type", "title", "status", "detail"} <= set(p)
    assert p["status"] == status
    return p


def test_the_domain_table_maps_every_engine_error():
    assert DOMAIN_ERRORS[CheckError] == (422, "invalid-check")
    assert DOMAIN_ERRORS[ZoneDataError] == (422, "invalid-zone-set")
    assert DOMAIN_ERRORS[CRSError][0] == 422
    assert GeofenceError in DOMAIN_ERRORS


def test_unknown_route_and_wrong_method(client, keys):
    p = _is_problem(client.get("/v2/nothing"), 404)
    assert p["type"] == "about:blank" and p["title"] == "Not Found"
    p = _is_problem(client.delete("/v1/checks", headers=keys.h(keys.meituan)), 405)
    assert "DELETE" in p["detail"]
    _is_problem(client.put("/healthz"), 405)


@pytest.mark.parametrize(
    ("raw", "status", "kind"),
    [
        (b"{not json", 400, "/problems/malformed-json"),
        (b"", 400, "/problems/malformed-json"),
        (b"[1, 2]", 422, "/problems/validation"),
        (b'"a string"', 422, "/problems/validation"),
    ],
)
def test_malformed_bodies(client, keys, store, raw, status, kind):
    r = client.post(
        "/v1/checks",
        content=raw,
        headers=keys.h(keys.meituan) | {"content-type": "application/json"},
    )
    assert _is_problem(r, status)["type"] == kind
    assert store.count_checks() == 0


def _raw_with(make_body, **fix_fields) -> bytes:
    body = make_body(0)
    text = json.dumps(body)
    for name, literal in fix_fields.items():
        text = text.replace(
            f'"{name}": {json.dumps(body["fixes"][0][name])}', f'"{name}": {literal}'
        )
    return text.encode()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, keys, make_body, store, literal):
    raw = _raw_with(make_body, lat=literal)
    r = client.post(
        "/v1/checks",
        content=raw,
        headers=keys.h(keys.meituan) | {"content-type": "application/json"},
    )
    p = _is_problem(r, 422)
    assert p["errors"][0]["pointer"] == "/fixes/0/lat"
    assert store.count_checks() == 0


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda b: b["fixes"][0].update(lat="22.3"), "/fixes/0/lat"),  # a string, not a number
        (lambda b: b["fixes"][0].update(lat=True), "/fixes/0/lat"),
        (lambda b: b["fixes"][0].update(lat=95.0), "/fixes/0/lat"),
        (lambda b: b["fixes"][0].update(accuracy_m=0), "/fixes/0/accuracy_m"),
        (lambda b: b["fixes"][0].update(crs="epsg4326"), "/fixes/0/crs"),
        (lambda b: b.update(vehicle_type="scooter"), "/vehicle_type"),
        (lambda b: b.update(trip_id=42), "/trip_id"),
        (lambda b: b.pop("ended_at"), "/ended_at"),
        (lambda b: b.update(fixes=[]), "/fixes"),
        (lambda b: b.update(fixes=b["fixes"] * 51), "/fixes"),
        (lambda b: b.update(beacons=[{"id": "x"}]), "/beacons/0/rssi"),
        (lambda b: b.update(unknown_field=1), "/unknown_field"),
    ],
)
def test_invalid_check_bodies(client, keys, make_body, store, mutate, pointer):
    body = make_body(0)
    mutate(body)
    p = _is_problem(client.post("/v1/checks", json=body, headers=keys.h(keys.meituan)), 422)
    assert p["type"] == "/problems/validation"
    assert pointer in [e["pointer"] for e in p["errors"]]
    assert store.count_checks() == 0


def test_evidence_the_engine_refuses_is_an_invalid_check(client, keys, make_body, store):
    body = make_body(0, n_fixes=2)
    body["fixes"][1]["lat"] += 0.05  # a trail spread over kilometres
    p = _is_problem(client.post("/v1/checks", json=body, headers=keys.h(keys.meituan)), 422)
    assert p["type"] == "/problems/invalid-check"
    assert p["errors"][0]["type"]
    bad_time = make_body(0, ended_at="yesterday")
    p = _is_problem(client.post("/v1/checks", json=bad_time, headers=keys.h(keys.meituan)), 422)
    assert p["errors"][0]["pointer"] == "/ended_at"
    assert store.count_checks() == 0


def test_oversized_bodies_are_413(client_for, settings_for, keys, make_body, store):
    c = client_for(settings_for(max_body_bytes=2048))
    big = {"checks": [make_body(i % 5, trip=f"T-{i}") for i in range(40)]}
    p = _is_problem(c.post("/v1/checks/batch", json=big, headers=keys.h(keys.meituan)), 413)
    assert p["type"] == "/problems/body-too-large"

    def chunks():  # no Content-Length: counted while streaming
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    r = c.post(
        "/v1/checks/batch",
        content=chunks(),
        headers=keys.h(keys.meituan) | {"content-type": "application/json"},
    )
    _is_problem(r, 413)
    assert store.count_checks() == 0


def test_a_batch_over_the_limit_is_413(client_for, settings_for, keys, make_body, store):
    c = client_for(settings_for(batch_limit=3))
    body = {"checks": [make_body(i, trip=f"T-{i}") for i in range(4)]}
    p = _is_problem(c.post("/v1/checks/batch", json=body, headers=keys.h(keys.meituan)), 413)
    assert p["type"] == "/problems/batch-too-large"
    assert store.count_checks() == 0
    ok = c.post(
        "/v1/checks/batch", json={"checks": body["checks"][:3]}, headers=keys.h(keys.meituan)
    )
    assert ok.status_code == 200


def test_empty_batch_and_wrong_shape(client, keys, make_body, store):
    for body in ({"checks": []}, {"checks": make_body(0)}, {"check": [make_body(0)]}, []):
        _is_problem(client.post("/v1/checks/batch", json=body, headers=keys.h(keys.meituan)), 422)
    assert store.count_checks() == 0


def test_wrong_media_type_is_415(client, keys, make_body):
    r = client.post(
        "/v1/checks",
        content=json.dumps(make_body(0)),
        headers=keys.h(keys.meituan) | {"content-type": "text/plain"},
    )
    _is_problem(r, 415)


def test_bad_idempotency_key(client, keys, make_body):
    for key in ("a/b", "x" * 129, "with space"):
        r = client.post(
            "/v1/checks", json=make_body(0), headers=keys.h(keys.meituan) | {"Idempotency-Key": key}
        )
        _is_problem(r, 422)


def test_bad_query_parameters(client, keys):
    h = keys.h(keys.admin)
    p = _is_problem(client.get("/v1/zones/nearest?lon=abc&lat=22.2", headers=h), 422)
    assert p["errors"][0]["pointer"] == "query:lon"
    _is_problem(client.get("/v1/zones/nearest?lon=113.5&lat=22.2&k=0", headers=h), 422)
    _is_problem(client.get("/v1/zones/nearest?lon=113.5&lat=22.2&crs=utm", headers=h), 422)
    _is_problem(client.get("/v1/zone-sets/zero", headers=h), 422)
    _is_problem(client.get("/v1/stats?group_by=color", headers=h), 422)


def test_not_ready_is_503_with_the_reason(client_for, settings_for, tmp_path, keys, make_body):
    bad_seed = tmp_path / "bad.geojson"
    bad_seed.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(settings_for(seed_file=bad_seed))
    with TestClient(app) as c:
        import time

        for _ in range(200):
            r = c.get("/readyz")
            if "failed" in r.json()["detail"]:
                break
            time.sleep(0.02)
        p = _is_problem(r, 503)
        assert "seed zone set is invalid" in p["detail"]
        assert c.get("/healthz").status_code == 200
        _is_problem(c.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)), 503)


def test_openapi_documents_models_and_examples(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert {"CheckRequest", "Fix", "BatchRequest", "Decision", "Problem"} <= set(schemas)
    assert schemas["CheckRequest"]["examples"][0]["fixes"]
    assert schemas["Decision"]["examples"][0]["outcome"] == "settle"
    post = doc["paths"]["/v1/checks"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CheckRequest"
    )
    assert "422" in post["responses"] and "401" in post["responses"]
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
