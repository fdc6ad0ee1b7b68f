"""HTTP benchmark: the service against a bare FastAPI endpoint served the same way.

Starts the server the README's way (``geofence serve`` on a loopback port, a fresh
SQLite database, the bundled 18,300-zone Zhuhai set, the audit log on, the JSON
access log on) and, in the same run, a bare FastAPI app (one POST route that
answers a constant) under uvicorn with the very options ``geofence serve`` uses
(:func:`api.server.uvicorn_options`). Load comes from other processes:

* throughput (closed loop): Debian's ``wrk`` with a Lua script cycling through
  2,000 distinct trip-end check bodies (3 fixes each, from ``zones.workload``),
  against ``POST /v1/checks``, against the bare endpoint and against the bare
  endpoint that also commits one audit row per request through the service's audit
  writer before answering ("bare + audit": what any service that records each
  decision durably before it answers can reach on this machine);
* latency at fixed rates (open loop, no coordinated omission): an asyncio client
  that schedules request ``i`` at ``t0 + i / rate`` and measures from that
  scheduled time, over a pool of keep-alive connections;
* batches: ``POST /v1/checks/batch`` with pre-serialized bodies, fixes per second
  end to end (parse, validate, decide, audit-log commit, response);
* cold start: process spawn to ``/readyz`` = 200, on a fresh database (seeding
  included) and on the same database again (the usual restart).

Writes ``bench/results/http.json`` and ``bench/results/http.png`` (latency against
rate). Not a test: it reports numbers. Every load is bounded in time; traffic goes
to 127.0.0.1 only.

* processes: ``geofence serve --workers 1`` and ``--workers 2``, on SQLite and on
  PostgreSQL (a local throwaway cluster, :mod:`api.pgtest`): checks/s, the audit-log
  rows committed per second (single checks and batches), and how long an activation
  takes to reach the other worker (``--only processes`` runs this part alone and
  merges it into ``http.json``).

    python bench/http.py [--duration 10] [--rates 250 500 1000 2000 3000 4000]
    python bench/http.py --only processes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# this file is named http.py: keep its folder off the import path, or it would shadow
# the standard library's `http` package (httpx and uvicorn, imported later, need it)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
ENDED_AT = "2026-11-26T08:15:30+08:00"

LUA = r"""
local bodies = {}
local i = 0
local key = os.getenv("BENCH_KEY") or ""
local path = os.getenv("BENCH_PATH") or "/"
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", path, headers, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"non2xx\": %d, \"errors\": %d, " ..
    "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"mean_ms\": %.3f, \"seconds\": %.3f}\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000, summary.duration / 1e6))
end
"""


# ---------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code == 200:
                return time.monotonic() - t0
            if "loading failed" in r.text:
                raise RuntimeError(f"the server could not load its index: {r.json()['detail']}")
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready in {timeout} s")


_STARTED: list[Proc] = []  # every server this run started, stopped at exit whatever happens


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=workdir,
            stdout=self.out.open("w"),
            stderr=self.err.open("w"),
            stdin=subprocess.DEVNULL,
        )
        _STARTED.append(self)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_geofence(
    workdir: Path, port: int, *, db_url: str | None = None, workers: int = 1
) -> tuple[Proc, float]:
    """``geofence serve`` (what ``make serve`` runs); returns the process and the seconds
    from spawn to ready. The database is a SQLite file in ``workdir`` unless ``db_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOFENCE_")}
    env["GEOFENCE_DATABASE_URL"] = db_url or f"sqlite:///{workdir / 'var' / 'geofence.db'}"
    exe = str(BIN / "geofence") if (BIN / "geofence").exists() else None
    args = [exe] if exe else [sys.executable, "-m", "api"]
    args += ["serve", "--port", str(port), "--workers", str(workers)]
    p = Proc(args, env, workdir, f"geofence-{port}")
    wait_ready(f"http://127.0.0.1:{port}/readyz", p.proc)
    return p, time.monotonic() - p.t0


