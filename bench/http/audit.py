"""What the audit log costs: the floor under the batch route's cost per fix (storing a
batch's rows alone, outside any server) and the bytes stored per decision on SQLite and
PostgreSQL (the real app in process, its real audit writer).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http.harness import check_bodies


def audit_floor(
    work: Path, n_checks: int, fixes: int, repeat: int = 3, *, inline: bool = False
) -> dict[str, Any]:
    """What storing a batch's audit rows alone costs per fix, outside any server.

    ``n_checks`` rows of ``fixes``-fix checks committed into the service's ``checks``
    table, each pointing into the batch's body stored once, zstd-compressed, in
    ``batch_bodies`` (migration 6; the compression is counted in the insert), or with
    ``inline`` each row with its body as received (the layout before), the way the
    audit writer does it (:class:`api.audit._Child`: the driver's ``executemany`` on a kept
    connection, one commit, SQLite WAL with synchronous=FULL and the writer's own
    passive checkpoint after the commit). No HTTP, no parsing, no decision: a floor
    under the batch route's cost per fix on this machine. Medians of ``repeat``.
    """
    import uuid

    import orjson
    import zstandard

    from api.audit import BATCH_COLUMNS, COLUMNS, ZSTD_LEVEL
    from api.storage import Store, china_day

    url = f"sqlite:///{work / f'audit-floor-{fixes}-{inline}.db'}"
    store = Store.open(url)
    bodies = [orjson.dumps(b).decode() for b in check_bodies(n_checks, fixes, seed=7)]
    decision = orjson.dumps(
        {
            "check_id": "c" * 26,
            "outcome": "reject",
            "reasons": ["outside_all_boxes"],
            "zone": None,
            "p_inside": 0.0,
            "distance_m": None,
            "nearest": [
                {"zone_id": f"ZH-{k:05d}", "distance_m": 23.41, "bearing_deg": 45.2}
                for k in range(3)
            ],
            "zone_set_version": 1,
            "policy": "p" * 12,
            "decided_at": "2026-11-26T08:00:00Z",
            "position": {"lon": 113.5512345, "lat": 22.2712345, "accuracy_m": 4.2},
        }
    ).decode()
    raw = ('{"checks":[' + ",".join(bodies) + "]}").encode()
    spans, at = [], len('{"checks":[')
    for b in bodies:
        spans.append((at, at + len(b.encode())))
        at += len(b.encode()) + 1
    cols = COLUMNS if inline else COLUMNS + BATCH_COLUMNS
    sql = f"INSERT INTO checks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    conn = store.engine.raw_connection()
    cur = conn.cursor()
    cur.execute("PRAGMA wal_autocheckpoint=0")
    insert: list[tuple[float, float]] = []
    checkpoint: list[tuple[float, float]] = []
    try:
        for _ in range(repeat):
            now = datetime.now(UTC)
            stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
            batch = uuid.uuid4().hex
            rows = [
                (
                    f"{batch}-{i}",
                    "meituan",
                    f"T{i}",
                    f"B{i}",
                    None,
                    batch,
                    body if inline else "",
                    decision,
                    "reject",
                    None,
                    "香洲区",
                    1,
                    "p" * 12,
                    stamp,
                    stamp,
                    china_day(now),
                    1,  # policy_version
                    None,  # device_class
                )
                + (() if inline else spans[i])
                for i, body in enumerate(bodies)
            ]
            w, c = time.perf_counter(), time.process_time()
            if not inline:
                cur.execute(
                    "INSERT INTO batch_bodies VALUES (?, ?, ?, ?, ?)",
                    (batch, "meituan", stamp, len(bodies), zstd.compress(raw)),
                )
            cur.executemany(sql, rows)
            conn.commit()
            insert.append((time.perf_counter() - w, time.process_time() - c))
            w, c = time.perf_counter(), time.process_time()
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            checkpoint.append((time.perf_counter() - w, time.process_time() - c))
    finally:
        cur.close()
        conn.close()
        store.close()
    per_fix = 1e9 / (n_checks * fixes)

    def med(runs: list[tuple[float, float]], k: int) -> float:
        return round(statistics.median(r[k] for r in runs) * per_fix)

    return {
        "checks": n_checks,
        "fixes_per_check": fixes,
        "layout": "inline bodies" if inline else "batch body once, compressed",
        "body_bytes_per_check": round(statistics.mean(len(b) for b in bodies)),
        "insert_commit_ns_per_fix": {"wall": med(insert, 0), "cpu": med(insert, 1)},
        "checkpoint_ns_per_fix": {"wall": med(checkpoint, 0), "cpu": med(checkpoint, 1)},
    }


def audit_bytes(work: Path, n_checks: int = 2000) -> list[dict[str, Any]]:
    """Bytes the audit log stores per decision, on SQLite and PostgreSQL.

    The real app (in process, the real audit writer) decides ``n_checks`` checks sent
    one by one (10 fixes each, with an idempotency key: every stored column filled),
    and then as batches of 500 checks of 10 and of 50 fixes, each scenario on a fresh
    database; the growth of the database (SQLite: the file after a truncating
    checkpoint; PostgreSQL: ``pg_total_relation_size`` of every partition of ``checks``,
    of ``batch_bodies`` and of ``check_keys``: rows, TOAST and indexes) over the
    decisions stored.
    """
    import orjson
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.pgtest import TempCluster
    from api.settings import DEFAULT_SEED_FILE, Settings
    from api.storage import Store

    def size(store: Store) -> int:
        with store.engine.begin() as c:
            if store.dialect == "sqlite":
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = c.exec_driver_sql("PRAGMA page_count").scalar()
                return int(pages) * int(c.exec_driver_sql("PRAGMA page_size").scalar())
            # a partitioned table (migration 7) has no storage of its own: its
            # partitions hold the rows (pg_partition_tree lists a plain table alone)
            q = (
                "SELECT (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                "FROM pg_partition_tree('checks'))"
            )
            for table in ("batch_bodies", "check_keys"):  # migrations 6, 7
                if c.dialect.has_table(c, table):
                    q += f" + pg_total_relation_size('{table}')"
            return int(c.execute(sa.text(q)).scalar())

    scenarios = (("single", 10), ("batch", 10), ("batch", 50))
    out: list[dict[str, Any]] = []
    pg = TempCluster(prefix="pg_bench_bytes_").start()
    try:
        for backend in ("sqlite", "postgresql"):
            for k, (kind, fixes) in enumerate(scenarios):
                name = f"bytes{k}"
                url = (
                    f"sqlite:///{work / (name + '.db')}"
                    if backend == "sqlite"
                    else pg.create_database(name)
                )
                settings = Settings(database_url=url, seed_file=DEFAULT_SEED_FILE, access_log=False)
                store = Store.open(url)
                try:
                    key, _ = store.create_key("operator", "meituan")
                    h = {"X-API-Key": key}
                    bodies = check_bodies(n_checks, fixes, seed=11 + k)
                    with TestClient(create_app(settings)) as client:
                        while client.get("/readyz").status_code != 200:
                            time.sleep(0.05)
                        before = size(store)
                        if kind == "single":
                            for i, b in enumerate(bodies):
                                hi = h | {"Idempotency-Key": f"k-{i}"}
                                assert client.post("/v1/checks", json=b, headers=hi).is_success
                        else:
                            for i in range(0, n_checks, 500):
                                chunk = {"checks": bodies[i : i + 500]}
                                hi = h | {"Idempotency-Key": f"b-{i}"}
                                r = client.post("/v1/checks/batch", json=chunk, headers=hi)
                                assert r.is_success, r.text
                    grown = size(store) - before
                    assert store.count_checks() == n_checks
                finally:
                    store.close()
                row = {
                    "backend": backend,
                    "route": kind,
                    "fixes_per_check": fixes,
                    "decisions": n_checks,
                    "body_bytes_per_check": round(
                        statistics.mean(len(orjson.dumps(b)) for b in bodies)
                    ),
                    "stored_bytes_per_decision": round(grown / n_checks),
                }
                print("audit bytes:", row, flush=True)
                out.append(row)
    finally:
        pg.stop()
    return out
