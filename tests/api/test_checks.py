"""``/v1/checks``: decisions, the audit log, idempotency, batches."""

from __future__ import annotations

from typing import Any

import geofence
from api.service import parse_time
from api.storage import Store

DECISION_FIELDS = {
    "outcome",
    "zone",
    "p_inside",
    "distance_m",
    "nearest",
    "reasons",
    "zone_set_version",
    "policy",
    "check_id",
    "decided_at",
    "policy_version",
}


def test_a_check_inside_a_fenced_box_settles_and_is_recorded(client, keys, make_body, store):
    r = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan))
    assert r.status_code == 200, r.text
    d = r.json()
    assert DECISION_FIELDS <= set(d)
    assert d["outcome"] == "settle"
    assert set(d["zone"]) == {"id", "kind", "fenced", "district", "name"}
    assert d["zone"]["fenced"] is True
    assert d["zone_set_version"] == 1
    assert d["check_id"].startswith("c_")
    assert r.headers["location"] == f"/v1/checks/{d['check_id']}"
    rec = client.get(r.headers["location"], headers=keys.h(keys.meituan)).json()
    assert rec["decision"] == d
    assert rec["operator"] == "meituan"
    assert rec["request"] == make_body(0)
    assert rec["policy"] == d["policy"]
    assert store.count_checks() == 1


def test_a_check_far_from_boxes_is_rejected_with_nearest_boxes(client, keys, make_body, far_point):
    r = client.post("/v1/checks", json=make_body(lonlat=far_point), headers=keys.h(keys.meituan))
    d = r.json()
    assert d["outcome"] == "reject"
    assert d["zone"] is None
    for n in d["nearest"]:
        assert set(n) == {"zone_id", "distance_m", "bearing_deg"}


def test_http_decision_equals_the_engine_on_the_same_input(client, keys, make_body, small_fc):
    body = make_body(3, accuracy_m=4.0, n_fixes=3, heading_deg=12.5, crs="gcj02")
    r = client.post("/v1/checks", json=body, headers=keys.h(keys.hellobike))
    d = r.json()
    index = geofence.ZoneIndex(geofence.ZoneSet.from_geojson(small_fc, version=1))
    check = geofence.Check.from_mapping(body, operator="hellobike")
    now = parse_time(d["decided_at"]).timestamp()
    want = geofence.decide(index, check, geofence.Policy(), now, d["check_id"]).to_dict()
    assert want | {"policy_version": 1} == d


def test_idempotent_retry_returns_the_first_decision_and_records_nothing(
    client, keys, make_body, store
):
    h = keys.h(keys.meituan) | {"Idempotency-Key": "trip-42-end"}
    first = client.post("/v1/checks", json=make_body(1), headers=h)
    again = client.post("/v1/checks", json=make_body(1), headers=h)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert store.count_checks() == 1
    # another operator's key space is its own
    other = client.post(
        "/v1/checks",
        json=make_body(1),
        headers=keys.h(keys.hellobike) | {"Idempotency-Key": "trip-42-end"},
    )
    assert other.json()["check_id"] != first.json()["check_id"]
    assert store.count_checks() == 2


def test_idempotency_key_reused_for_another_body_is_refused(client, keys, make_body, store):
    h = keys.h(keys.meituan) | {"Idempotency-Key": "k-1"}
    client.post("/v1/checks", json=make_body(1), headers=h)
    r = client.post("/v1/checks", json=make_body(2), headers=h)
    assert r.status_code == 422
    assert r.json()["type"] == "/problems/idempotency-conflict"
    assert store.count_checks() == 1


def test_batch_answers_in_order_and_records_every_check(client, keys, make_body, far_point, store):
    bodies = [make_body(i, trip=f"T-{i}") for i in range(5)] + [
        make_body(lonlat=far_point, trip="T-far")
    ]
    r = client.post("/v1/checks/batch", json={"checks": bodies}, headers=keys.h(keys.hellobike))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [d["outcome"] for d in results] == ["settle"] * 5 + ["reject"]
    assert len({d["check_id"] for d in results}) == 6
    assert store.count_checks() == 6
    for d, body in zip(results, bodies, strict=True):
        rec = store.get_check(d["check_id"])
        assert rec["trip_id"] == body["trip_id"]
        assert rec["decision"] == d