def start_bare(workdir: Path, port: int, *, audit: bool = False) -> Proc:
    env = dict(os.environ)
    args = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)]
    if audit:
        args.append(f"sqlite:///{workdir / f'bare-audit-{port}.db'}")
    p = Proc(args, env, workdir, f"bare-{port}")
    wait_ready(f"http://127.0.0.1:{port}/healthz", p.proc)
    return p


def serve_bare(port: int, audit_url: str | None = None) -> None:
    """The baseline: a bare FastAPI POST endpoint under ``geofence serve``'s uvicorn options.

    With ``audit_url`` (the second baseline, "bare + audit"): the endpoint also commits
    one audit row per request through the service's own audit writer (the same
    process, group commit and SQLite settings, schema from :class:`api.storage.Store`)
    before it answers, and nothing else: no key, no parsing, no decision. It bounds
    what any service that commits each decision before answering can reach here.
    """
    import uuid
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.responses import Response

    from api.audit import AuditWriter
    from api.server import uvicorn_options
    from api.settings import Settings
    from api.storage import Store, china_day

    settings = Settings(port=port)
    writer: list[AuditWriter] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if audit_url is not None:
            Store.open(audit_url, sqlite_synchronous=settings.sqlite_synchronous).close()
            writer.append(
                AuditWriter(
                    audit_url,
                    sqlite_synchronous=settings.sqlite_synchronous,
                    window_s=settings.commit_window_ms / 1e3,
                    max_rows=settings.commit_max_rows,
                )
            )
        yield
        for w in writer:
            await w.aclose()

    # FastAPI's built-in telemetry off, as in the service (api.app): the baseline must
    # not pay for what the service does not do
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False}, lifespan=lifespan)
    # this module postpones annotations: the route's annotations are resolved in the
    # module's namespace, so the names must be there
    globals().update(Request=Request, Response=Response)

    @app.post("/bare")
    async def bare(request: Request) -> Response:
        body = await request.body()
        if writer:
            now = datetime.now(UTC)
            row = (
                uuid.uuid4().hex, "bench", "trip", "bike", None, None, body.decode(),
                '{"outcome":"review"}', "review", None, None, 1, "bare", now, now,
                china_day(now), 1, None,  # policy_version, device_class (migration 4)
            )  # fmt: skip
            await writer[0].write([row])
        return Response(b'{"ok":true}', media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    uvicorn.run(app, **uvicorn_options(settings))


# ---------------------------------------------------------------------------- workload
def check_bodies(n: int, fixes: int, seed: int) -> list[dict[str, Any]]:
    from api.settings import DEFAULT_SEED_FILE
    from zones.workload import make_trip_ends

    te = make_trip_ends(DEFAULT_SEED_FILE, n, seed=seed, fixes_per_trip=fixes)
    bodies = []
    for i in range(n):
        bodies.append(
            {
                "trip_id": f"BENCH-{seed}-{i}",
                "bike_id": f"B-{i % 997}",
                "vehicle_type": "bike" if i % 3 else "ebike",
                "ended_at": ENDED_AT,
                "fixes": [
                    {
                        "lon": round(float(te.fix_lon[i, j]), 7),
                        "lat": round(float(te.fix_lat[i, j]), 7),
                        "accuracy_m": round(float(te.accuracy_m[i, j]), 1),
                    }
                    for j in range(fixes)
                ],
            }
        )
    return bodies


# ---------------------------------------------------------------------------- wrk
def run_wrk(
    url: str,
    path: str,
    key: str,
    bodies_file: Path,
    lua: Path,
    duration: int,
    connections: int = 16,
) -> dict[str, Any]:
    env = dict(os.environ, BENCH_KEY=key, BENCH_PATH=path, BENCH_BODIES=str(bodies_file))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    m = re.search(r"^JSON (.*)$", out, re.M)
    assert m, out
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / r["seconds"]
    r["connections"] = connections
    return r


# ---------------------------------------------------------------------------- open loop
async def _open_loop(
    port: int, reqs: list[bytes], rate: float, duration: float, max_conns: int = 256
) -> dict[str, Any]:
    """Request ``i`` is due at ``t0 + i / rate``; its latency counts from then (so a slow
    server cannot slow the client down and hide its own queueing). perf_counter, not
    the loop's millisecond clock."""
    clock = time.perf_counter
    n = int(rate * duration)
    free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    lat: list[float] = []
    bad = 0
    late_starts = 0
    errors = 0

    async def exchange(i: int, fresh: bool) -> tuple[int, Any]:
        nonlocal opened
        if fresh or not free:
            opened += 1
            r, w = await asyncio.open_connection("127.0.0.1", port)
        else:
            r, w = free.pop()
        w.write(reqs[i % len(reqs)])
        head = await r.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if m:
            await r.readexactly(int(m.group(1)))
        return int(head[9:12]), (r, w)

    async def one(i: int, t_due: float) -> None:
        nonlocal bad, errors
        try:
            try:
                status, c = await exchange(i, fresh=False)
            except (OSError, asyncio.IncompleteReadError):
                # a pooled connection the server closed while idle (keep-alive timeout)
                status, c = await exchange(i, fresh=True)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            errors += 1
            return
        lat.append(clock() - t_due)
        if status != 200:
            bad += 1
        free.append(c)

    tasks = []
    t0 = clock() + 0.05
    for i in range(n):
        t = t0 + i / rate
        d = t - clock()
        if d > 0.0005:
            await asyncio.sleep(d)
        elif d < -0.001:
            late_starts += 1
        while opened - len(free) >= max_conns and not free:
            await asyncio.sleep(0.0005)
        tasks.append(asyncio.ensure_future(one(i, t)))
    await asyncio.gather(*tasks)
    elapsed = clock() - t0
    for _, w in free:
        w.close()
    a = np.array(lat) * 1e3 if lat else np.array([np.nan])
    return {
        "target_rate": rate,
        "achieved_rate": round(len(lat) / elapsed, 1),
        "requests": n,
        "non200": bad,
        "errors": errors,
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p90_ms": round(float(np.percentile(a, 90)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
        "connections": opened,
        "client_late_starts": late_starts,
    }


def raw_requests(path: str, key: str, bodies: list[dict[str, Any]]) -> list[bytes]:
    import orjson

    out = []
    for b in bodies:
        data = orjson.dumps(b)
        out.append(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-API-Key: {key}\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
    return out


def open_loop(port: int, reqs: list[bytes], rate: float, duration: float) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(_open_loop(port, reqs, rate, duration))
    except ImportError:
        return asyncio.run(_open_loop(port, reqs, rate, duration))


def open_loop_subprocess(
    port: int, path: str, key: str, bodies_file: Path, rate: float, duration: float
) -> dict[str, Any]:
    """Run the open-loop client in its own process (it must not share the GIL with us)."""
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--open-loop",
            str(port),
            path,
            key,
            str(bodies_file),
            str(rate),
            str(duration),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- batches
def run_batches(
    url: str, key: str, n_checks: int, fixes: int, repeat: int, concurrency: int
) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import orjson

    payloads = [
        orjson.dumps({"checks": check_bodies(n_checks, fixes, seed=100 + k)}) for k in range(2)
    ]
    times: list[float] = []

    def send(k: int) -> float:
        with httpx.Client(base_url=url, timeout=300) as c:
            t = time.perf_counter()
            r = c.post(
                "/v1/checks/batch",
                content=payloads[k % 2],
                headers={"X-API-Key": key, "Content-Type": "application/json"},
            )
            dt = time.perf_counter() - t
            assert r.status_code == 200, r.text[:500]
            assert len(r.json()["results"]) == n_checks
            return dt

    send(0)  # warm
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        times = list(ex.map(send, range(repeat)))
    wall = time.perf_counter() - t0
    fixes_total = n_checks * fixes * repeat
    return {
        "checks_per_batch": n_checks,
        "fixes_per_check": fixes,
        "body_mb": round(len(payloads[0]) / 1e6, 2),
        "batches": repeat,
        "concurrency": concurrency,
        "median_batch_s": round(statistics.median(times), 4),
        "checks_per_s": round(n_checks * repeat / wall),
        "fixes_per_s": round(fixes_total / wall),
    }


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
    checkpoint; PostgreSQL: ``pg_total_relation_size`` of ``checks`` and
    ``batch_bodies``: rows, TOAST and indexes) over the decisions stored.
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
            q = "SELECT pg_total_relation_size('checks')"
            if c.dialect.has_table(c, "batch_bodies"):  # migration 6
                q += " + pg_total_relation_size('batch_bodies')"
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


# ---------------------------------------------------------------------------- processes
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


# ---------------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def wait_quiet(threshold: float, limit_s: float) -> float:
    """Wait until other work on this shared machine calms down; returns the seconds waited."""
    t0 = time.monotonic()
    while os.getloadavg()[0] > threshold and time.monotonic() - t0 < limit_s:
        time.sleep(5)
    return time.monotonic() - t0


def metric(url: str, name: str) -> float:
    import httpx

    text = httpx.get(url + "/metrics").text
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run / 1,000/s run")
    ap.add_argument("--rates", type=float, nargs="+", default=[250, 500, 1000, 2000, 3000, 4000])
    ap.add_argument("--sweep-seconds", type=float, default=5.0)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--only",
        choices=["all", "processes", "bytes", "batch"],
        default="all",
        help="processes: only the workers x backends runs, merged into the existing http.json; "
        "bytes: only the audit log's bytes per decision, likewise; batch: only the batch "
        "runs and the audit floor, likewise",
    )
    ap.add_argument(
        "--quiet-load",
        type=float,
        default=0.7,
        help="wait (up to 15 min) until the 1-minute load average is below this",
    )
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: the servers and the PostgreSQL cluster are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    waited = wait_quiet(args.quiet_load, 900)
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="geofence-bench-"))
    if args.only == "processes":
        main_processes(args, work, waited)
        return
    if args.only == "bytes":
        try:
            stored = audit_bytes(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        path = RESULTS / "http.json"
        merged = json.loads(path.read_text()) if path.exists() else {}
        merged["audit_bytes"] = stored
        merged["audit_bytes_date"] = datetime.now(UTC).isoformat(timespec="seconds")
        path.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
        return
    if args.only == "batch":
        main_batch(args, work)
        return
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "waited_for_quiet_s": round(waited, 1),
        "setup": {
            "server": "geofence serve (1 uvicorn worker, uvloop + httptools, SQLite WAL "
            "synchronous=FULL, group commit, JSON access log to a file)",
            "zone_set": "bundled zones/data/zhuhai.geojson (18,300 zones)",
            "baseline": "bare FastAPI POST endpoint answering a constant, same uvicorn options",
            "client": "wrk -t1 (closed loop) and an asyncio open-loop client, each in its own "
            "process on the same 2-core machine",
            "check_bodies": "2,000 distinct trip ends from zones.workload, 3 fixes each",
        },
    }
    try:
        port = free_port()
        first, t_first = start_geofence(work, port)
        keys = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(gfk_\S+)$", first.out.read_text(), re.M))
        first.stop()
        _, t_cold = start_geofence(work, port)
        results["cold_start"] = {
            "fresh_database_s": round(t_first, 3),
            "restart_s": round(t_cold, 3),
            "note": "spawn to /readyz = 200; fresh = schema + seeding the 18,300 zones "
            "(validation, storage) + index + warm-up; restart = load from the database",
        }
        print("cold start:", results["cold_start"], flush=True)
        url = f"http://127.0.0.1:{port}"
        key = keys["meituan"]

        bport = free_port()
        start_bare(work, bport)
        burl = f"http://127.0.0.1:{bport}"
        aport = free_port()
        start_bare(work, aport, audit=True)
        aurl = f"http://127.0.0.1:{aport}"

        bodies = check_bodies(2000, 3, seed=1)
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
        lua = work / "post.lua"
        lua.write_text(LUA)

        # closed loop: maximum requests/s
        run_wrk(url, "/v1/checks", key, bodies_file, lua, 3)  # warm both
        run_wrk(burl, "/bare", key, bodies_file, lua, 3)
        run_wrk(aurl, "/bare", key, bodies_file, lua, 3)
        thr_checks = run_wrk(url, "/v1/checks", key, bodies_file, lua, args.duration)
        thr_bare = run_wrk(burl, "/bare", key, bodies_file, lua, args.duration)
        thr_bare_audit = run_wrk(aurl, "/bare", key, bodies_file, lua, args.duration)
        commits = metric(url, "geofence_audit_commit_rows_count")
        rows = metric(url, "geofence_audit_commit_rows_sum")
        results["throughput"] = {
            "checks": thr_checks,
            "bare": thr_bare,
            "ratio": round(thr_checks["rps"] / thr_bare["rps"], 3),
            # the bound of any service that commits a row before it answers (see
            # serve_bare): the bare endpoint plus the audit writer, nothing else
            "bare_audit": thr_bare_audit,
            "bare_audit_ratio": round(thr_bare_audit["rps"] / thr_bare["rps"], 3),
            "checks_to_bare_audit": round(thr_checks["rps"] / thr_bare_audit["rps"], 3),
            "audit_rows_per_commit": round(rows / commits, 2) if commits else None,
        }
        print("throughput:", results["throughput"], flush=True)

        # open loop: latency at fixed rates
        sweep: dict[str, list[dict[str, Any]]] = {"checks": [], "bare": []}
        runs: list[dict[str, Any]] = []  # the target's rate, three times
        for rate in args.rates:
            dur = args.duration if rate == 1000 else args.sweep_seconds
            for name, p, path in (("checks", port, "/v1/checks"), ("bare", bport, "/bare")):
                r = open_loop_subprocess(p, path, key, bodies_file, rate, dur)
                sweep[name].append(r)
                print(name, r, flush=True)
            if rate == 1000:
                # two more runs in the same place of the sequence (before the higher,
                # saturating rates), the median of the three: the tail of one 10 s run
                # moves by several ms with the machine's other load and the disk
                runs.append(sweep["checks"][-1])
                for _ in range(2):
                    runs.append(
                        open_loop_subprocess(port, "/v1/checks", key, bodies_file, 1000, dur)
                    )
                    print("checks", runs[-1], flush=True)
        results["latency_vs_rate"] = sweep
        at1000 = {
            k: statistics.median(r[k] for r in runs)
            for k in ("p50_ms", "p99_ms", "achieved_rate", "non200")
        }
        results["at_1000_per_s"] = {
            **at1000,
            "runs_p99_ms": [r["p99_ms"] for r in runs],
            "note": "medians of three 10 s runs at 1,000 checks/s",
        }

        results["batch"] = batch_section(work, url, key)
        results["audit_bytes"] = audit_bytes(work)
        results["processes"] = run_processes(work, bodies_file, lua, args.duration)
        results["targets"] = {
            "single_check_ratio_ge_0.70": results["throughput"]["ratio"] >= 0.70,
            # issue 18: against the baseline that pays the same durability
            "checks_to_bare_audit_ge_0.85": results["throughput"]["checks_to_bare_audit"] >= 0.85,
            "p99_le_10ms_at_1000_per_s": at1000["p99_ms"] <= 10.0,
            "batch_ge_1M_fixes_per_s": results["batch"]["best_fixes_per_s"] >= 1_000_000,
            "cold_start_le_3s": t_cold <= 3.0,
        }
    finally:
        for p in _STARTED:
            p.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("work directory:", work)

    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "http.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    plot(results, RESULTS / "http.png")
    print(json.dumps(results["targets"], indent=2))


