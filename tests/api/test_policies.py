"""``/v1/policies``: policy documents become versions; activation swaps the policy atomically,
every process follows, every decision records the policy's id and version, and replay
decides with the recorded policy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import geofence
from api.operations.replay import replay
from api.storage import Store, schema
from api.testing.servetest import Server

PROPAGATION_S = 2.0
STRICT = {"settle_p": 0.9999, "reject_p": 0.0}  # settles only the surest checks


def _post(client, keys, doc: Any, **params: Any) -> httpx.Response:
    return client.post(
        "/v1/policies",
        content=json.dumps(doc).encode(),
        params=params,
        headers=keys.h(keys.admin) | {"content-type": "application/json"},
    )


def test_the_first_start_seeds_version_1_from_geofence_policy_and_later_starts_keep_it(
    client_for, settings_for, keys, make_body, store
):
    c = client_for(settings_for(policy={"settle_p": 0.8}))
    want = geofence.Policy.from_mapping({"settle_p": 0.8})
    active = c.get("/v1/policies/active", headers=keys.h(keys.admin)).json()
    assert active["version"] == 1 and active["active"] is True
    assert active["source"] == "GEOFENCE_POLICY"
    assert active["policy"] == {"id": want.id, **json.loads(json.dumps(want.to_mapping()))}
    d = c.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    assert (d["policy"], d["policy_version"]) == (want.id, 1)
    c.__exit__(None, None, None)
    # GEOFENCE_POLICY shapes the first start only: the store's active policy wins after
    c2 = client_for(settings_for(policy={"settle_p": 0.9}))
    d = c2.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    assert (d["policy"], d["policy_version"]) == (want.id, 1)
    assert [i.version for i in store.policy_versions()] == [1]


def test_upload_list_get(client, keys):
    r = _post(client, keys, STRICT | {"calibration": [{"device_class": "lock-bd-v3"}]}, source="t")
    assert r.status_code == 201, r.text
    d = r.json()
    want = geofence.Policy.from_mapping(STRICT | {"calibration": [{"device_class": "lock-bd-v3"}]})
    assert d["version"] == 2 and d["active"] is False and d["prev_version"] == 1
    assert d["source"] == "t"
    assert d["policy"]["id"] == d["id"] == want.id
    assert geofence.Policy.from_mapping({k: v for k, v in d["policy"].items() if k != "id"}) == want
    assert r.headers["location"] == "/v1/policies/2"
    h = keys.h(keys.admin)
    listing = client.get("/v1/policies", headers=h).json()
    assert listing["active"] == 1
    assert [(p["version"], p["active"]) for p in listing["policies"]] == [(2, False), (1, True)]
    assert all({"id", "created_at"} <= set(p) for p in listing["policies"])
    assert client.get("/v1/policies/2", headers=h).json() == d
    assert client.get("/v1/policies/active", headers=h).json()["version"] == 1
    for path in ("/v1/policies/9", "/v1/policies/9/activate"):
        r = client.request("GET" if "activate" not in path else "POST", path, headers=h)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/policies", headers=keys.h(keys.meituan)).status_code == 403
    assert _post(client, keys, {}).json()["version"] == 3  # every field optional


def test_bad_documents_name_each_bad_field_and_store_nothing(client, keys, store):
    doc = {
        "tolerance_m": -1,
        "k_nearest": 2.5,
        "max_fix_age_s": "soon",
        "nope": 1,
        "settle_p": 0.3,
        "reject_p": 0.4,  # each fine alone, not together
        "calibration": [
            {"quality": "single", "bias_m": 1.0},
            {"bias_m": -1, "quality": "rtk", "colour": "red"},
            {"quality": "single"},  # a second row for the same key
        ],
    }
    r = _post(client, keys, doc)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    p = r.json()
    assert p["type"] == "/problems/invalid-policy"
    got = {(e["field"], e["rule"]) for e in p["errors"]}
    assert got == {
        ("tolerance_m", "range"),
        ("k_nearest", "type"),
        ("max_fix_age_s", "type"),
        ("nope", "unknown"),
        ("reject_p", "range"),
        ("calibration[1].bias_m", "range"),
        ("calibration[1].quality", "enum"),
        ("calibration[1].colour", "unknown"),
    }
    by_field = {e["field"]: e for e in p["errors"]}
    assert by_field["calibration[1].bias_m"]["pointer"] == "/calibration/1/bias_m"
    # the duplicate row is named once the rows themselves are valid
    doc["calibration"][1] = {"quality": "dgps"}
    p = _post(client, keys, {"calibration": doc["calibration"]}).json()
    assert [(e["field"], e["rule"]) for e in p["errors"]] == [("calibration[2]", "duplicate")]
    # pairs judged together: valid together although settle_p fails over the defaults
    assert _post(client, keys, {"settle_p": 0.04, "reject_p": 0.01}).status_code == 201
    assert _post(client, keys, [1]).json()["errors"][0]["rule"] == "type"
    bad_json = client.post(
        "/v1/policies",
        content=b"{",
        headers=keys.h(keys.admin) | {"content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert [i.version for i in store.policy_versions()] == [2, 1]


def test_activation_and_rollback_switch_decisions_and_replay_uses_the_recorded_policy(
    client, keys, make_body, store
):
    h, op = keys.h(keys.admin), keys.h(keys.meituan)
    body = make_body(0, n_fixes=2)
    before = client.post("/v1/checks", json=body, headers=op).json()
    v2 = _post(client, keys, STRICT).json()
    r = client.post("/v1/policies/2/activate", headers=h)
    assert r.status_code == 200, r.text
    act = r.json()
    assert (act["active"], act["previous"], act["policy"]["version"]) == (2, 1, 2)
    assert act["policy"]["active"] is True
    after = client.post("/v1/checks", json=body, headers=op).json()
    assert (after["policy"], after["policy_version"]) == (v2["id"], 2)
    assert (before["policy_version"], before["outcome"]) == (1, "settle")
    assert after["outcome"] != "settle"  # the stricter policy decides
    assert client.get("/v1/policies/active", headers=h).json()["version"] == 2
    assert "geofence_active_policy_version 2.0" in client.get("/metrics").text
    rec = client.get(f"/v1/checks/{after['check_id']}", headers=op).json()
    assert (rec["policy"], rec["policy_version"]) == (v2["id"], 2)
    assert rec["decision"] == after

    back = client.post("/v1/policies/1/activate", headers=h).json()
    assert (back["active"], back["previous"]) == (1, 2)
    again = client.post("/v1/checks", json=body, headers=op).json()
    assert (again["policy_version"], again["outcome"]) == (1, "settle")
    batch = client.post("/v1/checks/batch", json={"checks": [body, body]}, headers=op).json()
    assert {d["policy_version"] for d in batch["results"]} == {1}
    with store.engine.connect() as c:
        rows = c.execute(sa.select(schema.checks.c.policy_id, schema.checks.c.policy_version))
        assert sorted(set(rows)) == sorted({(before["policy"], 1), (v2["id"], 2)})

    # replay decides each check with the policy it recorded (not the active one):
    # the settled and the strict decisions both come out the same
    report = replay(store, since=None)
    assert (report.n_checks, report.n_changed, len(report.failures)) == (5, 0, 0)


# ---------------------------------------------------------------------------- migration
def test_a_database_of_schema_3_is_migrated_and_its_rows_still_replay(
    database_url, client_for, settings_for, keys, make_body
):
    c = client_for(settings_for())
    d = c.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    c.__exit__(None, None, None)
    # back to schema 3 as an earlier release left it: no policy versions, no new columns,
    # the policy's parameters without narrow_box_m and calibration, decisions without
    # policy_version
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        for table in ("policy_activations", "active_policy", "policy_versions"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        for col in ("policy_version", "device_class"):
            conn.exec_driver_sql(f"ALTER TABLE checks DROP COLUMN {col}")
        params = json.loads(
            conn.execute(sa.select(schema.policies.c.params)).scalar_one()  # type: ignore[arg-type]
        )
        old = {k: v for k, v in params.items() if k not in ("narrow_box_m", "calibration")}
        conn.execute(sa.update(schema.policies).values(params=json.dumps(old)))
        dec = {k: v for k, v in d.items() if k != "policy_version"}
        conn.execute(sa.update(schema.checks).values(decision=json.dumps(dec)))
        conn.execute(sa.update(schema.schema_version).values(version=3))
    engine.dispose()
    store = Store.open(database_url)
    try:
        with store.engine.connect() as conn:
            assert (
                conn.execute(sa.select(schema.schema_version.c.version)).scalar()
                == schema.SCHEMA_VERSION
            )
        rec = store.get_check(d["check_id"])
        assert rec is not None and rec["policy_version"] is None
        assert not store.has_policy_versions()
        report = replay(store, since=None)
        assert (report.n_checks, len(report.failures)) == (1, 0)
    finally:
        store.close()
    c = client_for(settings_for())  # the next start seeds policy version 1
    d2 = c.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    assert d2["policy_version"] == 1


# ---------------------------------------------------------------------------- two processes
@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


def test_activation_and_rollback_under_load_on_two_servers(
    tmp_path: Path,
    backend: str,
    new_database: Callable[[str], str],
    seed_file: Path,
    make_body,
    servers,
) -> None:
    """Two ``geofence serve`` processes on one database (SQLite file, PostgreSQL): a policy
    activated through one is used by the other within 2 s, a rollback through the other
    likewise, and no request fails meanwhile."""
    url = new_database(backend)
    a = Server(tmp_path, url, seed_file).launch()
    b = Server(tmp_path, url, seed_file).launch()
    servers += [a, b]
    a.wait_ready()
    b.wait_ready()
    keys = a.keys or b.keys
    admin = {"X-API-Key": keys["admin"]}
    op = {"X-API-Key": keys["meituan"]}
    up = httpx.post(a.url + "/v1/policies", json=STRICT, headers=admin, timeout=30)
    assert up.status_code == 201, up.text
    v2 = up.json()["version"]

    body = make_body(0, n_fixes=2)
    stop = threading.Event()
    # per server: (sent, answered, status, policy version; -1: a batch of mixed versions)
    seen: dict[str, list[tuple[float, float, int, int | None]]] = {a.url: [], b.url: []}

    def load(srv: Server, batch: bool) -> None:
        path = "/v1/checks/batch" if batch else "/v1/checks"
        payload = {"checks": [body, body]} if batch else body
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            while not stop.is_set():
                sent = time.monotonic()
                r = c.post(path, json=payload, headers=op)
                v = None
                if r.status_code == 200:
                    js = r.json()
                    ds = js["results"] if batch else [js]
                    vs = {d["policy_version"] for d in ds}
                    v = vs.pop() if len(vs) == 1 else -1
                seen[srv.url].append((sent, time.monotonic(), r.status_code, v))

    threads = [
        threading.Thread(target=load, args=(srv, batch))
        for srv in (a, b)
        for batch in (False, True)
    ]
    for t in threads:
        t.start()

    def switch(via: Server, to: int, other: Server) -> float:
        """Activate ``to`` through ``via``, wait for ``other`` to follow; when it was sent."""
        t_sent = time.monotonic()
        r = httpx.post(f"{via.url}/v1/policies/{to}/activate", headers=admin, timeout=30)
        assert r.status_code == 200, r.text
        while time.monotonic() - t_sent < PROPAGATION_S + 1:
            last = [v for *_, v in seen[other.url][-4:]]
            if last and all(v == to for v in last):
                break
            time.sleep(0.01)
        time.sleep(0.5)
        return t_sent

    try:
        time.sleep(0.5)
        t2 = switch(a, v2, b)
        t1 = switch(b, 1, a)  # rollback, through the other process
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    for srv in (a, b):
        rows = seen[srv.url]
        assert rows and all(s == 200 for _, _, s, _ in rows), {s for _, _, s, _ in rows}
        assert all(v in (1, v2) for *_, v in rows)  # never a batch of mixed policies
        lags = []
        for t_act, new, t_end in ((t2, v2, t1), (t1, 1, float("inf"))):
            first_new = min(done for _, done, _, v in rows if done >= t_act and v == new)
            lags.append(first_new - t_act)
            assert lags[-1] < PROPAGATION_S, f"{srv.url}: {lags[-1]:.2f} s"
            # once the process answered with the new policy, every request it is sent
            # afterwards is decided with it (until the next switch)
            assert all(v == new for sent, _, _, v in rows if first_new < sent < t_end)
        print(f"{backend} {srv.url}: {len(rows)} requests, none failed; switched after", lags)
