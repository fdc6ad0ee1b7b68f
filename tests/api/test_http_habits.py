"""The HTTP habits of issue 15: idempotency across the single and batch routes,
conditional and compressed downloads, compressed request bodies, trailing slashes and
HEAD, cursor pagination, the check search, X-Request-ID and CORS.

Every test over a database runs on SQLite and on PostgreSQL (the ``client`` fixture).
"""

from __future__ import annotations

import gzip
import io
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.paging import encode_cursor
from api.storage import Store, schema
from api.testing.servetest import Server
from tests.api.conftest import wait_ready

BATCH = "/v1/checks/batch"


# ---------------------------------------------------------------------------- idempotency
def _batch(make_body: Any, n: int, first: int = 0) -> dict[str, Any]:
    return {"checks": [make_body(first + i, trip=f"T-{first + i}") for i in range(n)]}


def test_batch_key_reused_for_another_batch_is_refused(client, keys, make_body, store):
    h = keys.h(keys.meituan) | {"Idempotency-Key": "batch-1"}
    first = client.post(BATCH, json=_batch(make_body, 1), headers=h)
    assert first.status_code == 200, first.text
    for other in (
        _batch(make_body, 3),  # more checks (the 3 sent, 1 back)
        _batch(make_body, 1, first=5),  # another check
        {"checks": list(reversed(_batch(make_body, 2)["checks"]))},
    ):
        r = client.post(BATCH, json=other, headers=h)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "/problems/idempotency-conflict"
    assert store.count_checks() == 1
    again = client.post(BATCH, json=_batch(make_body, 1), headers=h)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # a malformed body under a used key is answered as without a key
    bad = client.post(BATCH, content=b"{", headers=h | {"Content-Type": "application/json"})
    assert bad.status_code == 400


def test_one_key_space_across_the_single_and_batch_routes(client, keys, make_body, store):
    h = keys.h(keys.meituan)
    single = client.post("/v1/checks", json=make_body(1), headers=h | {"Idempotency-Key": "k-s"})
    assert single.status_code == 200
    r = client.post(BATCH, json={"checks": [make_body(1)]}, headers=h | {"Idempotency-Key": "k-s"})
    assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-conflict"
    assert "single check" in r.json()["detail"]
    batch = client.post(BATCH, json=_batch(make_body, 2), headers=h | {"Idempotency-Key": "k-b"})
    assert batch.status_code == 200
    for body in (make_body(0, trip="T-0"), make_body(7)):
        r = client.post("/v1/checks", json=body, headers=h | {"Idempotency-Key": "k-b"})
        assert r.status_code == 422 and r.json()["type"] == "/problems/idempotency-conflict"
        assert "batch" in r.json()["detail"]
    assert store.count_checks() == 3  # never a second decision
    # another operator's key space is its own
    other = keys.h(keys.hellobike) | {"Idempotency-Key": "k-b"}
    assert client.post("/v1/checks", json=make_body(1), headers=other).status_code == 200


def test_migration_5_renames_old_batch_keys(database_url: str) -> None:
    """A batch recorded before migration 5 (first row ``key/0``) is found by its key."""
    engine = sa.create_engine(database_url)
    schema.migrate(engine, 4)  # the schema before migration 5
    t0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    rows = []
    for i, (key, batch_id) in enumerate(
        [("old/0", "b_1"), ("old/1", "b_1"), ("both", None), ("both/0", "b_2")]
    ):
        rows.append(
            {
                "check_id": f"c_{i:08d}",
                "operator": "meituan",
                "trip_id": f"T-{i}",
                "bike_id": f"B-{i}",
                "idempotency_key": key,
                "batch_id": batch_id,
                "body": orjson.dumps({"trip_id": f"T-{i}"}).decode(),
                "decision": orjson.dumps({"i": i}).decode(),
                "outcome": "settle",
                "zone_id": None,
                "district": None,
                "zone_set_version": 1,
                "policy_id": "pol-test",
                "ended_at": t0,
                "decided_at": t0,
                "decided_day": "2026-11-26",
                "policy_version": 1,
                "device_class": None,
            }
        )
    try:
        with engine.begin() as c:
            c.execute(sa.insert(schema.checks), rows)
    finally:
        engine.dispose()
    s = Store.open(database_url)
    try:
        old = s.find_idempotent("meituan", "old")
        assert old is not None and old.decision_values() == [{"i": 0}, {"i": 1}]
        both = s.find_idempotent("meituan", "both")  # the single check kept the bare key
        assert both is not None and both.batch_id is None
        ix = {i["name"]: i["column_names"] for i in sa.inspect(s.engine).get_indexes("checks")}
        assert ix["ix_checks_trip_decided_at"] == ["trip_id", "decided_at"]
    finally:
        s.close()


