"""End to end: a real ``python -m api serve`` process on a loopback port.

Every route and error path over real HTTP, the CLI against the server, a hot swap
under load, crash safety (``kill -9`` mid-load, restart), and a property test that
the HTTP decision equals :func:`geofence.decide` on the same input. Loops are
bounded in count and time; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geofence
from api.servetest import ENDED_AT, Server, check_in, free_port
from api.service import parse_time
from api.settings import DEFAULT_SEED_FILE
from api.storage import Store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, seed_file: Path) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("e2e")
    srv = Server(work, f"sqlite:///{work / 'var' / 'geofence.db'}", seed_file).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        yield c


# ---------------------------------------------------------------------------- routes
def test_first_run_printed_keys_once(server: Server) -> None:
    assert set(server.keys) == {"admin", "meituan", "hellobike", "qingju"}
    assert "seeded zone set version 1" in server.stdout()
    assert server.started_s < 60


def test_public_routes(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json()["status"] == "ready"
    assert "geofence_http_requests_total" in http.get("/metrics").text
    assert http.get("/docs").status_code == 200
    assert "/v1/checks/batch" in http.get("/openapi.json").json()["paths"]


def test_checks_over_http(server: Server, http: httpx.Client, small_fc) -> None:
    body = check_in(small_fc["features"][0], "E2E-1")
    r = http.post("/v1/checks", json=body, headers=server.h("meituan"))
    assert r.status_code == 200 and r.json()["outcome"] == "settle"
    cid = r.json()["check_id"]
    assert http.get(f"/v1/checks/{cid}", headers=server.h("meituan")).json()["decision"] == r.json()
    assert http.get(f"/v1/checks/{cid}", headers=server.h("qingju")).status_code == 404
    assert http.get(f"/v1/checks/{cid}", headers=server.h("admin")).status_code == 200
    batch = {"checks": [check_in(small_fc["features"][i], f"E2E-B{i}") for i in range(4)]}
    rb = http.post("/v1/checks/batch", json=batch, headers=server.h("hellobike"))
    assert [d["outcome"] for d in rb.json()["results"]] == ["settle"] * 4
    key = {"Idempotency-Key": "e2e-idem-1"}
    a = http.post("/v1/checks", json=body, headers=server.h("qingju") | key).json()
    b = http.post("/v1/checks", json=body, headers=server.h("qingju") | key).json()
    assert a == b


def test_zone_routes_over_http(server: Server, http: httpx.Client, small_fc) -> None:
    h = server.h("qingju")
    zid = small_fc["features"][2]["id"]
    assert http.get(f"/v1/zones/{zid}", headers=h).json()["id"] == zid
    fc = http.get("/v1/zones", params={"bbox": "113.0,21.8,114.4,22.6", "limit": 5}, headers=h)
    assert fc.headers["content-type"] == "application/geo+json" and fc.json()["numberReturned"] == 5
    c = shapely.geometry.shape(small_fc["features"][2]["geometry"]).centroid
    near = http.get("/v1/zones/nearest", params={"lon": c.x, "lat": c.y, "k": 2}, headers=h).json()
    assert near["features"][0]["id"] == zid
    assert http.get("/v1/zone-sets", headers=server.h("admin")).json()["active"] >= 1
    # a check of its own, so that the stats count it whatever ran before
    stats = {"group_by": "operator"}
    before = http.get("/v1/stats", params=stats, headers=server.h("admin")).json()
    assert http.post(
        "/v1/checks", json=check_in(small_fc["features"][2], "zr-1"), headers=h
    ).is_success
    after = http.get("/v1/stats", params=stats, headers=server.h("admin")).json()
    assert after["total"]["checks"] == before["total"]["checks"] + 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/v1/nothing", {}, 404),
        ("PATCH", "/v1/checks", {}, 405),
        (
            "POST",
            "/v1/checks",
            {"content": b"{x", "headers": {"content-type": "application/json"}},
            400,
        ),
        ("POST", "/v1/checks", {"json": {"trip_id": 1}}, 422),
        ("GET", "/v1/zone-sets", {}, 403),
        ("GET", "/v1/stats", {"headers": {"X-API-Key": "gfk_bogus"}}, 401),
    ],
)
def test_error_paths_over_http(server, http, method, path, kwargs, status) -> None:
    kwargs = dict(kwargs)
    kwargs["headers"] = server.h("meituan") | kwargs.get("headers", {})
    r = http.request(method, path, **kwargs)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status


def test_oversized_body_over_http(server, http) -> None:
    big = b'{"checks": [' + b" " * (65 * 1024 * 1024) + b"]}"
    r = http.post(
        "/v1/checks/batch",
        content=big,
        headers=server.h("meituan") | {"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["type"] == "/problems/body-too-large"


def test_cli_keys_against_the_server(server: Server, http: httpx.Client, small_fc) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "api", "keys", "create", "--role", "operator", "--operator", "didi"],
        env=server.env(),
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    key = run.stdout.strip()
    body = check_in(small_fc["features"][1], "E2E-DIDI")
    assert http.post("/v1/checks", json=body, headers={"X-API-Key": key}).status_code == 200
    listed = subprocess.run(
        [sys.executable, "-m", "api", "keys", "list", "--json"],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    kid = next(k["id"] for k in json.loads(listed.stdout) if k["operator"] == "didi")
    subprocess.run(
        [sys.executable, "-m", "api", "keys", "revoke", kid],
        env=server.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 10
    status = 200
    while time.monotonic() < deadline and status != 401:
        status = http.post("/v1/checks", json=body, headers={"X-API-Key": key}).status_code
        time.sleep(0.2)
    assert status == 401


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "api",
            "zones",
            *args,
            "--url",
            server.url,
            "--key",
            server.keys["admin"],
        ],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_upload_refuses_a_broken_file(server: Server, tmp_path: Path, small_fc) -> None:
    bad = json.loads(json.dumps(small_fc))
    bad["features"][0]["properties"]["kind"] = "garage"
    f = tmp_path / "bad.geojson"
    f.write_text(json.dumps(bad))
    run = _cli(server, "upload", str(f))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "unknown-kind" in run.stdout and bad["features"][0]["id"] in run.stdout


# ---------------------------------------------------------------------------- hot swap
@dataclass
class Sent:
    t_send: float
    t_recv: float
    status: int
    version: int | None


def _load(
    url: str, key: str, body: dict, stop: threading.Event, out: list[Sent], limit: int
) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as c:
        while not stop.is_set() and len(out) < limit:
            t0 = time.monotonic()
            try:
                r = c.post("/v1/checks", json=body, headers={"X-API-Key": key})
                status = r.status_code
                version = r.json().get("zone_set_version") if status == 200 else None
            except httpx.HTTPError:
                status, version = -1, None
            out.append(Sent(t0, time.monotonic(), status, version))


def test_hot_swap_under_load(server: Server, small_fc) -> None:
    """Activate the full city (a build of ~0.3 s from its snapshot, ~1 s without) while
    checks stream in: none fails, none waits for the build, and each carries the version
    active when it was decided."""
    up = _cli(server, "upload", str(DEFAULT_SEED_FILE), "--json")
    assert up.returncode == 0, up.stderr
    new_v = json.loads(up.stdout)["uploaded"]["version"]
    old_v = httpx.get(server.url + "/readyz").json()["zone_set_version"]
    body = check_in(small_fc["features"][0], "E2E-SWAP")
    stop = threading.Event()
    sent: list[Sent] = []
    t = threading.Thread(
        target=_load, args=(server.url, server.keys["meituan"], body, stop, sent, 20_000)
    )
    t.start()
    try:
        time.sleep(0.5)
        a0 = time.monotonic()
        act = _cli(server, "activate", str(new_v), "--json")
        a1 = time.monotonic()
        time.sleep(0.5)
        b0 = time.monotonic()
        back = _cli(server, "activate", str(old_v), "--json")  # rollback
        b1 = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(30)
    assert act.returncode == 0 and back.returncode == 0, act.stderr + back.stderr
    # a real build (18,300 zones loaded, indexed, warmed) happened meanwhile
    assert json.loads(act.stdout)["build_seconds"] > 0.1
    assert sent and all(s.status == 200 for s in sent), {s.status for s in sent}
    for s in sent:
        if s.t_recv < a0:
            assert s.version == old_v
        elif a1 < s.t_send and s.t_recv < b0:
            assert s.version == new_v
        elif b1 < s.t_send:
            assert s.version == old_v
    during = [s for s in sent if a0 < s.t_send and s.t_recv < a1]
    assert len(during) >= 5  # requests kept flowing during the build
    # ... without waiting for it (the worst stall is a GIL-holding JSON parse, ~0.2 s)
    assert max(s.t_recv - s.t_send for s in during) < 1.0
    assert {s.version for s in sent} == {old_v, new_v}


# ---------------------------------------------------------------------------- crash safety
def test_kill_9_mid_load_loses_no_answered_check(
    tmp_path: Path, database_url: str, seed_file: Path, v2_file, small_fc
) -> None:
    """On SQLite and on PostgreSQL (``database_url`` is parametrized)."""
    srv = Server(tmp_path, database_url, seed_file).start()
    try:
        up = _cli(srv, "upload", str(v2_file), "--activate", "--json")
        assert up.returncode == 0, up.stderr
        answered: list[str] = []
        sent_in_batches: dict[str, dict] = {}  # a batch's check id -> the check as sent
        lock = threading.Lock()
        stop = threading.Event()

        def load(n: int) -> None:
            bodies = [
                check_in(small_fc["features"][20 + (i % 50)], f"K9-{n}-{i}") for i in range(50)
            ]
            with httpx.Client(base_url=srv.url, timeout=10.0) as c:
                i = 0
                while not stop.is_set() and i < 5000:
                    try:
                        if i % 7 == 0:
                            r = c.post(
                                "/v1/checks/batch",
                                json={"checks": bodies[:10]},
                                headers=srv.h("hellobike"),
                            )
                            ids = (
                                [d["check_id"] for d in r.json()["results"]]
                                if r.status_code == 200
                                else []
                            )
                            with lock:
                                sent_in_batches.update(zip(ids, bodies[:10], strict=False))
                        else:
                            r = c.post("/v1/checks", json=bodies[i % 50], headers=srv.h("meituan"))
                            ids = [r.json()["check_id"]] if r.status_code == 200 else []
                    except (httpx.HTTPError, ValueError):
                        return  # the server died under us
                    with lock:
                        answered.extend(ids)
                    i += 1

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(answered) < 300:
            time.sleep(0.05)
        srv.kill9()  # mid-load: requests are in flight
        stop.set()
        for t in threads:
            t.join(30)
        assert len(answered) >= 300
        store = Store.open(srv.db_url)
        try:
            recorded = store.check_ids()
            assert store.active_version() == 2
        finally:
            store.close()
        missing = set(answered) - recorded
        assert not missing, f"{len(missing)} answered checks are not in the audit log"
        srv.port = free_port()
        srv.start()
        assert httpx.get(srv.url + "/readyz").json()["zone_set_version"] == 2
        admin = {"X-API-Key": srv.keys["admin"]}
        some = answered[-1]
        r = httpx.get(f"{srv.url}/v1/checks/{some}", headers=admin)
        assert r.status_code == 200
        # a batch's checks read back as sent through the batch's stored body (migration 6)
        assert sent_in_batches, "no batch was answered before the kill"
        for cid in list(sent_in_batches)[-20:]:
            r = httpx.get(f"{srv.url}/v1/checks/{cid}", headers=admin)
            assert r.status_code == 200, (cid, r.text)
            assert r.json()["request"] == sent_in_batches[cid], cid
    finally:
        srv.stop()


# ---------------------------------------------------------------------------- property
_indexes: dict[int, geofence.ZoneIndex] = {}


def _index(http: httpx.Client, server: Server, version: int) -> geofence.ZoneIndex:
    if version not in _indexes:
        doc = http.get(f"/v1/zone-sets/{version}/geojson", headers=server.h("admin")).json()
        _indexes[version] = geofence.ZoneIndex(geofence.ZoneSet.from_geojson(doc, version=version))
    return _indexes[version]


@st.composite
def check_bodies(draw: st.DrawFn, features: list[dict]) -> dict[str, Any]:
    f = features[draw(st.integers(0, len(features) - 1))]
    c = shapely.point_on_surface(shapely.geometry.shape(f["geometry"]))
    east = draw(st.floats(-25, 25))
    north = draw(st.floats(-25, 25))
    lon0 = c.x + east / (111_320 * np.cos(np.radians(c.y)))
    lat0 = c.y + north / 110_574
    crs_name = draw(st.sampled_from(["wgs84", "gcj02", "bd09", "cgcs2000"]))
    n = draw(st.integers(1, 5))
    fixes = []
    for _ in range(n):
        lon = lon0 + draw(st.floats(-2e-5, 2e-5))
        lat = lat0 + draw(st.floats(-2e-5, 2e-5))
        if crs_name in ("gcj02", "bd09"):
            a, b = geofence.crs.from_wgs84(np.array([lon]), np.array([lat]), crs_name)
            lon, lat = float(a[0]), float(b[0])
        fix: dict[str, Any] = {"lon": lon, "lat": lat, "crs": crs_name}
        if draw(st.booleans()):
            fix["accuracy_m"] = draw(st.floats(0.2, 40))
        if draw(st.booleans()):
            fix["at"] = f"2026-11-26T08:15:{draw(st.integers(0, 59)):02d}+08:00"
        fixes.append(fix)
    body: dict[str, Any] = {
        "trip_id": draw(st.text("ABCDEF0123456789-", min_size=1, max_size=20)),
        "bike_id": "B-1",
        "vehicle_type": draw(st.sampled_from(["bike", "ebike"])),
        "ended_at": ENDED_AT,
        "fixes": fixes,
    }
    if draw(st.booleans()):
        body["heading_deg"] = draw(st.floats(0, 359.9))
    return body


@pytest.fixture(scope="module")
def features(small_fc) -> list[dict]:
    return small_fc["features"]


def test_http_decision_equals_geofence_decide(server: Server, http: httpx.Client, features) -> None:
    policy = geofence.Policy()

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=check_bodies(features))
    def prop(body: dict[str, Any]) -> None:
        r = http.post("/v1/checks", json=body, headers=server.h("qingju"))
        check = geofence.Check.from_mapping(body, operator="qingju")
        if r.status_code == 422:
            with pytest.raises(geofence.CheckError):
                geofence.decide(_index(http, server, 1), check, policy, 0.0)
            return
        assert r.status_code == 200, r.text
        d = r.json()
        now = parse_time(d["decided_at"]).timestamp()
        index = _index(http, server, d["zone_set_version"])
        want = geofence.decide(index, check, policy, now, d["check_id"]).to_dict()
        assert want | {"policy_version": 1} == d

    prop()
