"""Worker processes: ``geofence serve --workers 1`` and ``--workers 2``, on SQLite and on
PostgreSQL (a local throwaway cluster, :mod:`api.pgtest`): checks/s, the audit-log rows
committed per second (single checks and batches), and how long an activation takes to
reach the other worker (its log line).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.http.harness import Proc, free_port, run_wrk, start_geofence
from bench.http.scenarios import run_batches


def propagation(proc: Proc, version: int, t_activated: float) -> float:
    """Seconds from the activation's answer until the last other worker served ``version``
    (its log line \"followed activation\" is written right after the swap)."""
    deadline = time.monotonic() + 30
    pat = re.compile(rf'"ts":"([^"]+)"[^\n]*followed activation: zone set version {version}\b')
    while time.monotonic() < deadline:
        found = pat.findall(proc.err.read_text())
        if found:
            return max(datetime.fromisoformat(ts).timestamp() for ts in found) - t_activated
        time.sleep(0.05)
    return float("nan")


def run_processes(work: Path, bodies_file: Path, lua: Path, duration: int) -> dict[str, Any]:
    """Requests/s of ``POST /v1/checks`` with 1 and 2 worker processes, on SQLite and on
    PostgreSQL, and the audit-log write rate each sustains (rows committed per second,
    counted in the database, under single checks and under 1,000-check batches)."""
    import httpx

    from api.pgtest import TempCluster
    from api.settings import DEFAULT_SEED_FILE
    from api.storage import Store

    runs = []
    # PostgreSQL with its durable defaults (fsync, synchronous_commit on), like SQLite
    # FULL; on this machine, over a Unix socket
    pg = TempCluster(durable=True, prefix="pg_bench_http_").start()
    try:
        for backend in ("sqlite", "postgresql"):
            for workers in (1, 2):
                tag = f"{backend}-{workers}"
                d = work / tag
                d.mkdir()
                db_url = (
                    f"sqlite:///{d / 'var' / 'geofence.db'}"
                    if backend == "sqlite"
                    else pg.create_database(f"bench_{workers}")
                )
                port = free_port()
                proc, ready_s = start_geofence(d, port, db_url=db_url, workers=workers)
                url = f"http://127.0.0.1:{port}"
                keys = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(gfk_\S+)$", proc.out.read_text(), re.M))
                store = Store.open(db_url)
                try:
                    run_wrk(url, "/v1/checks", keys["meituan"], bodies_file, lua, 3, 32)  # warm
                    time.sleep(0.5)  # what wrk left in flight is committed meanwhile
                    n0 = store.count_checks()
                    thr = run_wrk(
                        url, "/v1/checks", keys["meituan"], bodies_file, lua, duration, 32
                    )
                    time.sleep(0.5)
                    rows_single = store.count_checks() - n0
                    n0 = store.count_checks()
                    n_batches = 2 * duration
                    bat = run_batches(url, keys["hellobike"], 1000, 3, n_batches, 2)
                    # every answered batch is committed: its 1,000 rows are in the log
                    assert store.count_checks() - n0 == 1000 * (n_batches + 1)
                    # activation: the whole city again as a new version, through one worker
                    up = httpx.post(
                        url + "/v1/zone-sets",
                        content=DEFAULT_SEED_FILE.read_bytes(),
                        headers={"X-API-Key": keys["admin"], "Content-Type": "application/json"},
                        timeout=300,
                    )
                    v = up.json()["version"]
                    act = httpx.post(
                        f"{url}/v1/zone-sets/{v}/activate",
                        headers={"X-API-Key": keys["admin"]},
                        timeout=300,
                    )
                    t_act = time.time()
                    assert act.status_code == 200, act.text
                    prop = propagation(proc, v, t_act) if workers > 1 else None
                finally:
                    store.close()
                    proc.stop()
                run = {
                    "backend": backend,
                    "workers": workers,
                    "ready_s": round(ready_s, 2),
                    "checks_per_s": round(thr["rps"], 1),
                    "p50_ms": thr["p50_ms"],
                    "p99_ms": thr["p99_ms"],
                    "non2xx": thr["non2xx"],
                    "errors": thr["errors"],
                    # rows the audit log committed per second of the wrk run (= checks/s)
                    "audit_rows_per_s_single": round(rows_single / thr["seconds"], 1),
                    # ... and under 1,000-check batches from 2 clients (each answered
                    # batch's rows committed before its answer)
                    "audit_rows_per_s_batches": bat["checks_per_s"],
                    "activation_build_s": act.json()["build_seconds"],
                    "activation_propagation_s": None if prop is None else round(prop, 3),
                }
                runs.append(run)
                print("processes:", run, flush=True)
    finally:
        pg.stop()
    by = {(r["backend"], r["workers"]): r for r in runs}
    return {
        "setup": "geofence serve --workers N (N uvicorn processes, each with its own index "
        "and audit writer process) on the bundled 18,300 zones; wrk -t1 -c32 for "
        f"{duration} s on POST /v1/checks; then 1,000-check batches (3 fixes each) from 2 "
        "clients; audit rows counted in the database. SQLite: WAL, synchronous=FULL. "
        "PostgreSQL: a local cluster (api.pgtest, fsync and synchronous_commit on, Unix "
        "socket) on the same 2 cores. Propagation: from the activation's answer to the "
        "other worker's swap (its log line), after re-uploading the whole city as a new "
        "version (index build included).",
        "runs": runs,
        "two_vs_one_worker": {
            b: round(by[(b, 2)]["checks_per_s"] / by[(b, 1)]["checks_per_s"], 2)
            for b in ("sqlite", "postgresql")
        },
        "postgresql_vs_sqlite": {
            str(w): round(
                by[("postgresql", w)]["checks_per_s"] / by[("sqlite", w)]["checks_per_s"], 2
            )
            for w in (1, 2)
        },
    }