def batch_section(work: Path, url: str, key: str) -> dict[str, Any]:
    """The batch runs against the server at ``url`` and the audit floor."""
    batches = []
    for n_checks, fixes, repeat, conc in (
        (1000, 10, 10, 1),
        (10000, 10, 4, 1),
        (10000, 10, 4, 2),
        (10000, 50, 2, 1),
        (10000, 50, 2, 2),
    ):
        r = run_batches(url, key, n_checks, fixes, repeat, conc)
        batches.append(r)
        print("batch:", r, flush=True)
    floor = [
        audit_floor(work, 10_000, fixes, inline=inline)
        for fixes in (10, 50)
        for inline in (True, False)
    ]
    print("audit floor:", floor, flush=True)
    best = {
        f"fixes_{f}": max(b["fixes_per_s"] for b in batches if b["fixes_per_check"] == f)
        for f in (10, 50)
    }
    return {
        "runs": batches,
        "best_fixes_per_s": max(best.values()),
        "best_fixes_per_s_by_fixes_per_check": best,
        "audit_floor": floor,
    }


def main_batch(args: argparse.Namespace, work: Path) -> None:
    """``--only batch``: a fresh server, the batch runs and the audit floor, merged into
    ``http.json``."""
    out = RESULTS / "http.json"
    load0 = [round(x, 2) for x in os.getloadavg()]
    try:
        port = free_port()
        proc, _ = start_geofence(work, port)
        keys = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(gfk_\S+)$", proc.out.read_text(), re.M))
        section = batch_section(work, f"http://127.0.0.1:{port}", keys["meituan"])
    finally:
        for p in _STARTED:
            p.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    section["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    section["load_average"] = {"start": load0, "end": [round(x, 2) for x in os.getloadavg()]}
    results = json.loads(out.read_text()) if out.exists() else {}  # read now: merged
    results["batch"] = section
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(section["best_fixes_per_s_by_fixes_per_check"], indent=2))


