"""A batch's body stored once, compressed, each check's row pointing into it (migration 6).

On SQLite and PostgreSQL (the ``client``/``store`` fixtures run on both): a batch's
checks read back exactly as sent, byte for byte per check, on every reader (the
idempotent retry, ``GET /v1/checks/{id}``, the search, the export's iterator), whatever
the body's whitespace, string escapes and number forms, through each of the route's
three paths (the compiled reader, orjson, the request schema); the rows hold no body
of their own; old rows (inline bodies) still read; ``prune_bodies`` removes and counts
the bodies no row points to.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import columns
from api.operations.auditexport import prune, prune_bodies
from api.storage import Store
from api.storage import schema as t

_WS = st.sampled_from(["", " ", "\n", "\t", "  ", "\r\n "])


class _Num(str):
    """A number's JSON spelling (written as is)."""


def _spell(draw: st.DrawFn, x: float) -> _Num:
    return _Num(_spelling(draw, x))


def _spelling(draw: st.DrawFn, x: float) -> str:
    """One of the many JSON spellings of the number ``x``."""
    form = draw(st.sampled_from(["repr", "fixed", "exp", "EXP", "e0", "zeros"]))
    if form == "fixed":
        return f"{x:.9f}"
    if form == "exp":
        return f"{x:e}"
    if form == "EXP":
        m, e = f"{x:.12E}".split("E")
        return f"{m}E{'+' if draw(st.booleans()) else ''}{int(e)}"
    if form == "e0":
        return repr(x) + "e0"
    if form == "zeros" and "e" not in repr(x):
        return repr(x) + "000"
    return repr(x)


def _string(draw: st.DrawFn, s: str) -> str:
    return json.dumps(s, ensure_ascii=draw(st.booleans()))


@st.composite
def _check_text(draw: st.DrawFn, i: int, plain: bool, slow: bool) -> str:
    """One check's JSON text: plain (compact, ASCII, no escape) or with odd whitespace,
    escapes, unicode and number spellings; ``slow``: with a road stud (the schema's
    path)."""
    alphabet = (
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"\\')
        if plain
        else st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    )
    trip = draw(st.text(alphabet, min_size=1, max_size=12)) + f"#{i}"
    if not plain:  # a non-ASCII character, or its escape: never the compiled reader's
        trip += "é"
    lon0 = draw(st.floats(113.50, 113.60))
    lat0 = draw(st.floats(22.20, 22.30))
    fixes = []
    for _ in range(draw(st.integers(1, 4))):
        fix = {
            "lon": _spell(draw, lon0 + draw(st.floats(-5e-5, 5e-5))),
            "lat": _spell(draw, lat0 + draw(st.floats(-5e-5, 5e-5))),
        }
        if draw(st.booleans()):
            fix["accuracy_m"] = _spell(draw, draw(st.floats(1.0, 30.0)))
        fixes.append(fix)
    fields: list[tuple[str, Any]] = [
        ("trip_id", trip),
        ("bike_id", f"B-{i}"),
        ("vehicle_type", draw(st.sampled_from(["bike", "ebike"]))),
        ("ended_at", draw(st.sampled_from(["2026-11-26T08:15:30+08:00", "2026-11-26T00:15:31Z"]))),
        ("fixes", fixes),
    ]
    if slow:
        fields.append(("beacons", [{"id": "stud-nobody", "rssi": -60.0}]))
    if plain:
        body = {k: v for k, v in fields}
        body["fixes"] = [{k: float(v) for k, v in f.items()} for f in fixes]
        return orjson.dumps(body).decode()

    def ws() -> str:
        return draw(_WS)

    def value(v: Any) -> str:
        if isinstance(v, _Num):
            return str(v)
        if isinstance(v, str):
            return _string(draw, v)
        if isinstance(v, list):
            return "[" + ws() + ("," + ws()).join(value(x) + ws() for x in v) + "]"
        if isinstance(v, dict):
            return obj(list(v.items()))
        return json.dumps(v)

    def obj(items: list[tuple[str, Any]]) -> str:
        parts = [ws() + _string(draw, k) + ws() + ":" + ws() + value(v) + ws() for k, v in items]
        return "{" + ",".join(parts) + "}"

    return obj(fields)


