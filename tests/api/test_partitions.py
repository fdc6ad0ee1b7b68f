"""The audit log partitioned by month on PostgreSQL (:mod:`api.storage.partitions`, the
migration that converts a plain ``checks`` table), against an oracle: the same rows in a
SQLite file, whose plain table answers every read the same way (the API's answers are
the store's).

A populated database of the schema before the step is migrated: every row, and every
answer (by id, search, pages, stats, idempotency look-ups, the export's iteration),
is the same afterwards. Idempotency races are settled across months and routes by the
key table. A month without a partition lands in the default partition, and moves to
its own when one is made. ``prune`` drops the months wholly before the cut, deletes the
rest, and counts exactly what SQLite's row-by-row delete counts. Through the app:
``GET /v1/checks/{id}``, search, stats, replay and the Parquet export across months.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.audit import COLUMNS, COMMITTED, CONFLICT, AuditWriter
from api.cli import app
from api.operations.auditexport import prune
from api.storage import Store, china_day, schema
from api.storage.partitions import DEFAULT, ensure_months, month_of, partitions

runner = CliRunner()
T0 = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def backend() -> str:
    """This module's databases are PostgreSQL's (the partitioned table is theirs)."""
    return "postgresql"


def _row(i: int, at: datetime, **kw: Any) -> dict[str, Any]:
    outcome = ("settle", "reject", "review")[i % 3]
    row = {
        "check_id": f"c_{i:08d}",
        "operator": ("meituan", "hellobike")[i % 2],
        "trip_id": f"T-{i % 17}",
        "bike_id": f"B-{i}",
        "idempotency_key": None,
        "batch_id": None,
        "body": orjson.dumps({"trip_id": f"T-{i % 17}", "i": i}).decode(),
        "decision": orjson.dumps({"outcome": outcome, "i": i}).decode(),
        "outcome": outcome,
        "zone_id": None if outcome == "reject" else f"Z{i % 5}",
        "district": "香洲区",
        "zone_set_version": 1,
        "policy_id": "pol-test",
        "ended_at": at,
        "decided_at": at,
        "decided_day": china_day(at),
        "policy_version": 1,
        "device_class": None,
    }
    return row | kw


def _history() -> list[dict[str, Any]]:
    """~600 checks over July-December 2026: singles, keyed singles, keyed batches, and
    rows on both sides of month boundaries (UTC) and of a China-time day."""
    rows: list[dict[str, Any]] = []
    i = 0
    for k in range(180):
        at = T0 + timedelta(hours=k * 24 + k % 7, microseconds=k)
        rows.append(_row(i, at, idempotency_key=f"k{k}" if k % 3 == 0 else None))
        i += 1
        if k % 10 == 0:  # a batch of 1-4 checks under one key, one decided_at
            b = f"b_{k:04d}"
            for j in range(1 + k % 4):
                key = f"bk{k}" if j == 0 else f"bk{k}/{j}"
                rows.append(_row(i, at, idempotency_key=key, batch_id=b))
                i += 1
    for month in (8, 9, 10, 11, 12):  # the last microsecond of a month, the first of the next
        edge = datetime(2026, month, 1, tzinfo=UTC)
        rows.append(_row(i, edge - timedelta(microseconds=1)))
        rows.append(_row(i + 1, edge, idempotency_key=f"edge{month}"))
        i += 2
    return rows


def _v_before(url: str) -> int:
    """Bring ``url`` to the schema version before the partitioning step; that version."""
    upto = schema.MIGRATIONS.index(schema._partition_checks)
    engine = sa.create_engine(url)
    try:
        return schema.migrate(engine, upto)
    finally:
        engine.dispose()


def _answers(s: Store, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the store answers about ``rows`` (the API's reads)."""
    mid = datetime(2026, 10, 1, tzinfo=UTC)
    out: dict[str, Any] = {
        "by_id": [s.get_check(r["check_id"]) for r in rows[::7]],
        "missing": s.get_check("c_nobody"),
        "count": s.count_checks(),
        "iter": [r["check_id"] for r in s.iter_checks(chunk=37)],
        "iter_range": [r["check_id"] for r in s.iter_checks(since=mid, operator="meituan")],
        "keys": {
            (r["operator"], k): (
                None if (f := s.find_idempotent(r["operator"], k)) is None else f.decision_values()
            )
            for r in rows
            if (k := r["idempotency_key"]) and "/" not in k
        },
    }
    page, pages = None, []
    while True:  # keyset pages across the months, newest first
        got = s.search_checks(operator="hellobike", before=page, limit=23)
        pages.append([r["check_id"] for r in got])
        if len(got) < 23:
            break
        page = (datetime.fromisoformat(got[-1]["decided_at"]), got[-1]["check_id"])
    out["pages"] = pages
    out["trip"] = s.search_checks(trip_id="T-3", since=T0 + timedelta(days=40), limit=500)
    for g in ("operator", "district", "zone", "day"):
        out[g] = s.stats(g)  # type: ignore[arg-type]
        out[g + "_range"] = s.stats(g, since=mid - timedelta(days=45), until=mid)  # type: ignore[arg-type]
    return out


