"""The audit log partitioned by month on PostgreSQL: what it costs and what it saves.

On a throwaway cluster (:class:`api.testing.pgtest.TempCluster`, fsync off: the figures are
CPU and I/O of the statements, not of the disk's flushes), two databases hold the same
``--rows`` checks spread evenly over ``--months`` months (a third of them with an
idempotency key, ~0.7 kB of JSON a row, as the API writes them):

* ``plain``: the schema before partitioning (one table, ``check_id`` primary key,
  ``(operator, idempotency_key)`` unique);
* ``parted``: the same database after the migration (:mod:`api.storage.partitions`); its
  duration is the migration figure.

Then, on both: ``Store.get_check`` by a random existing id (median of ``--lookups``
calls, the store's whole path: pool, SQLAlchemy, one or two round trips; on ``parted``
the id's time narrows it to a month, :func:`api.storage.partitions.id_window`) and the server's
planning and execution time of a look-up by id alone, every partition
(``EXPLAIN ANALYZE``); the audit writer's
statement (``executemany`` of 10,000 rows, keyed and not, one transaction, rolled
back) and one ``COPY`` of the same rows (what a writer sending one statement a commit
would pay); and retention: ``prune`` of the oldest half of the months on ``parted``
against one ``DELETE`` of the same rows on ``plain``.

Writes ``bench/results/partitions.json`` and prints it.

    python -m bench.partitions [--rows 360000] [--months 12]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from api.audit import COLUMNS
from api.operations.auditexport import prune
from api.service import _CROCKFORD
from api.storage import Store, china_day, schema
from api.storage.partitions import id_window
from api.testing.pgtest import TempCluster

RESULTS = Path(__file__).parent / "results"


def _ulid(at: datetime, rng: random.Random) -> str:
    """A check id drawn at ``at``, as :func:`api.service.new_id` draws one now."""
    n = int(at.timestamp() * 1000) << 80 | rng.getrandbits(80)
    return "c_" + "".join(_CROCKFORD[(n >> (5 * k)) & 31] for k in reversed(range(26)))


def _rows(n: int, months: int, start: datetime, seed: int = 1) -> list[tuple[Any, ...]]:
    """``n`` audit rows spread evenly over ``months`` months from ``start``."""
    rng = random.Random(seed)
    seconds = months * 30.4 * 86400
    out = []
    for i in range(n):
        at = start + timedelta(seconds=seconds * i / n)
        body = {
            "trip_id": f"T-{i}",
            "bike_id": f"B-{rng.randrange(50_000)}",
            "vehicle_type": "bike",
            "ended_at": at.isoformat(),
            "fixes": [
                {"lon": 113.5 + rng.random() / 9, "lat": 22.2 + rng.random() / 9, "accuracy_m": 3}
                for _ in range(3)
            ],
        }
        decision: dict[str, Any] = {
            "check_id": f"c_{i:026d}",
            "outcome": "settle",
            "reasons": ["inside_fenced_box"],
            "p_inside": 0.97,
            "zone": {"id": f"Z-{i % 18_000}", "kind": "parking", "district": "香洲区"},
            "decided_at": at.isoformat(),
            "policy": "default-2026-11",
            "zone_set_version": 1,
        }
        row = {
            "check_id": _ulid(at, rng),
            "operator": ("meituan", "hellobike", "qingju")[i % 3],
            "trip_id": f"T-{i}",
            "bike_id": body["bike_id"],
            "idempotency_key": f"key-{i}" if i % 3 == 0 else None,
            "batch_id": None,
            "body": orjson.dumps(body).decode(),
            "decision": orjson.dumps(decision).decode(),
            "outcome": "settle",
            "zone_id": decision["zone"]["id"],
            "district": "香洲区",
            "zone_set_version": 1,
            "policy_id": "default-2026-11",
            "ended_at": at,
            "decided_at": at,
            "decided_day": china_day(at),
            "policy_version": 1,
            "device_class": None,
        }
        out.append(tuple(row[c] for c in COLUMNS))
    return out


def _plain(url: str, rows: list[tuple[Any, ...]]) -> float:
    """A database at the schema before partitioning, holding ``rows``; seconds to load."""
    engine = sa.create_engine(url)
    try:
        schema.migrate(engine, schema.MIGRATIONS.index(schema._partition_checks))
        t0 = time.perf_counter()
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy(f"COPY checks ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            raw.commit()
        finally:
            raw.close()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
        return time.perf_counter() - t0
    finally:
        engine.dispose()


def _store_times(store: Store, ids: list[str]) -> list[float]:
    out = []
    for cid in ids:
        t0 = time.perf_counter()
        assert store.get_check(cid) is not None
        out.append(time.perf_counter() - t0)
    return out


def _server(store: Store, ids: list[str], windowed: bool) -> dict[str, float]:
    """The server's planning and execution µs (medians) of a look-up by id: alone, or
    with the id's time window (what ``get_check`` sends first on PostgreSQL)."""
    plan_ms, run_ms = [], []
    with store.engine.connect() as c:
        for cid in ids[:300]:
            sql = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM checks WHERE check_id = %(i)s"
            params: dict[str, Any] = {"i": cid}
            if windowed:
                sql += " AND decided_at >= %(lo)s AND decided_at < %(hi)s"
                params["lo"], params["hi"] = id_window(cid) or (None, None)
            plan: Any = c.exec_driver_sql(sql, params).scalar()
            plan_ms.append(plan[0]["Planning Time"])
            run_ms.append(plan[0]["Execution Time"])
    return {
        "planning_us": round(statistics.median(plan_ms) * 1e3, 1),
        "execution_us": round(statistics.median(run_ms) * 1e3, 1),
    }


