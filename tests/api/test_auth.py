"""``X-API-Key``: 401 without a valid key, 403 for the wrong role, operators see their own."""

from __future__ import annotations

import pytest

V1_ROUTES = [
    ("POST", "/v1/checks"),
    ("POST", "/v1/checks/batch"),
    ("GET", "/v1/checks/c_x"),
    ("GET", "/v1/zones?bbox=113,22,114,23"),
    ("GET", "/v1/zones/ZH-XZ-000001"),
    ("GET", "/v1/zones/nearest?lon=113.5&lat=22.2"),
    ("POST", "/v1/zone-sets"),
    ("GET", "/v1/zone-sets"),
    ("GET", "/v1/zone-sets/active"),
    ("GET", "/v1/zone-sets/1"),
    ("POST", "/v1/zone-sets/1/activate"),
    ("GET", "/v1/stats"),
]

ADMIN_ROUTES = [
    ("POST", "/v1/zone-sets"),
    ("GET", "/v1/zone-sets"),
    ("GET", "/v1/zone-sets/active"),
    ("GET", "/v1/zone-sets/1"),
    ("GET", "/v1/zone-sets/1/geojson"),
    ("POST", "/v1/zone-sets/1/activate"),
    ("GET", "/v1/stats"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
def test_every_v1_route_needs_a_key(client, method, path):
    r = client.request(method, path)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/unauthorized"
    assert "X-API-Key" in r.headers["www-authenticate"]
    bad = client.request(method, path, headers={"X-API-Key": "gfk_not-a-key"})
    assert bad.status_code == 401


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_refuse_operator_keys(client, keys, method, path):
    r = client.request(method, path, headers=keys.h(keys.meituan))
    assert r.status_code == 403
    assert r.json()["type"] == "/problems/forbidden"


def test_checks_take_an_operator_key(client, keys, make_body):
    r = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.admin))
    assert r.status_code == 403


def test_operators_see_only_their_own_checks(client, keys, make_body):
    d = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    path = f"/v1/checks/{d['check_id']}"
    assert client.get(path, headers=keys.h(keys.meituan)).status_code == 200
    other = client.get(path, headers=keys.h(keys.hellobike))
    assert other.status_code == 404  # not 403: another operator's ids are not disclosed
    assert other.json()["detail"] == client.get(
        "/v1/checks/c_none", headers=keys.h(keys.hellobike)
    ).json()["detail"].replace("c_none", d["check_id"])
    assert client.get(path, headers=keys.h(keys.admin)).json()["operator"] == "meituan"


def test_the_operator_is_the_keys_not_the_bodys(client, keys, make_body):
    body = make_body(0)
    d = client.post("/v1/checks", json=body, headers=keys.h(keys.hellobike)).json()
    rec = client.get(f"/v1/checks/{d['check_id']}", headers=keys.h(keys.admin)).json()
    assert rec["operator"] == "hellobike"
    body["operator"] = "meituan"  # not a field of the check body
    assert client.post("/v1/checks", json=body, headers=keys.h(keys.hellobike)).status_code == 422


def test_a_revoked_key_is_refused(client, keys, store, make_body):
    assert (
        client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).status_code
        == 200
    )
    store.revoke_key(keys.meituan_rec.id)
    r = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan))
    assert r.status_code == 401
    assert client.get("/v1/zones/x", headers=keys.h(keys.hellobike)).status_code == 404


def test_public_routes_need_no_key(client):
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