def test_batch_decisions_equal_single_decisions(client, keys, make_body):
    bodies = [make_body(i, trip=f"T-{i}", accuracy_m=3.0 + i) for i in range(8)]
    batch = client.post("/v1/checks/batch", json={"checks": bodies}, headers=keys.h(keys.meituan))
    singles = [
        client.post("/v1/checks", json=b, headers=keys.h(keys.meituan)).json() for b in bodies
    ]

    def core(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in ("check_id", "decided_at")}

    assert [core(d) for d in batch.json()["results"]] == [core(d) for d in singles]


def test_batch_idempotent_retry(client, keys, make_body, store):
    h = keys.h(keys.meituan) | {"Idempotency-Key": "batch-7"}
    bodies = {"checks": [make_body(i, trip=f"T-{i}") for i in range(3)]}
    first = client.post("/v1/checks/batch", json=bodies, headers=h)
    again = client.post("/v1/checks/batch", json=bodies, headers=h)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert store.count_checks() == 3


def test_batch_with_one_bad_check_records_nothing(client, keys, make_body, store):
    bad = make_body(1)
    bad["fixes"][0]["lat"] = 91.0
    r = client.post(
        "/v1/checks/batch", json={"checks": [make_body(0), bad]}, headers=keys.h(keys.meituan)
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["pointer"] == "/checks/1/fixes/0/lat"
    assert store.count_checks() == 0


def test_batch_with_an_undecidable_trail_names_the_check(client, keys, make_body, store):
    spread = make_body(0, n_fixes=2)
    spread["fixes"][1]["lon"] += 0.05  # five kilometres apart
    r = client.post(
        "/v1/checks/batch",
        json={"checks": [make_body(1), make_body(2), spread]},
        headers=keys.h(keys.meituan),
    )
    assert r.status_code == 422
    p = r.json()
    assert p["type"] == "/problems/invalid-check"
    assert p["errors"][0]["pointer"].startswith("/checks/2")
    assert store.count_checks() == 0


def test_get_unknown_check_is_404(client, keys):
    r = client.get("/v1/checks/c_nope", headers=keys.h(keys.admin))
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_decisions_are_counted_in_metrics(client, keys, make_body, far_point):
    client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan))
    client.post("/v1/checks", json=make_body(lonlat=far_point), headers=keys.h(keys.meituan))
    text = client.get("/metrics").text
    assert 'geofence_decisions_total{outcome="settle"} 1.0' in text
    assert 'geofence_decisions_total{outcome="reject"} 1.0' in text
    assert 'route="/v1/checks",status="200"' in text
    assert "geofence_active_zone_set_version 1.0" in text
    assert "geofence_audit_commit_rows_count" in text


def test_stored_rows_carry_version_policy_and_district(client, keys, make_body, store: Store):
    d = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    with store.engine.connect() as c:
        row = c.exec_driver_sql(
            "SELECT zone_set_version, policy_id, outcome, zone_id, district FROM checks"
        ).one()
    assert tuple(row) == (1, d["policy"], "settle", d["zone"]["id"], d["zone"]["district"])


def test_a_dead_audit_writer_answers_503_then_is_restarted(
    client_for, settings_for, keys, make_body, store
):
    import os
    import signal
    import time

    c = client_for(settings_for(active_poll_seconds=0.2))
    st = c.app.state.geofence
    assert c.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).status_code == 200
    os.kill(st.writer.pid, signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = c.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan))
        statuses.append(r.status_code)
        if r.status_code == 200 and 503 in statuses:
            break
        assert r.status_code in (200, 503), r.text
        time.sleep(0.05)
    assert 503 in statuses and statuses[-1] == 200
    assert store.count_checks() == statuses.count(200) + 1  # every 200 was recorded