def main_processes(args: argparse.Namespace, work: Path, waited: float) -> None:
    """``--only processes``: run that section alone; merge it into ``http.json``."""
    out = RESULTS / "http.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    try:
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text(
            "\n".join(json.dumps(b) for b in check_bodies(2000, 3, seed=1)) + "\n"
        )
        lua = work / "post.lua"
        lua.write_text(LUA)
        load0 = [round(x, 2) for x in os.getloadavg()]
        section = run_processes(work, bodies_file, lua, args.duration)
    finally:
        for p in _STARTED:
            p.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    section["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    section["load_average_at_start"] = load0
    section["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    section["waited_for_quiet_s"] = round(waited, 1)
    results["processes"] = section
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: section[k] for k in ("two_vs_one_worker", "postgresql_vs_sqlite")}))


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    styles = {
        "checks": ("tab:blue", "POST /v1/checks (audit log on)"),
        "bare": ("tab:gray", "bare FastAPI endpoint"),
    }
    for name, rows in results["latency_vs_rate"].items():
        color, label = styles[name]
        x = [r["achieved_rate"] for r in rows]
        ax.plot(x, [r["p50_ms"] for r in rows], "o--", color=color, label=f"{label}: p50")
        ax.plot(x, [r["p99_ms"] for r in rows], "s-", color=color, label=f"{label}: p99")
    ax.axhline(10, color="tab:red", lw=0.8, ls=":", label="p99 target 10 ms")
    ax.axvline(1000, color="tab:green", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("requests/s (open loop, achieved)")
    ax.set_ylabel("latency (ms, from the scheduled send time)")
    t = results["throughput"]
    ax.set_title(
        f"Latency against rate; max {t['checks']['rps']:.0f} checks/s vs bare "
        f"{t['bare']['rps']:.0f} req/s ({t['ratio']:.0%})",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-bare":
        serve_bare(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif len(sys.argv) > 2 and sys.argv[1] == "--open-loop":
        _port, _path, _key, _file, _rate, _dur = sys.argv[2:8]
        _bodies = [json.loads(line) for line in Path(_file).read_text().splitlines() if line]
        _reqs = raw_requests(_path, _key, _bodies)
        print(json.dumps(open_loop(int(_port), _reqs, float(_rate), float(_dur))))
    else:
        main()