def _lookups(stores: dict[str, Store], ids: list[str], rounds: int = 5) -> dict[str, Any]:
    """Rounds alternating between the stores (a busy machine drifts: each store sees
    the same drift); medians and p99 over all rounds."""
    times: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(rounds):
        for name, s in stores.items():
            times[name] += _store_times(s, ids)
    out: dict[str, Any] = {}
    for name, s in stores.items():
        ts = sorted(times[name])
        out[name] = {
            "store_get_check_median_us": round(statistics.median(ts) * 1e6, 1),
            "store_get_check_p99_us": round(ts[int(len(ts) * 0.99)] * 1e6, 1),
            "server_by_id_alone": _server(s, ids, False),
        }
    out["parted"]["server_by_id_in_window"] = _server(stores["parted"], ids, True)
    return out


def _writes(store: Store, rows: list[tuple[Any, ...]], keyed: bool, copy: bool = False) -> float:
    """µs a row of the audit writer's statement (executemany: one INSERT a row, in one
    transaction), or of one ``COPY`` of the same rows; best of 3, rolled back."""
    cols = ", ".join(COLUMNS)
    sql = f"INSERT INTO checks ({cols}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    k = COLUMNS.index("idempotency_key")
    batch = [(*r[:k], (f"bench-{i}" if keyed else None), *r[k + 1 :]) for i, r in enumerate(rows)]
    best = float("inf")
    for _ in range(3):
        raw = store.engine.raw_connection()
        try:
            cur = raw.cursor()
            t0 = time.perf_counter()
            if copy:
                with cur.copy(f"COPY checks ({cols}) FROM STDIN") as cp:
                    for r in batch:
                        cp.write_row(r)
            else:
                cur.executemany(sql, batch)
            best = min(best, time.perf_counter() - t0)
            raw.rollback()
        finally:
            raw.close()
    return round(best / len(batch) * 1e6, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=360_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--lookups", type=int, default=2000)
    args = ap.parse_args()
    now = datetime.now(UTC)
    start = datetime(now.year - 1, now.month, 1, tzinfo=UTC) + timedelta(days=31)
    start = start.replace(day=1)
    rows = _rows(args.rows, args.months, start)
    res: dict[str, Any] = {
        "rows": args.rows,
        "months": args.months,
        "from": start.isoformat(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with TempCluster(prefix="pg_bench_parts_") as pg:
        urls = {name: pg.create_database(name) for name in ("plain", "parted")}
        res["load_s"] = {name: round(_plain(url, rows), 2) for name, url in urls.items()}
        t0 = time.perf_counter()
        parted = Store.open(urls["parted"])
        res["migration_s"] = round(time.perf_counter() - t0, 2)
        with parted.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
            res["partitions"] = c.exec_driver_sql(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'checks'::regclass"
            ).scalar()
        plain = Store(sa.create_engine(urls["plain"]))  # not migrated: the old schema
        ci = COLUMNS.index("check_id")
        ids = [r[ci] for r in random.Random(2).sample(rows, args.lookups)]
        stores = {"plain": plain, "parted": parted}
        _lookups(stores, ids[:200], rounds=1)  # warm both (pool, statement cache, buffers)
        res["lookup_by_id"] = _lookups(stores, ids)
        fresh = _rows(10_000, 1, now, seed=3)
        res["writer_us_per_row"] = {
            name: {
                "keyed": _writes(s, fresh, True),
                "unkeyed": _writes(s, fresh, False),
                "copy_keyed": _writes(s, fresh, True, copy=True),
                "copy_unkeyed": _writes(s, fresh, False, copy=True),
            }
            for name, s in (("plain", plain), ("parted", parted))
        }
        half = start
        for _ in range(args.months // 2):
            half = (half + timedelta(days=32)).replace(day=1)
        res["prune_before"] = half.isoformat()
        t0 = time.perf_counter()
        n = prune(parted, half, confirm=True)
        res["prune_parted"] = {"removed": n, "seconds": round(time.perf_counter() - t0, 3)}
        t0 = time.perf_counter()
        with plain.engine.begin() as c:
            old = schema.checks.c.decided_at < half
            m = c.execute(sa.delete(schema.checks).where(old)).rowcount
        res["delete_plain"] = {"removed": m, "seconds": round(time.perf_counter() - t0, 3)}
        plain.close()
        parted.close()
    res["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "partitions.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
