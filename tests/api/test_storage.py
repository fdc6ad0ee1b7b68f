"""The store on a real SQLite file and a real PostgreSQL database (every test runs on
both): schema and migrations, versions and activation, keys, the group-commit audit
log, idempotency look-ups, stats."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from api.audit import COMMITTED, CONFLICT, AuditWriter, WriterClosed
from api.storage import Store, china_day, hash_key, schema

COUNTS = {"n_zones": 1, "n_parking": 1, "n_fenced": 1, "n_no_parking": 0}


def _row(i: int, *, operator: str = "meituan", key: str | None = None, **kw: Any) -> dict:
    decided = kw.pop("decided_at", datetime(2026, 11, 26, 1, 0, tzinfo=UTC) + timedelta(seconds=i))
    row = {
        "check_id": f"c_{i:08d}",
        "operator": operator,
        "trip_id": f"T-{i}",
        "bike_id": f"B-{i}",
        "idempotency_key": key,
        "batch_id": None,
        "body": orjson.dumps({"trip_id": f"T-{i}"}).decode(),
        "decision": orjson.dumps({"outcome": kw.get("outcome", "settle")}).decode(),
        "outcome": "settle",
        "zone_id": "Z1",
        "district": "香洲区",
        "zone_set_version": 1,
        "policy_id": "pol-test",
        "ended_at": decided,
        "decided_at": decided,
        "decided_day": china_day(decided),
        "policy_version": 1,
        "device_class": None,
    }
    row.update(kw)
    return row


@pytest.fixture
def db(database_url: str) -> Store:
    s = Store.open(database_url, sqlite_synchronous="NORMAL")
    yield s
    s.close()


def test_open_creates_folder_wal_and_schema(tmp_path: Path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 'var' / 'nested' / 'g.db'}", sqlite_synchronous="NORMAL")
    try:
        assert (tmp_path / "var" / "nested" / "g.db").is_file()
        with s.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        s.close()


def test_schema_and_indexes(db: Store) -> None:
    with db.engine.connect() as c:
        v = c.execute(sa.select(schema.schema_version.c.version)).scalar()
    assert v == schema.SCHEMA_VERSION
    insp = sa.inspect(db.engine)
    tables = set(insp.get_table_names())
    assert {"zone_sets", "active_zone_set", "checks", "api_keys", "policies"} <= tables
    ix = {i["name"]: i["column_names"] for i in insp.get_indexes("checks")}
    assert ix["ix_checks_zone_decided_at"] == ["zone_id", "decided_at"]
    assert ix["ix_checks_batch"] == ["batch_id"]


def test_migration_2_upgrades_a_version_1_database(database_url: str) -> None:
    """A database left at schema version 1 (no zone index) is brought to the current one."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as c:
            schema.schema_version.create(c)
            schema._v1(c)
            c.exec_driver_sql("DROP INDEX ix_checks_zone_decided_at")  # as version 1 had it
            if c.dialect.name == "postgresql":
                c.exec_driver_sql(
                    "ALTER TABLE checks ALTER COLUMN zone_id TYPE VARCHAR(256), "
                    "ALTER COLUMN district TYPE VARCHAR(64)"
                )
            c.execute(
                sa.insert(schema.schema_version).values(
                    id=1, version=1, migrated_at=datetime.now(UTC)
                )
            )
    finally:
        engine.dispose()
    s = Store.open(database_url)
    try:
        names = {i["name"] for i in sa.inspect(s.engine).get_indexes("checks")}
        assert "ix_checks_zone_decided_at" in names
        with s.engine.begin() as c:
            s.insert_checks(c, [_row(1, zone_id="Z" * 300, district="区" * 100)])
        assert s.get_check("c_00000001")["decision"] == {"outcome": "settle"}
    finally:
        s.close()


