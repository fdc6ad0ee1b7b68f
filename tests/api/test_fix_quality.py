"""A fix's ``quality`` and a check's ``device_class`` end to end: ``POST /v1/checks`` (fast
and slow paths), ``POST /v1/checks/batch`` (the byte reader, the orjson reader, the
schema's path), the engine's arrays, the audit log, ``GET /v1/checks/{id}``, replay."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import geofence
from api.operations.replay import replay
from api.storage import schema
from geofence.decisions.inputs import Q_UNKNOWN, QUALITIES

STRIP = {"check_id", "decided_at"}


def _with(body: dict[str, Any], qualities: list[str | None], device_class: str | None):
    out = dict(body)
    out["fixes"] = [
        {k: v for k, v in f.items() if k != "quality"} | ({} if q is None else {"quality": q})
        for f, q in zip(body["fixes"], qualities, strict=True)
    ]
    if device_class is not None:
        out["device_class"] = device_class
    return out


@pytest.fixture
def bodies(make_body) -> list[dict[str, Any]]:
    """Checks taking each path of the batch route: plain (the byte reader), a non-ASCII
    id (orjson), a beacon (the schema's path); with and without qualities and class."""
    return [
        _with(make_body(0, trip="Q-0", n_fixes=2), ["rtk_fixed", "rtk_float"], "lock-bd-v3"),
        _with(make_body(1, trip="Q-1", n_fixes=2), [None, "single"], None),
        _with(make_body(2, trip="行程-2", n_fixes=1), ["dgps"], "app-android"),
        _with(make_body(3, trip="Q-3", n_fixes=1), [None], "lock-bd-v3")
        | {"beacons": [{"id": "ZH-BLE-NONE", "rssi": -60.0}]},
        _with(make_body(4, trip="Q-4", n_fixes=1), ["estimated"], None),
    ]


def _rows(store) -> dict[str, tuple[Any, ...]]:
    c = schema.checks.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(c.check_id, c.device_class, c.policy_version)).all()
    return {r.check_id: (r.device_class, r.policy_version) for r in rows}


def test_single_checks_carry_them_to_the_audit_log_and_back(client, keys, bodies, store):
    h = keys.h(keys.meituan)
    ids = []
    for b in bodies:  # the fast path, and the slow one (the beacon, the non-ASCII id)
        r = client.post("/v1/checks", json=b, headers=h)
        assert r.status_code == 200, r.text
        d = r.json()
        ids.append(d["check_id"])
        rec = client.get(f"/v1/checks/{d['check_id']}", headers=h).json()
        assert rec["request"] == b
        assert rec["decision"] == d and rec["policy_version"] == d["policy_version"] == 1
    rows = _rows(store)
    assert [rows[i] for i in ids] == [(b.get("device_class"), 1) for b in bodies]
    mine = [r["check_id"] for r in store.iter_checks(device_class="lock-bd-v3")]
    assert mine == [ids[0], ids[3]]


def test_a_batch_carries_them_on_every_path_and_decides_as_single_checks(
    client, keys, bodies, store
):
    h = keys.h(keys.meituan)
    for batch in (bodies[:2], bodies[:3], bodies):  # byte reader, orjson, schema's path
        r = client.post("/v1/checks/batch", json={"checks": batch}, headers=h)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        rows = _rows(store)
        for b, d in zip(batch, results, strict=True):
            one = client.post("/v1/checks", json=b, headers=h).json()
            assert {k: v for k, v in d.items() if k not in STRIP} == {
                k: v for k, v in one.items() if k not in STRIP
            }
            rec = client.get(f"/v1/checks/{d['check_id']}", headers=h).json()
            assert rec["request"] == b and rec["policy_version"] == 1
            assert rows[d["check_id"]] == (b.get("device_class"), 1)


def test_the_batch_route_hands_the_engine_their_codes(client, keys, bodies, monkeypatch):
    """The arrays the route decides are those of CheckBatch.from_checks (a spy on the
    engine's entry point: it records its argument and decides as usual)."""
    seen: list[geofence.CheckBatch] = []
    real = geofence.decide_arrays

    def spy(index, batch, *a: Any, **kw: Any):
        seen.append(batch)
        return real(index, batch, *a, **kw)

    monkeypatch.setattr(geofence, "decide_arrays", spy)
    h = keys.h(keys.meituan)
    for batch in (bodies[:2], bodies[:3]):  # the byte reader, the orjson reader
        seen.clear()
        assert client.post("/v1/checks/batch", json={"checks": batch}, headers=h).is_success
        (got,) = seen
        codes = {q: i for i, q in enumerate(QUALITIES)}
        want = np.full((len(batch), 2), Q_UNKNOWN, np.int8)
        for i, b in enumerate(batch):
            for j, f in enumerate(b["fixes"]):
                if "quality" in f:
                    want[i, j] = codes[f["quality"]]
        assert got.quality is not None
        np.testing.assert_array_equal(got.quality, want)
        names = [b.get("device_class") for b in batch]
        assert got.device_classes == tuple(dict.fromkeys(n for n in names if n))
        assert got.device_class is not None
        assert [got.device_classes[c] if c >= 0 else None for c in got.device_class] == names


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"quality": "rtk"}, "fixes/0/quality"),
        ({"quality": 4}, "fixes/0/quality"),
        ({"device_class": "x" * 65}, "device_class"),
        ({"device_class": ""}, "device_class"),
    ],
)
def test_bad_values_are_422_naming_the_field_and_record_nothing(
    client, keys, make_body, store, change, pointer
):
    bad = make_body(1, trip="BAD")
    if "quality" in change:
        bad["fixes"][0]["quality"] = change["quality"]
    else:
        bad |= change
    h = keys.h(keys.meituan)
    r = client.post("/v1/checks", json=bad, headers=h)
    assert r.status_code == 422, r.text
    assert [e["pointer"] for e in r.json()["errors"]] == [f"/{pointer}"]
    r = client.post("/v1/checks/batch", json={"checks": [make_body(0), bad]}, headers=h)
    assert r.status_code == 422, r.text
    assert [e["pointer"] for e in r.json()["errors"]] == [f"/checks/1/{pointer}"]
    assert store.count_checks() == 0


def test_replay_decides_them_again_with_equal_decisions(client, keys, bodies, store):
    h = keys.h(keys.meituan)
    for b in bodies:
        assert client.post("/v1/checks", json=b, headers=h).is_success
    assert client.post("/v1/checks/batch", json={"checks": bodies}, headers=h).is_success
    report = replay(store, since=None)
    assert (report.n_checks, report.n_changed, len(report.failures)) == (10, 0, 0)