@st.composite
def _batches(draw: st.DrawFn) -> tuple[str, bytes, list[str]]:
    """The route's path a batch takes, its body and each check's text in it."""
    path = draw(st.sampled_from(["plain", "parsed", "slow"]))
    n = draw(st.integers(1, 5))
    texts = [
        draw(_check_text(i, plain=path == "plain", slow=path == "slow" and i == n - 1))
        for i in range(n)
    ]
    if path == "plain":
        raw = b'{"checks":[' + ",".join(texts).encode() + b"]}"
    else:
        ws = draw(_WS)
        sep = draw(_WS) + "," + draw(_WS)
        raw = ("{" + ws + '"checks"' + ws + ":" + ws + "[" + sep.join(texts) + ws + "]}").encode()
    return path, raw, texts


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=_batches())
def test_a_batchs_checks_read_back_exactly_as_sent(client, keys, store, batch) -> None:
    path, raw, texts = batch
    scanned = columns.scan_batch(raw, "hellobike", 10_000)
    parsed = columns.check_batch(orjson.loads(raw)["checks"], "hellobike")
    assert (scanned is not None, parsed is not None) == {
        "plain": (True, True),
        "parsed": (False, True),
        "slow": (False, False),
    }[path]
    key = "k-" + uuid.uuid4().hex
    h = keys.h(keys.hellobike) | {"Content-Type": "application/json", "Idempotency-Key": key}
    r = client.post("/v1/checks/batch", content=raw, headers=h)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    ids = [d["check_id"] for d in results]
    prior = store.find_idempotent("hellobike", key)
    assert prior is not None
    assert prior.bodies == texts  # byte-identical text per check, in order
    assert prior.decisions == [orjson.dumps(d).decode() for d in results]
    again = client.post("/v1/checks/batch", content=raw, headers=h)  # a retry
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == r.content
    admin = keys.h(keys.admin)
    for cid, text in zip(ids, texts, strict=True):
        rec = client.get(f"/v1/checks/{cid}", headers=admin).json()
        assert rec["request"] == orjson.loads(text)
    found = client.get(
        "/v1/checks", params={"trip_id": orjson.loads(texts[0])["trip_id"]}, headers=admin
    ).json()["checks"]
    assert [c["request"] for c in found if c["check_id"] == ids[0]] == [orjson.loads(texts[0])]
    # in pages of 2: the keyset walk over a batch's rows (one decided_at) ends
    by_id = {rec["check_id"]: rec for rec in store.iter_checks(operator="hellobike", chunk=2)}
    assert [by_id[cid]["request"] for cid in ids] == [orjson.loads(x) for x in texts]
    with store.engine.connect() as c:
        c_ = t.checks.c
        rows = c.execute(
            sa.select(c_.body, c_.batch_id, c_.body_start, c_.body_end)
            .where(c_.check_id.in_(ids))
            .order_by(c_.body_start)
        ).all()
        stored = c.execute(
            sa.select(t.batch_bodies.c.body).where(t.batch_bodies.c.batch_id == rows[0].batch_id)
        ).scalar_one()
    assert all(row.body == "" for row in rows)  # no body of its own
    body = zstandard.ZstdDecompressor().decompress(stored)
    assert body == raw  # the batch's body, once, as received
    assert [body[row.body_start : row.body_end].decode() for row in rows] == texts


def test_a_key_used_for_another_batch_is_refused(client, keys, make_body) -> None:
    h = keys.h(keys.hellobike) | {"Idempotency-Key": "k-other"}
    first = {"checks": [make_body(i, trip=f"T-{i}") for i in range(3)]}
    assert client.post("/v1/checks/batch", json=first, headers=h).status_code == 200
    other = {"checks": [make_body(i, trip=f"U-{i}") for i in range(3)]}
    r = client.post("/v1/checks/batch", json=other, headers=h)
    assert r.status_code == 422 and "different batch" in r.json()["detail"]
    single = client.post("/v1/checks", json=make_body(0), headers=h)
    assert single.status_code == 422 and "batch" in single.json()["detail"]


def test_old_rows_with_inline_bodies_still_read(store: Store) -> None:
    """Rows written before migration 6 (their body inline, no pointer) read as before,
    beside a batch's rows that point into a stored body."""
    now = datetime.now(UTC)
    body = '{"trip_id" : "OLD", "bike_id":"B","vehicle_type":"bike","fixes":[]}'
    decision = '{"outcome":"settle"}'

    def row(cid: str, **kw: Any) -> dict[str, Any]:
        return {
            "check_id": cid,
            "operator": "meituan",
            "trip_id": "OLD",
            "bike_id": "B",
            "idempotency_key": None,
            "batch_id": None,
            "body": body,
            "decision": decision,
            "outcome": "settle",
            "policy_id": "p",
            "decided_at": now,
            "decided_day": "2026-11-26",
        } | kw

    raw = b'{"checks":[' + body.encode() + b"," + body.encode() + b"]}"
    start = len(b'{"checks":[')
    rows = [
        row("c_old_single"),
        row("c_old_batch", batch_id="b_old", idempotency_key="old"),
        row("c_new_0", batch_id="b_new", body="", body_start=start, body_end=start + len(body)),
        row(
            "c_new_1",
            batch_id="b_new",
            body="",
            body_start=start + len(body) + 1,
            body_end=start + 2 * len(body) + 1,
        ),
    ]
    with store.engine.begin() as c:
        for r in rows:  # one by one: an executemany takes the first row's columns
            store.insert_checks(c, [r])
        c.execute(
            sa.insert(t.batch_bodies).values(
                batch_id="b_new",
                operator="meituan",
                decided_at=now,
                n_checks=2,
                body=zstandard.ZstdCompressor().compress(raw),
            )
        )
    for cid in ("c_old_single", "c_old_batch", "c_new_0", "c_new_1"):
        rec = store.get_check(cid)
        assert rec is not None and rec["request"] == orjson.loads(body), cid
    old = store.find_idempotent("meituan", "old")
    assert old is not None and old.bodies == [body] and old.batch_id == "b_old"
    assert {r["check_id"] for r in store.search_checks(trip_id="OLD")} == {
        "c_old_single",
        "c_old_batch",
        "c_new_0",
        "c_new_1",
    }


def test_prune_removes_and_counts_the_bodies_no_check_points_to(
    client, keys, make_body, store
) -> None:
    h = keys.h(keys.hellobike)
    for k in range(3):
        batch = {"checks": [make_body(i, trip=f"P{k}-{i}") for i in range(4)]}
        assert client.post("/v1/checks/batch", json=batch, headers=h).status_code == 200
    assert client.post("/v1/checks", json=make_body(0), headers=h).status_code == 200

    def n_bodies() -> int:
        with store.engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(t.batch_bodies)).scalar_one()

    assert n_bodies() == 3
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert prune_bodies(store, later, confirm=False) == 3  # would be left with no check
    assert prune_bodies(store, confirm=True) == 0  # each still has its checks
    assert n_bodies() == 3
    assert prune(store, later, confirm=True) == 13
    assert prune_bodies(store, confirm=True) == 3
    assert n_bodies() == 0
    assert prune_bodies(store, confirm=True) == 0
