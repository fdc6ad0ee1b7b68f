"""The load harness: free ports, server processes, the check bodies, wrk and the
open-loop client.

Every server a run starts is a :class:`Proc` in ``_STARTED``, stopped at exit whatever
happens. ``geofence serve`` is started the README's way (:func:`start_geofence`); the
baselines are in :mod:`bench.http.baselines`. Load comes from other processes than
this one: Debian's ``wrk`` with a Lua script cycling through pre-serialized bodies
(closed loop, :func:`run_wrk`) and the asyncio open-loop client, run as
``python -m bench.http --open-loop ...`` (:func:`open_loop_subprocess`) so that it does
not share the GIL with the process that drives the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
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


def module_env() -> dict[str, str]:
    """This process's environment with the checkout first on ``PYTHONPATH``: the
    subprocesses that run this package (``python -m bench.http --serve-bare`` and
    ``--open-loop``) start in their own work directory, and must import this checkout's
    ``bench`` and ``api`` (the file they ran before the split put the checkout first on
    its import path itself)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


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


def stop_all(work: Path, keep: bool) -> None:
    """At the end of a run, whatever happened: stop every server it started, and remove
    its work directory unless ``keep`` (then say where it is)."""
    for p in _STARTED:
        p.stop()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("work directory:", work)


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
async def http_exchange(
    port: int, req: bytes, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
) -> tuple[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """One raw HTTP/1.1 request and its whole answer, on ``conn`` (a kept-alive
    connection) or a new one to ``127.0.0.1:port``: the status and the connection."""
    r, w = conn if conn is not None else await asyncio.open_connection("127.0.0.1", port)
    w.write(req)
    head = await r.readuntil(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if m:
        await r.readexactly(int(m.group(1)))
    return int(head[9:12]), (r, w)


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
        conn = None if fresh or not free else free.pop()
        opened += conn is None
        return await http_exchange(port, reqs[i % len(reqs)], conn)

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
            "-m",
            "bench.http",
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
        env=module_env(),
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- machine
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