@pytest.fixture
def twin(new_database: Callable[[str], str]) -> Iterator[Store]:
    """A SQLite store: the oracle."""
    s = Store.open(new_database("sqlite"), sqlite_synchronous="OFF")
    yield s
    s.close()


def _months(conn: sa.Connection) -> Counter[str]:
    return Counter(
        dict(
            conn.exec_driver_sql(
                "SELECT tableoid::regclass::text, count(*) FROM checks GROUP BY 1"
            ).all()
        )
    )


def test_migrating_a_populated_database_keeps_every_row_and_answer(
    database_url: str, twin: Store
) -> None:
    rows = _history()
    _v_before(database_url)
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as c:
            c.execute(sa.insert(schema.checks), rows)
        with engine.connect() as c:
            before = c.execute(sa.select(schema.checks).order_by(schema.checks.c.check_id)).all()
    finally:
        engine.dispose()
    with twin.engine.begin() as c:
        twin.insert_checks(c, rows)

    s = Store.open(database_url)
    try:
        with s.engine.connect() as c:
            after = c.execute(sa.select(schema.checks).order_by(schema.checks.c.check_id)).all()
            where = _months(c)
            n_keys = c.execute(sa.select(sa.func.count()).select_from(schema.check_keys)).scalar()
        assert after == before and len(after) == len(rows)
        expect = Counter(f"checks_p{r['decided_at']:%Y%m}" for r in rows)
        assert where == expect  # each row in its own month's partition, none in the default
        claimed = [r for r in rows if r["idempotency_key"] and "/" not in r["idempotency_key"]]
        assert n_keys == len(claimed)  # a request's key, not a batch's key/1, key/2 …
        assert _answers(s, rows) == _answers(twin, rows)
        with s.engine.connect() as c:
            names = {p.name for p in partitions(c)}
        now = month_of(datetime.now(UTC))
        assert {DEFAULT, f"checks_p{now:%Y%m}"} <= names
        assert {f"checks_p2026{m:02d}" for m in range(7, 13)} <= names
    finally:
        s.close()


def _url(s: Store) -> str:
    return s.engine.url.render_as_string(hide_password=False)