def test_concurrent_activations_are_serialised(database_url: str, db: Store) -> None:
    """Activations from many connections at once: each records the version it replaced,
    so the history is one chain."""
    from concurrent.futures import ThreadPoolExecutor

    doc = b'{"type":"FeatureCollection","features":[]}'
    for i in range(4):
        db.add_zone_set(
            doc, checksum=f"{i}" * 64, counts=COUNTS, report={}, source=f"v{i}", activate=i == 0
        )
    others = [Store.open(database_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as ex:
            prevs = list(ex.map(lambda k: others[k % 4].activate(2 + k % 3), range(24)))
    finally:
        for o in others:
            o.close()
    history = list(reversed(db.activations()))  # oldest first
    assert len(history) == 25
    for before, after in itertools.pairwise(history):
        assert after["previous"] == before["version"]
    assert sorted(p for p in prevs if p is not None) == sorted(h["previous"] for h in history[1:])


def test_migrate_is_idempotent(tmp_path: Path, db: Store) -> None:
    again = Store.open(str(db.engine.url))
    try:
        assert schema.migrate(again.engine) == schema.SCHEMA_VERSION
        with again.engine.connect() as c:
            assert (
                c.execute(sa.select(sa.func.count()).select_from(schema.schema_version)).scalar()
                == 1
            )
    finally:
        again.close()


def test_zone_set_versions_are_assigned_and_activation_is_atomic(db: Store) -> None:
    assert db.active_version() is None
    a = db.add_zone_set(
        b'{"type":"FeatureCollection","features":[]}',
        checksum="a" * 64,
        counts=COUNTS,
        report={"ok": True},
        source="one",
        activate=True,
    )
    b = db.add_zone_set(
        b'{"type":"FeatureCollection","features":[]}',
        checksum="b" * 64,
        counts=COUNTS,
        report={"ok": True},
        source="two",
    )
    assert (a.version, b.version) == (1, 2)
    assert b.prev_version == 1 and not b.active
    assert db.active_version() == 1
    assert db.activate(2, actor="key_x") == 1
    assert db.active_version() == 2
    assert db.activate(1) == 2  # rollback
    assert [h["version"] for h in db.activations()] == [1, 2, 1]
    with pytest.raises(KeyError):
        db.activate(99)
    assert db.active_version() == 1
    infos = db.zone_sets()
    assert [i.version for i in infos] == [2, 1]
    assert [i.active for i in infos] == [False, True]
    assert db.zone_set(2).report == {"ok": True}
    assert db.zone_set(3) is None
    assert db.zone_set_document(1).startswith('{"type"')


def test_keys_are_stored_as_hashes_only(db: Store, tmp_path: Path) -> None:
    key, rec = db.create_key("operator", "qingju")
    assert key.startswith("gfk_") and len(key) > 40
    with db.engine.connect() as c:
        stored = c.execute(sa.select(schema.api_keys)).all()
    assert len(stored) == 1
    assert key not in repr(stored)
    assert stored[0].key_hash == hash_key(key)
    assert db.lookup_key(key).operator == "qingju"
    assert db.lookup_key(key + "x") is None
    assert db.revoke_key(rec.id).revoked
    assert db.lookup_key(key).revoked
    with pytest.raises(KeyError):
        db.revoke_key("key_nope")
    for role, op in (("operator", None), ("admin", "meituan"), ("root", None)):
        with pytest.raises(ValueError):
            db.create_key(role, op)


def _url(db: Store) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def test_group_commit_records_every_row_in_fewer_transactions(db: Store) -> None:
    commits: list[int] = []

    async def main() -> list[str]:
        w = AuditWriter(_url(db), on_commit=lambda n, u, s: commits.append(n))
        try:
            return await asyncio.gather(*(w.write([_row(i)]) for i in range(400)))
        finally:
            await w.aclose()

    results = asyncio.run(main())
    assert results == [COMMITTED] * 400
    assert db.count_checks() == 400
    assert sum(commits) == 400
    assert len(commits) < 400  # rows shared transactions


@pytest.mark.parametrize("window_s", [0.0, 0.003])
def test_writes_arriving_while_a_commit_is_in_flight_are_all_committed(
    db: Store, window_s: float
) -> None:
    commits: list[int] = []

    async def one(i: int) -> str:
        await asyncio.sleep(0.0005 * (i % 40))  # in waves, during earlier commits
        return await w.write([_row(i)])

    async def main() -> list[str]:
        nonlocal w
        w = AuditWriter(_url(db), window_s=window_s, on_commit=lambda n, u, s: commits.append(n))
        try:
            return await asyncio.gather(*(one(i) for i in range(300)))
        finally:
            await w.aclose()

    w: AuditWriter
    assert asyncio.run(main()) == [COMMITTED] * 300
    assert db.count_checks() == 300
    assert sum(commits) == 300


def test_unit_is_all_or_nothing_and_conflicts_spare_the_others(db: Store) -> None:
    async def main() -> list[str]:
        w = AuditWriter(_url(db))
        try:
            return await asyncio.gather(
                w.write([_row(1, key="k1")]),
                w.write([_row(2, key="k1")]),  # same operator and key: refused
                w.write([_row(3), _row(4), _row(5, key="k1")]),  # a batch holding it: all refused
                w.write([_row(6, key="k1", operator="hellobike")]),  # another operator: fine
                w.write([_row(7)]),
            )
        finally:
            await w.aclose()

    results = asyncio.run(main())
    assert results == [COMMITTED, CONFLICT, CONFLICT, COMMITTED, COMMITTED]
    assert db.check_ids() == {"c_00000001", "c_00000006", "c_00000007"}


def test_a_large_unit_does_not_block_small_ones(db: Store) -> None:
    async def main() -> tuple[str, list[str]]:
        w = AuditWriter(_url(db), max_rows=500)
        try:
            big = asyncio.ensure_future(w.write([_row(i) for i in range(100, 20_100)]))
            small = await asyncio.gather(*(w.write([_row(i)]) for i in range(50)))
            return await big, small
        finally:
            await w.aclose()

    big, small = asyncio.run(main())
    assert big == COMMITTED and small == [COMMITTED] * 50
    assert db.count_checks() == 20_050


def test_close_commits_what_is_queued_then_refuses(db: Store) -> None:
    async def main() -> list[str]:
        w = AuditWriter(_url(db), window_s=0.005)
        pending = [asyncio.ensure_future(w.write([_row(i)])) for i in range(50)]
        await asyncio.sleep(0)  # queued, not yet answered
        await w.aclose()
        with pytest.raises(WriterClosed):
            await w.write([_row(99)])
        assert not w.alive
        return [p.result() for p in pending]

    assert asyncio.run(main()) == [COMMITTED] * 50
    assert db.count_checks() == 50


def test_a_dead_writer_fails_the_waiting_requests(db: Store) -> None:
    async def main() -> None:
        w = AuditWriter(_url(db))
        assert await w.write([_row(1)]) == COMMITTED
        os.kill(w.pid, signal.SIGKILL)
        with pytest.raises(WriterClosed):
            for i in range(2, 200):  # until the loop notices the pipe closed
                await w.write([_row(i)])
                await asyncio.sleep(0.01)
        assert not w.alive
        await w.aclose()

    asyncio.run(main())


def test_idempotency_lookups(db: Store) -> None:
    def batch(first: int, key: str, n: int, batch_id: str, **kw: Any) -> list[dict]:
        return [
            _row(
                first + i,
                key=key if i == 0 else f"{key}/{i}",
                batch_id=batch_id,
                decision=f'{{"i": {i}}}',
                **kw,
            )
            for i in range(n)
        ]

    def decisions(key: str, operator: str = "meituan") -> list[Any] | None:
        found = db.find_idempotent(operator, key)
        assert found is None or found.batch_id is not None
        return None if found is None else found.decision_values()

    with db.engine.begin() as c:
        db.insert_checks(c, [_row(1, key="abc")])
        db.insert_checks(c, list(reversed(batch(2, "b_x", 12, "b_1"))))  # /10 sorts before /2
        db.insert_checks(c, batch(20, "B_X", 1, "b_2"))  # differs only in case
        db.insert_checks(c, batch(30, "b%", 2, "b_3"))  # LIKE metacharacters, literally
        db.insert_checks(c, batch(40, "b_x", 3, "b_4", operator="hellobike"))
    single = db.find_idempotent("meituan", "abc")
    assert single is not None and single.batch_id is None
    assert single.body_values() == [{"trip_id": "T-1"}]
    assert single.decision_values() == [{"outcome": "settle"}]
    assert db.find_idempotent("hellobike", "abc") is None
    assert decisions("b_x") == [{"i": i} for i in range(12)]
    assert decisions("B_X") == [{"i": 0}]
    assert decisions("b%") == [{"i": 0}, {"i": 1}]
    assert decisions("b_x", "hellobike") == [{"i": i} for i in range(3)]
    for missing in ("b", "b_", "b__", "B%", "b_x/", "%"):
        assert db.find_idempotent("meituan", missing) is None, missing
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as c:
        db.insert_checks(c, [_row(9, key="abc")])
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as c:  # one key space
        db.insert_checks(c, [_row(10, key="b_x")])


def test_iter_checks_pages_in_time_order(db: Store) -> None:
    t0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    with db.engine.begin() as c:
        db.insert_checks(c, [_row(i, decided_at=t0 + timedelta(seconds=i // 3)) for i in range(25)])
    got = [r["check_id"] for r in db.iter_checks(since=t0, chunk=4)]
    assert got == [f"c_{i:08d}" for i in range(25)]
    some = list(db.iter_checks(since=t0 + timedelta(seconds=2), until=t0 + timedelta(seconds=4)))
    assert [r["check_id"] for r in some] == [f"c_{i:08d}" for i in range(6, 12)]


def test_stats_groups_and_in_box_rate(db: Store) -> None:
    t0 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # 23:30 in Zhuhai
    rows = [
        _row(1, decided_at=t0, outcome="settle"),
        _row(2, decided_at=t0 + timedelta(hours=1), outcome="reject", zone_id=None),
        _row(3, decided_at=t0 + timedelta(hours=1), outcome="review", operator="qingju"),
        _row(4, decided_at=t0 + timedelta(hours=2), outcome="settle", operator="qingju"),
    ]
    with db.engine.begin() as c:
        db.insert_checks(c, rows)
    by_op = db.stats("operator")
    assert [(g["key"], g["checks"], g["settle"], g["in_box_rate"]) for g in by_op["groups"]] == [
        ("meituan", 2, 1, 0.5),
        ("qingju", 2, 1, 0.5),
    ]
    assert by_op["total"] == {
        "checks": 4,
        "settle": 2,
        "reject": 1,
        "review": 1,
        "in_box_rate": 0.5,
    }
    by_day = db.stats("day")
    assert [(g["key"], g["checks"]) for g in by_day["groups"]] == [
        ("2026-11-25", 1),
        ("2026-11-26", 3),
    ]
    ranged = db.stats("operator", since=t0 + timedelta(minutes=30), until=t0 + timedelta(hours=2))
    assert ranged["total"]["checks"] == 2
    assert db.stats("zone", since=t0 + timedelta(days=9))["total"]["in_box_rate"] is None


def test_writer_tuples_store_what_sqlalchemy_stores(db: Store) -> None:
    """A row written by the audit writer (a tuple, the driver's executemany) reads back
    exactly as the same row inserted through SQLAlchemy (timestamps included)."""
    from api.audit import COLUMNS

    odd = datetime(1, 1, 1, 0, 0, 0, 5, tzinfo=UTC)  # a year below 1000, microseconds
    rows = [_row(1), _row(2, ended_at=odd), _row(3, ended_at=None, district=None)]
    twins = [dict(r, check_id=r["check_id"] + "t") for r in rows]

    async def main() -> str:
        w = AuditWriter(_url(db))
        try:
            return await w.write([tuple(r[c] for c in COLUMNS) for r in twins])
        finally:
            await w.aclose()

    with db.engine.begin() as c:
        db.insert_checks(c, rows)
    assert asyncio.run(main()) == COMMITTED
    with db.engine.connect() as c:
        raw = {
            r[0]: r[1:] for r in c.exec_driver_sql(f"SELECT {', '.join(COLUMNS)} FROM checks").all()
        }
    for r in rows:
        assert raw[r["check_id"] + "t"] == raw[r["check_id"]]
        rec, twin = db.get_check(r["check_id"]), db.get_check(r["check_id"] + "t")
        assert rec is not None and twin is not None
        assert {k: v for k, v in twin.items() if k != "check_id"} == {
            k: v for k, v in rec.items() if k != "check_id"
        }


def test_new_ids_are_new_id_vectorized() -> None:
    import re
    import time

    from api.service import _CROCKFORD, new_id, new_ids

    def millisecond(i: str) -> int:
        n = 0
        for ch in i[2:]:
            n = n * 32 + _CROCKFORD.index(ch)
        return n >> 80

    now = time.time_ns() // 1_000_000
    one, many = new_id(), new_ids(5000)
    assert len(set(many)) == 5000 and new_ids(0) == []
    assert new_ids(2, "b_")[1].startswith("b_")
    for i in (one, *many):
        assert re.fullmatch(r"c_[0-9A-HJKMNP-TV-Z]{26}", i)
        assert 0 <= millisecond(i) - now < 5000


def test_the_writer_reconnects_after_the_database_dropped_its_connection(
    new_database: Any,
) -> None:
    """PostgreSQL ended the writer's connection between two commits (a restart, a
    failover): the next commit opens a new one and succeeds, as the pool's pre-ping did."""
    db = Store.open(new_database("postgresql"))

    async def main() -> list[str]:
        w = AuditWriter(_url(db))
        try:
            first = await w.write([_row(1)])
            with db.engine.begin() as c:
                c.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname = current_database()"
                )
            return [first, await w.write([_row(2)]), await w.write([_row(3)])]
        finally:
            await w.aclose()

    try:
        assert asyncio.run(main()) == [COMMITTED] * 3
        assert db.count_checks() == 3
    finally:
        db.close()


@pytest.mark.parametrize("senders", [1, 8])
def test_the_writer_keeps_the_sqlite_log_bounded(tmp_path: Path, senders: int) -> None:
    """The writer checkpoints SQLite's write-ahead log itself (in a thread beside the
    commits, not inside one): the log stays bounded while 20 MB of rows are written
    (~55 MB of log without checkpoints), by one sender back to back (the writer idles
    between commits) or by eight at once (it never does: the log is still wholly copied
    now and then, or it would only grow), and every row is in the database."""
    path = tmp_path / "g.db"
    db = Store.open(f"sqlite:///{path}")
    big = orjson.dumps({"trip_id": "T", "fixes": ["x" * 2000]}).decode()

    async def main() -> None:
        w = AuditWriter(_url(db))

        async def send(first: int) -> None:
            for k in range(first, 100, senders):
                rows = [_row(k * 100 + i, body=big) for i in range(100)]
                assert await w.write(rows) == COMMITTED

        try:
            await asyncio.gather(*(send(s) for s in range(senders)))
            assert os.path.getsize(f"{path}-wal") < 16_000_000
        finally:
            await w.aclose()

    try:
        asyncio.run(main())
        assert db.count_checks() == 10_000
    finally:
        db.close()


def test_a_restart_builds_the_zone_set_from_its_snapshot(
    db: Store, small_fc: dict[str, Any], small_fc_v2: dict[str, Any]
) -> None:
    from api import service
    from geofence import ZoneSet, zoneset

    fmt = zoneset.SNAPSHOT_FORMAT
    info, _, zs = service.store_zone_set(db, orjson.dumps(small_fc), source="t")
    assert info is not None and zs is not None
    stored = db.zone_set_snapshot(info.version, fmt)
    assert stored is not None and ZoneSet.from_snapshot(stored).checksum == zs.checksum
    assert db.zone_set_snapshot(info.version, "another-format") is None
    loaded = service.load_zone_set(db, info.version)
    assert (loaded.checksum, loaded.version) == (zs.checksum, info.version)
    # the snapshot is what is read: one of another layout under this version shows it
    other = ZoneSet.from_geojson(small_fc_v2)
    db.save_zone_set_snapshot(info.version, fmt, other.to_snapshot())
    assert service.load_zone_set(db, info.version).checksum == other.checksum
    # one that cannot be read: the document decides, and a good snapshot replaces it
    db.save_zone_set_snapshot(info.version, fmt, b"not a snapshot")
    assert service.load_zone_set(db, info.version).checksum == zs.checksum
    again = db.zone_set_snapshot(info.version, fmt)
    assert again is not None and ZoneSet.from_snapshot(again).checksum == zs.checksum


def test_a_row_that_fails_its_group_commit_fails_only_its_own_request(db: Store) -> None:
    """Issue 19: a value the driver or the database refuses fails its own unit only."""

    async def main() -> list[Any]:
        w = AuditWriter(_url(db))
        try:
            jobs = [w.write([_row(i)]) for i in range(20)]
            # an integer no database column holds: the driver refuses the row
            jobs.insert(10, w.write([_row(100), _row(101, policy_version=2**70)]))
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await w.aclose()

    results = asyncio.run(main())
    assert results[:10] + results[11:] == [COMMITTED] * 20
    assert isinstance(results[10], Exception)
    assert db.count_checks() == 20