# ---------------------------------------------------------------------------- request bodies
def _gz(obj: Any) -> bytes:
    return gzip.compress(orjson.dumps(obj))


def test_gzip_bodies_are_decided_as_plain_ones(client, keys, make_body, store):
    h = keys.h(keys.meituan) | {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    plain = client.post("/v1/checks", json=make_body(2), headers=keys.h(keys.meituan)).json()
    r = client.post("/v1/checks", content=_gz(make_body(2)), headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == plain["outcome"] and r.json()["zone"] == plain["zone"]
    batch = _batch(make_body, 40)
    raw = orjson.dumps(batch)
    body = gzip.compress(raw)
    r = client.post(BATCH, content=body, headers=h)
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 40
    assert store.get_check(r.json()["results"][3]["check_id"])["request"] == batch["checks"][3]
    # two gzip members are one body (RFC 1952); identity is no coding
    two = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    assert client.post(BATCH, content=two, headers=h).status_code == 200
    r = client.post(
        "/v1/checks",
        json=make_body(1),
        headers=keys.h(keys.meituan) | {"Content-Encoding": "identity"},
    )
    assert r.status_code == 200
    # the zone-set upload takes gzip too
    fc = {"type": "FeatureCollection", "features": []}
    r = client.post(
        "/v1/zone-sets",
        content=_gz(fc),
        headers=keys.h(keys.admin) | {"Content-Encoding": "gzip"},
    )
    assert r.status_code in (201, 422), r.text
    assert r.json().get("type") != "/problems/malformed-json"


def test_other_encodings_are_415_and_bad_gzip_400(client, keys, make_body, store):
    h = keys.h(keys.meituan) | {"Content-Type": "application/json"}
    for coding in ("br", "deflate", "gzip, br", "zstd"):
        r = client.post("/v1/checks", json=make_body(0), headers=h | {"Content-Encoding": coding})
        assert r.status_code == 415, (coding, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert coding.split(", ")[-1] in r.json()["detail"]
    gz = _gz(make_body(0))
    for bad in (gz[:-9], b"not gzip at all", gz + b"trailing"):
        r = client.post("/v1/checks", content=bad, headers=h | {"Content-Encoding": "gzip"})
        assert r.status_code == 400, r.text
        assert r.json()["type"] == "/problems/malformed-body"
    assert store.count_checks() == 0


def test_a_gzip_bomb_is_413_with_bounded_memory(settings_for, client_for, keys):
    client = client_for(settings_for(max_body_bytes=1 << 20))
    bomb = gzip.compress(b"[" + b" " * (64 << 20) + b"]", 9)  # 64 MiB of spaces: ~64 KiB
    assert len(bomb) < (1 << 20)
    tracemalloc.start()
    try:
        r = client.post(
            BATCH,
            content=bomb,
            headers=keys.h(keys.meituan)
            | {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413, r.text
    assert "decodes to more than" in r.json()["detail"]
    assert peak < 16 << 20, peak  # never the 64 MiB


# ---------------------------------------------------------------------------- paths, methods
def test_a_trailing_slash_is_the_same_route_never_a_redirect(client, keys, make_body, store):
    h = keys.h(keys.meituan)
    r = client.post("/v1/checks/", json=make_body(0), headers=h, follow_redirects=False)
    assert r.status_code == 200, r.text
    r = client.post(BATCH + "/", json=_batch(make_body, 2), headers=h, follow_redirects=False)
    assert r.status_code == 200, r.text
    assert store.count_checks() == 3
    for path in ("/healthz/", "/v1/zones/", "/v1/zone-sets/"):
        r = client.get(path, headers=keys.h(keys.admin), follow_redirects=False)
        assert r.status_code == 200, (path, r.status_code)
    r = client.get("/v1/nothing/", headers=h, follow_redirects=False)
    assert r.status_code == 404 and "/v1/nothing" in r.json()["detail"]


def test_head_answers_every_get_route_without_a_body(client, keys):
    paths = [p for p, ops in client.get("/openapi.json").json()["paths"].items() if "get" in ops]
    paths = [p for p in paths if "{" not in p] + ["/openapi.json", "/docs"]
    assert len(paths) > 10
    h = keys.h(keys.admin)
    for path in paths:
        query = {"bbox": "113.0,21.8,114.4,22.6"} if path == "/v1/zones/density" else None
        got = client.get(path, headers=h, params=query)
        head = client.head(path, headers=h, params=query)
        assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
        assert head.content == b"", path
        assert head.headers.get("content-type") == got.headers.get("content-type"), path
        if "content-length" in got.headers and path not in ("/metrics", "/v1/checks/recent"):
            assert head.headers["content-length"] == got.headers["content-length"], path
    for path in ("/healthz", "/readyz", "/map"):
        assert client.head(path).status_code == 200, path


def test_unknown_query_parameters_are_422_naming_them(client, keys, make_body):
    h = keys.h(keys.admin)
    for path, query in (
        ("/v1/zones", "limt=5"),
        ("/v1/stats", "form=2026-11-01T00:00:00Z"),
        ("/v1/zone-sets", "page=2"),
        ("/healthz", "x=1"),
        ("/v1/checks/recent", "limit=5&sincе=x"),
    ):
        r = client.get(f"{path}?{query}", headers=h)
        assert r.status_code == 422, (path, r.text)
        name = query.split("&")[-1].split("=")[0]
        assert r.json()["errors"][0]["pointer"] == f"query:{name}", r.json()
        assert name in r.json()["detail"]
    r = client.post("/v1/checks?dry_run=1", json=make_body(0), headers=keys.h(keys.meituan))
    assert r.status_code == 422 and "dry_run" in r.json()["detail"]
    assert client.get("/v1/zones?limit=5&bbox=113.0,21.8,114.4,22.6", headers=h).status_code == 200
    assert client.get("/gbfs/3.0/gbfs.json?_=123").status_code == 200  # feeds are lenient


# ---------------------------------------------------------------------------- request ids, CORS
def test_request_ids_are_echoed_or_generated_and_logged(settings_for, keys, make_body):
    log = io.BytesIO()
    app = create_app(settings_for(access_log=True), access_stream=log)
    with TestClient(app) as client:
        wait_ready(client)
        h = keys.h(keys.meituan)
        r = client.post("/v1/checks", json=make_body(0), headers=h | {"X-Request-ID": "req-1"})
        assert r.headers["x-request-id"] == "req-1"
        generated = client.get("/v1/zones/nope", headers=h).headers["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        for bad in ("x" * 129, "a b", "tab\there", "é".encode()):
            rid = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
            assert rid != bad and len(rid) == 32
        errs = [
            client.post("/v1/checks", content=b"{", headers=h | {"X-Request-ID": "e-400"}),
            client.get("/v1/checks/c_x", headers={"X-Request-ID": "e-401"}),
            client.post(
                BATCH, content=b"x", headers=h | {"X-Request-ID": "e-415", "Content-Encoding": "br"}
            ),
            client.head("/readyz", headers={"X-Request-ID": "e-head"}),
        ]
        for e in errs:
            assert e.headers["x-request-id"].startswith("e-"), e.status_code
    lines = [orjson.loads(x) for x in log.getvalue().splitlines()]
    ids = {x["request_id"] for x in lines}
    assert {"req-1", generated, "e-400", "e-401", "e-415", "e-head"} <= ids
    assert next(x for x in lines if x["request_id"] == "e-head")["method"] == "HEAD"


def test_cors_is_off_by_default_and_on_for_configured_origins(settings_for, client_for, keys):
    pre = {
        "Origin": "https://ops.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type, idempotency-key",
    }
    off = client_for(settings_for())
    assert "access-control-allow-origin" not in off.options("/v1/checks", headers=pre).headers
    r = off.get("/healthz", headers={"Origin": "https://ops.example.com"})
    assert "access-control-allow-origin" not in r.headers
    on = client_for(settings_for(cors_origins="https://ops.example.com, https://b.example"))
    r = on.options("/v1/checks", headers=pre)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert "idempotency-key" in r.headers["access-control-allow-headers"].lower()
    r = on.get("/v1/zones?limit=1", headers=keys.h(keys.admin) | {"Origin": "https://b.example"})
    assert r.headers["access-control-allow-origin"] == "https://b.example"
    assert "X-Request-ID" in r.headers["access-control-expose-headers"]
    r = on.options("/v1/checks", headers=pre | {"Origin": "https://evil.example"})
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------------------- downloads
def test_zone_set_geojson_has_validators_304_and_gzip(client, keys, small_fc):
    h = keys.h(keys.admin)
    r = client.get("/v1/zone-sets/1/geojson", headers=h | {"Accept-Encoding": "identity"})
    assert r.status_code == 200
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert etag.startswith('"zs-1-') and "content-encoding" not in r.headers
    assert len(r.json()["features"]) == len(small_fc["features"])
    plain = r.content
    for cond in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
        {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ):
        r = client.get("/v1/zone-sets/1/geojson", headers=h | cond)
        assert r.status_code == 304, cond
        assert r.content == b"" and r.headers["etag"] == etag
    for cond in (
        {"If-None-Match": '"other"'},
        {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
        {"If-Modified-Since": "yesterday"},
        {"If-None-Match": '"other"', "If-Modified-Since": modified},  # INM wins
    ):
        r = client.get("/v1/zone-sets/1/geojson", headers=h | cond)
        assert r.status_code == 200, cond
    # gzip when accepted (httpx decodes it: the same bytes), not at q=0
    raw = client.get(
        "/v1/zone-sets/1/geojson", headers=h | {"Accept-Encoding": "gzip"}, extensions={}
    )
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert raw.content == plain
    assert int(raw.headers["content-length"]) < len(plain) / 4
    gz_tag = raw.headers["etag"]
    assert gz_tag != etag
    r = client.get("/v1/zone-sets/1/geojson", headers=h | {"If-None-Match": gz_tag})
    assert r.status_code == 304
    r = client.get("/v1/zone-sets/1/geojson", headers=h | {"Accept-Encoding": "gzip;q=0, br"})
    assert "content-encoding" not in r.headers
    r = client.head("/v1/zone-sets/1/geojson", headers=h | {"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"] == gz_tag
    assert client.get("/v1/zone-sets/9/geojson", headers=h).status_code == 404


def test_zone_lists_have_etags_and_gzip(client, keys):
    h = keys.h(keys.meituan)
    r = client.get("/v1/zones?limit=50", headers=h | {"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"] == "application/geo+json"
    again = client.get("/v1/zones?limit=50", headers=h | {"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


# ---------------------------------------------------------------------------- pages
def _follow(client: TestClient, url: str, headers: dict[str, str], key: str) -> list[Any]:
    items: list[Any] = []
    seen_urls = set()
    while url:
        assert url not in seen_urls
        seen_urls.add(url)
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        doc = r.json()
        items.extend(doc[key])
        if doc["next"]:
            assert r.headers["link"] == f'<{doc["next"]}>; rel="next"'
            assert doc["next"].startswith("/")  # relative: the client's own scheme and host
        else:
            assert "link" not in r.headers
        url = doc["next"]
    return items


def test_zones_page_through_the_whole_set(client, keys, small_fc):
    h = keys.h(keys.hellobike)
    feats = _follow(client, "/v1/zones?limit=37", h, "features")
    assert [f["id"] for f in feats] == [f["id"] for f in small_fc["features"]]
    bbox = "113.0,21.8,114.4,22.6"
    assert len(_follow(client, f"/v1/zones?limit=50&bbox={bbox}", h, "features")) == len(feats)
    r = client.get("/v1/zones?limit=1000", headers=h).json()
    assert r["next"] is None and r["numberReturned"] == r["numberMatched"] == len(feats)
    for bad in ("nope", "W1sxXQ", encode_cursor("zone-sets", 3)):
        r = client.get(f"/v1/zones?cursor={bad}", headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "query:cursor"
    stale = encode_cursor("zones", 99, 3)
    r = client.get(f"/v1/zones?cursor={stale}", headers=h)
    assert r.status_code == 409 and r.json()["type"] == "/problems/stale-cursor"


def test_zone_sets_page_newest_first_under_concurrent_uploads(client, keys, small_fc_v2):
    h = keys.h(keys.admin)
    for _ in range(4):
        assert client.post("/v1/zone-sets", json=small_fc_v2, headers=h).status_code == 201
    r = client.get("/v1/zone-sets?limit=2", headers=h).json()
    assert [z["version"] for z in r["zone_sets"]] == [5, 4] and r["active"] == 1
    client.post("/v1/zone-sets", json=small_fc_v2, headers=h)  # version 6, meanwhile
    rest = _follow(client, r["next"], h, "zone_sets")
    assert [z["version"] for z in rest] == [3, 2, 1]


def test_check_search_pages_own_checks_without_gaps_under_concurrent_inserts(
    client, keys, make_body
):
    mt, hb, ad = keys.h(keys.meituan), keys.h(keys.hellobike), keys.h(keys.admin)
    batch = {"checks": [make_body(i % 5, trip=f"T-{i % 7}") for i in range(30)]}
    ids = [d["check_id"] for d in client.post(BATCH, json=batch, headers=mt).json()["results"]]
    client.post("/v1/checks", json=make_body(1, trip="T-1"), headers=hb)
    # page while more checks are recorded: the traversal is the 30 older ones exactly
    got: list[Any] = []
    url: str | None = "/v1/checks?limit=7"
    while url:
        doc = client.get(url, headers=mt).json()
        got.extend(doc["checks"])
        url = doc["next"]
        client.post("/v1/checks", json=make_body(2, trip="T-new"), headers=mt)
    older = [c for c in got if c["trip_id"] != "T-new"]
    assert sorted(c["check_id"] for c in older) == sorted(ids)
    assert len({c["check_id"] for c in got}) == len(got)  # no repeat
    assert all(c["operator"] == "meituan" for c in got)
    keys_ = [(c["decided_at"], c["check_id"]) for c in got]
    assert keys_ == sorted(keys_, reverse=True)
    # filters, each against the obvious answer over everything recorded
    everything = _follow(client, "/v1/checks?limit=1000", ad, "checks")
    for query, want in (
        ("trip_id=T-3", lambda c: c["trip_id"] == "T-3" and c["operator"] == "meituan"),
        ("bike_id=B-T-1", lambda c: c["bike_id"] == "B-T-1" and c["operator"] == "meituan"),
        (
            "outcome=settle",
            lambda c: c["decision"]["outcome"] == "settle" and c["operator"] == "meituan",
        ),
    ):
        found = _follow(client, f"/v1/checks?{query}&limit=4", mt, "checks")
        assert [c["check_id"] for c in found] == [c["check_id"] for c in everything if want(c)]
        assert found, query
    # time range: [from, to)
    mid = everything[len(everything) // 2]["decided_at"]
    newer = _follow(client, f"/v1/checks?from={mid}&limit=5", ad, "checks")
    assert [c["check_id"] for c in newer] == [
        c["check_id"] for c in everything if c["decided_at"] >= mid
    ]
    # operators: their own only; admins: any, or one with operator=
    assert client.get("/v1/checks?operator=hellobike", headers=mt).status_code == 403
    assert client.get("/v1/checks?operator=meituan", headers=mt).status_code == 200
    theirs = client.get("/v1/checks?operator=hellobike", headers=ad).json()["checks"]
    assert [c["operator"] for c in theirs] == ["hellobike"]
    assert {c["operator"] for c in everything} == {"meituan", "hellobike"}
    # bad input: 422 naming the field
    for query, pointer in (
        ("outcome=maybe", "query:outcome"),
        ("limit=0", "query:limit"),
        ("from=yesterday", "query:from"),
        ("cursor=abc", "query:cursor"),
        ("bike=1", "query:bike"),
    ):
        r = client.get(f"/v1/checks?{query}", headers=mt)
        assert r.status_code == 422, (query, r.text)
        assert r.json()["errors"][0]["pointer"] == pointer, r.json()
    assert client.get("/v1/checks").status_code == 401


def test_recent_checks_page_and_stats_say_when_truncated(client, keys, make_body):
    mt, ad = keys.h(keys.meituan), keys.h(keys.admin)
    batch = {"checks": [make_body(i, trip=f"T-{i}") for i in range(12)]}
    client.post(BATCH, json=batch, headers=mt)
    client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.hellobike))
    recent = _follow(client, "/v1/checks/recent?limit=5", ad, "checks")
    assert len(recent) == 13 and len({c["check_id"] for c in recent}) == 13
    s = client.get("/v1/stats?group_by=zone&limit=3", headers=ad).json()
    assert s["truncated"] is True and len(s["groups"]) == 3 and s["total"]["checks"] == 13
    s = client.get("/v1/stats?group_by=operator", headers=ad).json()
    assert s["truncated"] is False and len(s["groups"]) == 2


# ---------------------------------------------------------------------------- a real server
def test_the_habits_over_real_http(backend, new_database, seed_file, tmp_path, small_fc):
    """``geofence serve`` (uvicorn) on each backend: idempotency across the routes, a
    gzip batch, a trailing-slash POST, HEAD's Content-Length, request ids, downloads."""
    srv = Server(tmp_path, new_database(backend), seed_file).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60.0) as http:
            op = srv.h("meituan") | {"Content-Type": "application/json"}
            bodies = [
                {
                    "trip_id": f"T-{i}",
                    "bike_id": f"B-{i % 50}",
                    "vehicle_type": "bike",
                    "ended_at": "2026-11-26T08:15:30+08:00",
                    "fixes": [
                        {"lon": 113.55 + i * 1e-5, "lat": 22.27, "accuracy_m": 4.0}
                        for _ in range(3)
                    ],
                }
                for i in range(10_000)
            ]
            raw = orjson.dumps({"checks": bodies})
            packed = gzip.compress(raw)
            assert len(raw) / len(packed) > 8  # the issue's ~10x
            h = op | {"Content-Encoding": "gzip", "Idempotency-Key": "big-1"}
            r = http.post(BATCH + "/", content=packed, headers=h)  # a trailing slash too
            assert r.status_code == 200, r.text
            assert len(r.json()["results"]) == 10_000
            again = http.post(BATCH, content=packed, headers=h)
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json() == r.json()
            other = gzip.compress(orjson.dumps({"checks": bodies[:3]}))
            assert http.post(BATCH, content=other, headers=h).status_code == 422
            single = http.post(
                "/v1/checks",
                json=bodies[0],
                headers=srv.h("meituan") | {"Idempotency-Key": "big-1"},
            )
            assert single.status_code == 422
            assert single.json()["type"] == "/problems/idempotency-conflict"
            # no redirect anywhere, whatever the proxy's scheme
            r = http.post("/v1/checks/", json=bodies[1], headers=op | {"X-Request-ID": "rq-9"})
            assert r.status_code == 200 and r.headers["x-request-id"] == "rq-9"
            # HEAD through uvicorn: the GET's headers, no body
            got = http.get("/v1/zone-sets/1/geojson", headers=srv.h("admin"))
            head = http.head("/v1/zone-sets/1/geojson", headers=srv.h("admin"))
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == got.headers["content-length"]
            assert head.headers["etag"] == got.headers["etag"]
            gz = http.get(
                "/v1/zone-sets/1/geojson", headers=srv.h("admin") | {"Accept-Encoding": "gzip"}
            )
            assert gz.headers["content-encoding"] == "gzip" and gz.content == got.content
            feed = http.get("/gbfs/3.0/geofencing_zones.json", headers={"Accept-Encoding": "gzip"})
            assert feed.headers["content-encoding"] == "gzip" and feed.json()["data"]
            for path in ("/healthz", "/readyz", "/map"):
                assert http.head(path).status_code == 200, path
    finally:
        srv.stop()


def test_an_unexpected_error_carries_the_request_id(settings_for, keys):
    app = create_app(settings_for())

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom", headers={"X-Request-ID": "bug-1"})
        assert r.status_code == 500
        assert r.headers["x-request-id"] == "bug-1"
        assert r.json()["type"] == "/problems/internal"