def test_idempotency_races_across_months_and_routes_answer_one_decision(
    database_url: str,
) -> None:
    """Units with the same key, decided in different months (different partitions), on
    the single route's and the batch route's shapes, written by two writer processes at
    once: per key, one unit commits and the other is answered CONFLICT."""
    s = Store.open(database_url)
    nov, dec = datetime(2026, 11, 30, 23, 59, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    with s.engine.begin() as c:
        ensure_months(c, dec, since=nov)

    def single(i: int, key: str, at: datetime) -> list[tuple[Any, ...]]:
        r = _row(i, at, operator="meituan", idempotency_key=key)
        return [tuple(r[c] for c in COLUMNS)]

    def batch(i: int, key: str, at: datetime) -> list[tuple[Any, ...]]:
        rs = [
            _row(i + j, at, operator="meituan", batch_id=f"b_{i}", idempotency_key=k)
            for j, k in enumerate((key, f"{key}/1", f"{key}/2"))
        ]
        return [tuple(r[c] for c in COLUMNS) for r in rs]

    async def main() -> list[tuple[str, str]]:
        a, b = AuditWriter(_url(s)), AuditWriter(_url(s))
        try:
            pairs = []
            for k in range(40):
                first = single(10 * k, f"race{k}", nov) if k % 2 else batch(10 * k, f"race{k}", nov)
                other = (
                    batch(10 * k + 5, f"race{k}", dec)
                    if k % 3
                    else single(10 * k + 5, f"race{k}", dec)
                )
                pairs.append(asyncio.gather(a.write(first), b.write(other)))
            return [tuple(p) for p in await asyncio.gather(*pairs)]  # type: ignore[misc]
        finally:
            await a.aclose()
            await b.aclose()

    try:
        results = asyncio.run(main())
        assert all(sorted(r) == [COMMITTED, CONFLICT] for r in results), results
        with s.engine.connect() as c:
            keyed = c.execute(
                sa.select(schema.checks.c.idempotency_key, schema.checks.c.decided_at)
            ).all()
        for k, (ra, _rb) in enumerate(results):
            won_first = ra == COMMITTED
            at = nov if won_first else dec
            n = (3 if k % 3 else 1) if not won_first else (1 if k % 2 else 3)
            rows = [r for r in keyed if r[0].split("/")[0] == f"race{k}"]
            assert len(rows) == n and {r[1] for r in rows} == {at}
            found = s.find_idempotent("meituan", f"race{k}")
            assert found is not None and len(found.decisions) == n
    finally:
        s.close()


def test_a_month_without_a_partition_lands_in_the_default_then_moves_to_its_own(
    database_url: str,
) -> None:
    s = Store.open(database_url)
    far = datetime(2031, 5, 3, 12, tzinfo=UTC)
    rows = [_row(i, far + timedelta(minutes=i), idempotency_key=f"far{i}") for i in range(20)]
    try:
        with s.engine.begin() as c:
            s.insert_checks(c, rows)
        with s.engine.connect() as c:
            assert _months(c) == Counter({DEFAULT: 20})
        seen = [s.get_check(r["check_id"]) for r in rows]
        keyed = [s.find_idempotent(r["operator"], r["idempotency_key"]) for r in rows]
        assert all(x is not None for x in seen + keyed)
        with s.engine.begin() as c:
            assert ensure_months(c, far, ahead=1) == ["checks_p203105", "checks_p203106"]
        with s.engine.connect() as c:
            assert _months(c) == Counter({"checks_p203105": 20})
        assert [s.get_check(r["check_id"]) for r in rows] == seen
        assert [s.find_idempotent(r["operator"], r["idempotency_key"]) for r in rows] == keyed
        with pytest.raises(sa.exc.IntegrityError), s.engine.begin() as c:  # keys still taken
            s.insert_checks(c, [_row(99, far, idempotency_key="far3")])
        with s.engine.begin() as c:
            assert ensure_months(c, far, ahead=1) == []  # nothing left to make
    finally:
        s.close()


@pytest.mark.parametrize(
    "cut",
    [datetime(2026, 10, 15, 12, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)],
    ids=["mid-month", "month-start"],
)
def test_prune_drops_whole_months_deletes_the_rest_and_counts_as_sqlite(
    database_url: str, twin: Store, cut: datetime
) -> None:
    rows = _history()
    # and some of a month without a partition, before the cut: in the default partition
    stray = [
        _row(5000 + i, datetime(2025, 3, 9, tzinfo=UTC), idempotency_key=f"s{i}") for i in range(7)
    ]
    rows += stray
    s = Store.open(database_url)
    try:
        with s.engine.begin() as c:
            ensure_months(c, datetime(2026, 12, 1, tzinfo=UTC), since=T0)
            s.insert_checks(c, rows)
        with twin.engine.begin() as c:
            twin.insert_checks(c, rows)
        removed = sum(r["decided_at"] < cut for r in rows)
        assert prune(s, cut, confirm=False) == removed  # only counted
        assert s.count_checks() == len(rows)
        assert prune(s, cut, confirm=True) == removed == prune(twin, cut, confirm=True)
        assert (
            s.check_ids()
            == twin.check_ids()
            == {r["check_id"] for r in rows if r["decided_at"] >= cut}
        )
        with s.engine.connect() as c:
            names = [p.name for p in partitions(c)]
        assert not {"checks_p202607", "checks_p202608", "checks_p202609"} & set(names)
        assert {"checks_p202610", "checks_p202611", "checks_p202612", DEFAULT} <= set(names)
        with s.engine.connect() as c:
            keys = set(c.execute(sa.select(schema.check_keys.c.idempotency_key)).scalars())
        kept_keys = [r["idempotency_key"] for r in rows if r["decided_at"] >= cut]
        assert keys == {k for k in kept_keys if k and "/" not in k}
        assert _answers(s, rows) == _answers(twin, rows)
        old = next(r for r in rows if r["idempotency_key"] and r["decided_at"] < cut)
        kept = next(r for r in rows if r["idempotency_key"] and r["decided_at"] >= cut)
        for st in (s, twin):  # a removed check's key is free again; a kept one's is not
            with st.engine.begin() as c:
                st.insert_checks(
                    c,
                    [
                        _row(
                            9000,
                            cut,
                            operator=old["operator"],
                            idempotency_key=old["idempotency_key"],
                        )
                    ],
                )
            with pytest.raises(sa.exc.IntegrityError), st.engine.begin() as c:
                st.insert_checks(
                    c,
                    [
                        _row(
                            9001,
                            cut,
                            operator=kept["operator"],
                            idempotency_key=kept["idempotency_key"],
                        )
                    ],
                )
        assert prune(s, cut, confirm=True) == 0
    finally:
        s.close()


def test_reads_replay_and_export_through_the_app_across_months(
    client, keys, make_body, settings, store, tmp_path
) -> None:
    """Checks posted through the app, then some moved back one and two months (rows move
    between partitions on an update of ``decided_at``): the API's reads, the idempotent
    answers, the replay and the export see every one, from every partition."""
    h, admin = keys.h(keys.meituan), keys.h(keys.admin)
    ids = []
    for i in range(6):
        r = client.post(
            "/v1/checks", json=make_body(i, trip=f"P-{i}"), headers=h | {"Idempotency-Key": f"p{i}"}
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["check_id"])
    batch = {"checks": [make_body(i, trip=f"PB-{i}") for i in (7, 8, 9)]}
    r = client.post("/v1/checks/batch", json=batch, headers=h | {"Idempotency-Key": "pb"})
    assert r.status_code == 200, r.text
    ids += [d["check_id"] for d in r.json()["results"]]
    now = datetime.now(UTC)
    with store.engine.begin() as c:
        ensure_months(c, now, since=now - timedelta(days=70))
        # a row moved to another partition is inserted there: the trigger claims its
        # key again, so the key's row goes first (the audit log is never updated)
        for k, cid in enumerate(ids):
            if k % 3:
                c.execute(sa.delete(schema.check_keys).where(schema.check_keys.c.check_id == cid))
                c.exec_driver_sql(
                    "UPDATE checks SET decided_at = decided_at - %(d)s WHERE check_id = %(i)s",
                    {"d": timedelta(days=31 * (k % 3)), "i": cid},
                )
        spread = _months(c)
    assert len(spread) == 3 and sum(spread.values()) == len(ids)

    got = {cid: client.get(f"/v1/checks/{cid}", headers=admin) for cid in ids}
    assert all(g.status_code == 200 for g in got.values())
    listed = client.get("/v1/checks", params={"limit": 100}, headers=h).json()
    listed_ids = [x["check_id"] for x in listed["checks"]]
    by_time = sorted(ids, key=lambda i: (got[i].json()["decided_at"], i), reverse=True)
    assert listed_ids == by_time
    stats = client.get("/v1/stats", params={"group_by": "operator"}, headers=admin).json()
    assert stats["total"]["checks"] == len(ids)
    again = client.post(
        "/v1/checks", json=make_body(0, trip="P-0"), headers=h | {"Idempotency-Key": "p0"}
    )
    assert again.status_code == 200 and again.json()["check_id"] == ids[0]
    again = client.post("/v1/checks/batch", json=batch, headers=h | {"Idempotency-Key": "pb"})
    assert [d["check_id"] for d in again.json()["results"]] == ids[6:]

    env = {
        "GEOFENCE_DATABASE_URL": settings.database_url,
        "GEOFENCE_SEED_FILE": str(settings.seed_file),
    }
    since = (now - timedelta(days=100)).isoformat()
    rep = runner.invoke(app, ["checks", "replay", "--since", since, "--json"], env=env)
    assert rep.exit_code == 0, rep.output
    assert json.loads(rep.stdout)["n_checks"] == len(ids)
    out = tmp_path / "all.parquet"
    r = runner.invoke(app, ["audit", "export", "--from", since, "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    table = pq.read_table(out)
    assert table.column("check_id").to_pylist() == list(reversed(by_time))
    assert [
        d.isoformat().replace("+00:00", "Z") for d in table.column("decided_at").to_pylist()
    ] == [got[i].json()["decided_at"] for i in reversed(by_time)]


def test_an_id_window_holds_the_time_its_id_was_drawn() -> None:
    from api.service import new_id, new_ids
    from api.storage.partitions import ID_SLACK, id_window

    before = datetime.now(UTC) - timedelta(milliseconds=1)
    ids = [new_id(), *new_ids(50), new_id("b_")]
    after = datetime.now(UTC) + timedelta(milliseconds=1)
    for i in ids:
        window = id_window(i)
        assert window is not None
        assert window[1] - window[0] == 2 * ID_SLACK
        assert before <= window[0] + ID_SLACK <= after
    for other in ("c_00000001", "c_" + "Z" * 26, "c_" + "I" * 26, "c_" + "0" * 25, ""):
        assert id_window(other) is None, other


def test_prune_waits_for_its_lock_a_bounded_time_and_can_be_run_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query holding ``checks`` (a long export) keeps a month from being dropped: prune
    gives up after its tries, says how many it removed, and inserts into the current
    month were not held up meanwhile; run again later, it removes the rest."""
    import threading
    import time

    from api.storage import partitions as parts

    monkeypatch.setattr(parts, "LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(parts, "LOCK_TRIES", 3)
    rows = _history()
    cut = datetime(2026, 10, 1, tzinfo=UTC)
    s = Store.open(database_url)
    try:
        with s.engine.begin() as c:
            ensure_months(c, datetime(2026, 12, 1, tzinfo=UTC), since=T0)
            s.insert_checks(c, rows)
        holder = s.engine.connect()
        holder.exec_driver_sql("SELECT count(*) FROM checks_p202608").scalar()  # holds it
        inserted: list[float] = []

        def insert_now() -> None:
            t0 = time.perf_counter()
            with s.engine.begin() as c:
                s.insert_checks(c, [_row(7777, datetime.now(UTC))])
            inserted.append(time.perf_counter() - t0)

        t = threading.Thread(target=insert_now)
        with pytest.raises(parts.PruneBlocked) as blocked:
            t.start()
            prune(s, cut, confirm=True)
        t.join(30)
        july = sum(r["decided_at"] < datetime(2026, 8, 1, tzinfo=UTC) for r in rows)
        assert blocked.value.removed == july  # July dropped, August held
        assert "checks_p202608" in str(blocked.value)
        assert inserted and inserted[0] < 5
        holder.rollback()
        holder.close()
        rest = sum(r["decided_at"] < cut for r in rows) - july
        assert prune(s, cut, confirm=True) == rest
        assert s.count_checks() == len(rows) - july - rest + 1
    finally:
        s.close()
