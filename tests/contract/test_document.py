"""The served ``/openapi.json`` against the server's real answers (issue 15 item 2).

Every route is called for real, its answers (successes and the errors it returns) held
to the operation's declared statuses, media types and schemas (``Contract.check``); the
document's own shape is asserted where it is a promise to clients: referenced schemas for
every 2xx, problem documents for every error, clean operation ids, roles and security,
valid examples, ``maxItems`` from the setting.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely

from api.errors import PROBLEM_TYPES
from api.routes.docs import EXPLAIN
from api.testing.servetest import Server, check_in

from .conftest import Contract, validator

#: answers a route may send without a JSON schema (pages, metrics)
_TEXT = {"text/html", "text/plain"}


@pytest.fixture(scope="module")
def features(small_seed: Path) -> list[dict[str, Any]]:
    return json.loads(small_seed.read_text(encoding="utf-8"))["features"]


def _ops(document: dict[str, Any]):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            yield path, method, op


# ---------------------------------------------------------------------------- the document
def test_every_success_is_a_referenced_schema(document: dict[str, Any]) -> None:
    for path, method, op in _ops(document):
        ok = {c: r for c, r in op["responses"].items() if c.startswith("2")}
        assert ok, f"{method} {path}: no success answer"
        for code, resp in ok.items():
            for media, entry in resp["content"].items():
                if media.split(";")[0] in _TEXT:
                    continue
                ref = entry.get("schema", {}).get("$ref", "")
                assert ref.startswith("#/components/schemas/"), f"{method} {path} {code} {media}"
                assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]


def test_every_error_is_a_problem_document(document: dict[str, Any]) -> None:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, method, op in _ops(document):
        for code, resp in op["responses"].items():
            if code[0] not in "45":
                continue
            if path.startswith("/mds/") and code in ("400", "404", "406"):
                mds = {"application/json": {"schema": {"$ref": "#/components/schemas/MdsError"}}}
                assert resp["content"] == mds, f"{method} {path} {code}"  # MDS's own shape
            else:
                assert resp["content"] == problem, f"{method} {path} {code}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_operation_ids_roles_and_security(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _ops(document)]
    assert len(ids) == len(set(ids))
    assert "post_check" in ids and "post_batch" in ids and "activate_zone_set" in ids
    assert not [i for i in ids if "_v1_" in i or i.endswith(("_get", "_post"))]
    scheme = document["components"]["securitySchemes"]
    (name,) = scheme
    assert scheme[name] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": scheme[name]["description"],
    }
    for path, _method, op in _ops(document):
        if path.startswith("/v1/"):
            assert op["security"] == [{name: []}], path
            assert op["x-role"] in ("admin", "operator", "operator or admin"), path
            assert op["description"].startswith(f"**Role:** {op['x-role']} key")
            assert {"401", "429"} <= set(op["responses"]), path
            assert "Retry-After" in op["responses"]["429"]["headers"]
            if op["x-role"] != "operator or admin":
                assert "403" in op["responses"], path
        else:
            assert op["security"] == [], path
    assert document["paths"]["/v1/checks"]["post"]["x-role"] == "operator"
    assert document["paths"]["/v1/zone-sets"]["post"]["x-role"] == "admin"
    info = document["info"]
    assert info["license"]["identifier"] == "MIT" and info["contact"]["email"]
    assert document["servers"] == [
        {"url": "/", "description": document["servers"][0]["description"]}
    ]


def test_hot_routes_declare_their_bodies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for path, name in (("/v1/checks", "CheckRequest"), ("/v1/checks/batch", "BatchRequest")):
        body = document["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{name}"
        }
    assert schemas["BatchRequest"]["properties"]["checks"]["maxItems"] == 10_000  # the default
    decision = schemas["Decision"]
    assert "position" in decision["required"]
    assert decision["properties"]["decided_at"]["format"] == "date-time"
    assert set(decision["properties"]["reasons"]["items"]["enum"]) >= {"inside_fenced_box"}


def test_examples_are_valid(document: dict[str, Any]) -> None:
    n = 0
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            ref = {"$ref": f"#/components/schemas/{name}"}
            errors = list(validator(document, ref).iter_errors(example))
            assert not errors, f"{name}: {errors[0].message}"
            n += 1
    assert n >= 8


def test_problem_pages(http: httpx.Client, contract: Contract, document: dict[str, Any]) -> None:
    assert set(PROBLEM_TYPES) <= set(EXPLAIN)  # every type has its page
    slugs = document["paths"]["/problems/{slug}"]["get"]["parameters"][0]["schema"]
    enum = document["components"]["schemas"][slugs["$ref"].rsplit("/", 1)[1]]["enum"]
    assert set(enum) == set(PROBLEM_TYPES)
    for slug in PROBLEM_TYPES:
        r = http.get(f"/problems/{slug}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert PROBLEM_TYPES[slug] in r.text or slug in r.text
        contract.check(r)
    contract.check(http.get("/problems"))
    r = http.get("/problems/no-such-type")
    assert r.status_code == 422
    contract.check(r)


def test_docs_work_offline(http: httpx.Client) -> None:
    page = http.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing off-site
    assert '"validatorUrl": null' in page.text  # no badge from an online validator
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert f"/docs/static/{asset}" in page.text
        r = http.get(f"/docs/static/{asset}")
        assert r.status_code == 200 and len(r.content) > 500, asset
    assert http.get("/redoc").status_code == 404


# ---------------------------------------------------------------------------- real answers
def test_real_answers_match_the_document(
    server: Server,
    http: httpx.Client,
    contract: Contract,
    features: list[dict[str, Any]],
    small_seed: Path,
) -> None:
    op, admin = server.h("meituan"), server.h("admin")
    c = contract.check
    fenced = features[0]
    # health, metrics, the map's base layer, the standards
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/map/districts.geojson",
        "/gbfs/3.0/gbfs.json",
    ):
        c(http.get(path))
    c(http.get("/gbfs/2.3/nope.json"))
    c(http.get("/mds/geographies", headers={"Accept": "application/vnd.mds+json;version=2.0"}))
    c(http.get("/mds/geographies.json"))
    c(http.get("/mds/geographies", headers={"Accept": "application/vnd.mds+json;version=1.2"}))
    c(http.get("/mds/geographies/not-a-uuid"))
    c(http.get("/mds/geographies/3c9604d6-b5ee-11e8-96f8-529269fb1459"))
    # checks: a decision, a retry, a conflict, a batch, the record, errors
    body = check_in(fenced, "C-1")
    first = c(http.post("/v1/checks", json=body, headers=op | {"Idempotency-Key": "k-1"}))
    assert first["outcome"] == "settle" and first["position"]["accuracy_m"] > 0
    again = c(http.post("/v1/checks", json=body, headers=op | {"Idempotency-Key": "k-1"}))
    assert again == first
    other = check_in(fenced, "C-2")
    conflict = c(http.post("/v1/checks", json=other, headers=op | {"Idempotency-Key": "k-1"}))
    assert conflict["type"] == "/problems/idempotency-conflict"
    slow = body | {"trip_id": "C-3", "device_class": "lock-bd-v3", "heading_deg": None}
    c(http.post("/v1/checks", json=slow, headers=op))  # the schema's path, not the fast one
    far = check_in(fenced, "C-4")
    far["fixes"][0] |= {"lon": 113.9, "lat": 22.0}
    assert c(http.post("/v1/checks", json=far, headers=op))["outcome"] == "reject"
    batch = {"checks": [check_in(f, f"B-{i}") for i, f in enumerate(features[:5])]}
    assert len(c(http.post("/v1/checks/batch", json=batch, headers=op))["results"]) == 5
    odd = {"checks": [check_in(fenced, "B-odd", beacons=[{"id": "x", "rssi": -60}])]}
    c(http.post("/v1/checks/batch", json=odd, headers=op))
    c(http.post("/v1/checks", json=body | {"fixes": [{"lon": 1, "lat": 91}]}, headers=op))
    c(http.post("/v1/checks", content=b"{not json", headers=op))
    c(http.post("/v1/checks", content=b"x", headers=op | {"Content-Type": "text/csv"}))
    c(http.post("/v1/checks", json=body))
    c(http.post("/v1/checks", json=body, headers={"X-API-Key": "gfk_unknown"}))
    c(http.post("/v1/checks", json=body, headers=admin))
    c(http.post("/v1/checks/batch", json={"checks": []}, headers=op))
    c(http.post("/v1/checks", content=b"x" * (65 * 2**20), headers=op))
    record = c(http.get(f"/v1/checks/{first['check_id']}", headers=op))
    assert record["decision"] == first
    c(http.get(f"/v1/checks/{first['check_id']}", headers=server.h("hellobike")))
    c(http.get(f"/v1/checks/{first['check_id']}", headers=admin))
    c(http.get("/v1/checks/recent", headers=admin))
    c(http.get("/v1/checks/recent", params={"since": "yesterday"}, headers=admin))
    c(http.get("/v1/checks/recent", headers=op))
    c(http.get("/v1/checks", headers=op))
    c(http.get("/v1/checks", params={"operator": "meituan", "limit": 1}, headers=admin))
    c(http.get("/v1/checks", params={"operator": "someone-else"}, headers=op))
    c(http.get("/v1/checks", params={"limt": 1}, headers=op))
    # zones
    zid = fenced["id"]
    c(http.get("/v1/zones", headers=op))
    c(http.get("/v1/zones", params={"bbox": "1,2,3"}, headers=op))
    p = shapely.point_on_surface(shapely.geometry.shape(fenced["geometry"]))
    c(http.get("/v1/zones/nearest", params={"lon": p.x, "lat": p.y + 0.001}, headers=op))
    c(http.get(f"/v1/zones/{zid}", headers=op))
    c(http.get("/v1/zones/nope", headers=op))
    c(http.get("/v1/zones/density", params={"bbox": "113.0,21.8,114.4,22.6"}, headers=op))
    c(http.get(f"/v1/zones/{zid}/stats", headers=admin))
    # zone sets: upload, list, one, its file, activate, roll back
    raw = small_seed.read_bytes()
    up = c(
        http.post(
            "/v1/zone-sets", content=raw, headers=admin | {"Content-Type": "application/geo+json"}
        )
    )
    v = up["version"]
    c(
        http.post(
            "/v1/zone-sets",
            content=b'{"type": "FeatureCollection", "features": [{}]}',
            headers=admin,
        )
    )
    c(http.post("/v1/zone-sets", content=b"[", headers=admin))
    c(http.get("/v1/zone-sets", headers=admin))
    c(http.get("/v1/zone-sets", headers=op))
    c(http.get(f"/v1/zone-sets/{v}", headers=admin))
    c(http.get("/v1/zone-sets/9999", headers=admin))
    c(http.get("/v1/zone-sets/0", headers=admin))
    geo = http.get(f"/v1/zone-sets/{v}/geojson", headers=admin)
    c(geo)
    assert len(geo.json()["features"]) == 200
    c(http.post(f"/v1/zone-sets/{v}/activate", headers=admin))
    c(http.get("/v1/zone-sets/active", headers=admin))
    back = c(http.post("/v1/zone-sets/1/activate", headers=admin))
    assert back["active"] == 1 and back["previous"] == v
    # policies
    pol = c(http.post("/v1/policies", json={"settle_p": 0.8}, headers=admin))
    c(http.post("/v1/policies", json={"settle_p": "high"}, headers=admin))
    c(http.get("/v1/policies", headers=admin))
    c(http.get("/v1/policies/active", headers=admin))
    c(http.get(f"/v1/policies/{pol['version']}", headers=admin))
    c(http.post(f"/v1/policies/{pol['version']}/activate", headers=admin))
    c(http.post("/v1/policies/1/activate", headers=admin))
    c(http.post("/v1/policies/77/activate", headers=admin))
    # stats
    for group_by in ("operator", "district", "zone", "day"):
        c(http.get("/v1/stats", params={"group_by": group_by}, headers=admin))
    c(
        http.get(
            "/v1/stats",
            params={"from": "2026-11-01T00:00:00Z", "to": "2026-10-01T00:00:00Z"},
            headers=admin,
        )
    )
    c(http.get("/v1/stats/series", headers=admin))
    c(http.get("/v1/stats/hotspots", headers=admin))
    # every operation answered at least once, and one success of each
    ops = {(p, m) for p, m, _ in _ops(contract.document)}
    hit = {(p, m) for p, m, _ in contract.seen}
    assert ops - hit <= {("/problems", "get"), ("/problems/{slug}", "get")}, ops - hit
    ok = {(p, m) for p, m, s in contract.seen if s.startswith("2")}
    assert not (hit - ok - {("/mds/geographies/{geography_id}", "get")}), hit - ok


def test_gzip_is_not_assumed(http: httpx.Client, contract: Contract, server: Server) -> None:
    """A body sent gzipped is answered as the document says (a problem or a decision)."""
    r = http.post(
        "/v1/checks",
        content=gzip.compress(b"{}"),
        headers=server.h("meituan") | {"Content-Encoding": "gzip"},
    )
    contract.check(r)
    assert r.status_code < 500


def test_the_checker_refuses_breaches(
    contract: Contract, http: httpx.Client, server: Server
) -> None:
    """The holding above can fail: a decision without ``position``, a bad time, an
    undeclared status or media type are each refused."""
    good = http.get(
        "/v1/zones/density", params={"bbox": "113,22,114,23"}, headers=server.h("admin")
    )
    contract.check(good)
    req = httpx.Request("POST", server.url + "/v1/checks")
    decision = {
        "outcome": "settle",
        "zone": None,
        "p_inside": 0.5,
        "distance_m": None,
        "nearest": [],
        "reasons": ["near_edge"],
        "zone_set_version": 1,
        "policy": "pol-x",
        "check_id": "c_1",
        "decided_at": "2026-11-26T00:15:30Z",
        "position": {"lon": 113.5, "lat": 22.2, "accuracy_m": 3.0},
    }
    contract.check(httpx.Response(200, json=decision, request=req))
    for bad in (
        {k: v for k, v in decision.items() if k != "position"},
        decision | {"decided_at": "2026-11-26 00:15:30"},
        decision | {"reasons": ["because"]},
    ):
        with pytest.raises(AssertionError):
            contract.check(httpx.Response(200, json=bad, request=req))
    with pytest.raises(AssertionError, match="undeclared status"):
        contract.check(httpx.Response(418, json={}, request=req))
    with pytest.raises(AssertionError, match="not declared"):
        contract.check(httpx.Response(200, text="ok", request=req))
    with pytest.raises(AssertionError):  # a problem with the wrong media type
        contract.check(httpx.Response(422, json={"type": "x"}, request=req))


def test_batch_max_items_follows_the_setting(tmp_path: Path) -> None:
    from api.app import create_app
    from api.settings import Settings

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", batch_limit=7))
    checks = app.openapi()["components"]["schemas"]["BatchRequest"]["properties"]["checks"]
    assert checks["maxItems"] == 7 and checks["minItems"] == 1
