"""The HTTP habits of issue 15: idempotency across the single and batch routes,
conditional and compressed downloads, compressed request bodies, trailing slashes and
HEAD, cursor pagination, the check search, X-Request-ID and CORS.

Every test over a database runs on SQLite and on PostgreSQL (the ``client`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from api import schema
from api.storage import Store

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
    s = Store.open(database_url)
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
        with s.engine.begin() as c:
            s.insert_checks(c, rows)
            c.execute(sa.update(schema.schema_version).values(version=4))
    finally:
        s.close()
    s = Store.open(database_url)
    try:
        old = s.find_idempotent("meituan", "old")
        assert old is not None and old.decision_values() == [{"i": 0}, {"i": 1}]
        both = s.find_idempotent("meituan", "both")  # the single check kept the bare key
        assert both is not None and both.batch_id is None
    finally:
        s.close()
