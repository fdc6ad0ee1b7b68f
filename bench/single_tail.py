"""Where a single check's tail latency comes from: open-loop latency against time, A/B.

Issue 18 keeps p99 <= 10 ms at 1,000 checks/s. This script runs ``geofence serve``
processes of several source trees side by side (the bundled 18,300-zone set, SQLite, the
audit log on; each tree's own ``api/``, ``geofence/`` and ``zones/``: a tree is a
checkout, e.g. a ``git worktree`` of an old commit) and, in interleaved rounds (the
order rotates each round), drives each with the open-loop client of
:mod:`bench.http` at a fixed rate, in its own process. Unlike that client it keeps
every request's due time and latency, so the report says *when* the slow requests
happen: episodes (slow requests closer than 5 ms to each other), their spacing, and the
phase of the slow requests against a period (the active-version poll's 0.5 s, the
connection sweep's, ...).

With ``--events`` every server logs, through a ``sitecustomize`` put first on its path,
each cyclic garbage collection over 1 ms and each of its audit writer's group commits
(the insert and the commit, with its fsync) and checkpoints, with their start on the
shared monotonic clock (``perf_counter`` is ``CLOCK_MONOTONIC`` in every process here),
so that each request over 10 ms is put down to what was under way while it waited.

    python bench/single_tail.py --tree A=/tmp/old --tree B=. [--rounds 4] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
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
# keep bench/ off the import path (bench/http would shadow the standard library's http)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.http import harness as bh  # noqa: E402
from bench.http.baselines import start_bare  # noqa: E402

SITECUSTOMIZE = """
import gc, os, sys, time
_out = open(os.environ["GC_LOG"], "a", buffering=1)
_t = [0.0]
def _cb(phase, info):
    if phase == "start":
        _t[0] = time.perf_counter()
    else:
        d = time.perf_counter() - _t[0]
        if d > 0.001:
            _out.write(f"gc {_t[0]:.6f} {d * 1e3:.3f} {info['generation']}\\n")
gc.callbacks.append(_cb)

# the audit writer (a child process with this environment): time its commits and
# checkpoints, patched in when api.audit is imported
import importlib.abc, importlib.machinery

def _timed(kind, f):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            d = time.perf_counter() - t
            if d > 0.0002:
                _out.write(f"{kind} {t:.6f} {d * 1e3:.3f} 0\\n")
    return wrapper

class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in ("api.audit", "api.audit.child"):  # a module before or after 6643370
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            c = getattr(module, "_Child", None)
            if c is not None:
                c.insert = _timed("insert", c.insert)
                c.checkpoint = _timed("checkpoint", c.checkpoint)
                on = getattr(c, "_checkpoint_on", None)
                if on is not None:  # the checkpoint thread's copies (api.audit since 2026-12-04)
                    import threading
                    timed = _timed("bgcheckpoint", on)
                    def wrapped(conn):
                        if threading.current_thread().name == "audit-checkpoint":
                            return timed(conn)
                        return on(conn)
                    c._checkpoint_on = staticmethod(wrapped)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Hook())
"""


async def _record(
    port: int, reqs: list[bytes], rate: float, duration: float
) -> tuple[np.ndarray, np.ndarray]:
    """Open loop at ``rate``: each request's due time (perf_counter) and latency (s)."""
    clock = time.perf_counter
    n = int(rate * duration)
    free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    due = np.zeros(n)
    lat = np.full(n, np.nan)

    async def one(i: int) -> None:
        for attempt in range(2):
            try:
                conn = None if attempt or not free else free.pop()
                status, conn = await bh.http_exchange(port, reqs[i % len(reqs)], conn)
                if status == 200:
                    lat[i] = clock() - due[i]
                free.append(conn)
                return
            except (OSError, RuntimeError, asyncio.IncompleteReadError):
                continue  # a pooled connection the server closed: once more on a new one

    tasks = []
    t0 = clock() + 0.05
    for i in range(n):
        due[i] = t0 + i / rate
        d = due[i] - clock()
        if d > 0.0005:
            await asyncio.sleep(d)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    for _, w in free:
        w.close()
    return due, lat


def client_main(port: int, path: str, key: str, bodies: Path, rate: float, dur: float, out: str):
    import uvloop

    reqs = bh.raw_requests(path, key, [json.loads(x) for x in bodies.read_text().splitlines()])
    wall = time.time() - time.perf_counter()  # to set the times against other tools' clocks
    due, lat = uvloop.run(_record(port, reqs, rate, dur))
    np.savez(out, due=due, lat=lat, wall=wall)


def episodes(due: np.ndarray, lat: np.ndarray, slow_ms: float) -> list[tuple[float, float, int]]:
    """Runs of slow requests (due within 5 ms of each other): (start, worst ms, count)."""
    idx = np.flatnonzero(lat * 1e3 > slow_ms)
    out: list[list[float]] = []  # start, worst ms, count, last due
    for i in idx:
        if out and due[i] - out[-1][3] < 0.005:
            e = out[-1]
            e[1], e[2], e[3] = max(e[1], lat[i] * 1e3), e[2] + 1, due[i]
        else:
            out.append([due[i], lat[i] * 1e3, 1, due[i]])
    return [(s, w, int(k)) for s, w, k, _ in out]


def _overlapping(t: float, t_end: float, events: list[tuple[float, float, int]], ms: float) -> bool:
    """Whether an event longer than ``ms`` was under way between ``t`` and ``t_end``."""
    return any(e[1] > ms and e[0] < t_end and e[0] + e[1] / 1e3 > t for e in events)


def analyse(
    due: np.ndarray, lat: np.ndarray, events: dict[str, list[tuple[float, float, int]]]
) -> dict[str, Any]:
    ok = ~np.isnan(lat)
    ms = lat[ok] * 1e3
    t = due[ok]
    t0, t1 = float(t[0]), float(t[-1])
    eps = episodes(t, lat[ok], 5.0)
    starts = np.array([e[0] for e in eps])
    gaps = np.diff(starts) if len(starts) > 1 else np.array([])
    phase = {}
    for period in (0.25, 0.5, 1.0):
        ph = ((t[ms > 5.0] - t0) % period) / period
        if len(ph):  # how concentrated the slow requests' phase is (1: one instant)
            phase[str(period)] = round(float(abs(np.exp(2j * np.pi * ph).mean())), 3)
    ev = {k: [e for e in v if t0 - 1 <= e[0] <= t1 + 1] for k, v in events.items()}
    slow = np.flatnonzero(ms > 10.0)
    # each request over 10 ms, put down to what was under way while it waited (first
    # match in this order): a checkpoint on the writer's connection, one in its checkpoint
    # thread, a commit over 3 ms, a collection over 1 ms
    why = {
        "checkpoint": 0,
        "thread_checkpoint": 0,
        "commit_over_3ms": 0,
        "gc": 0,
        "none_of_these": 0,
    }
    for i in slow:
        a, b = float(t[i]), float(t[i] + ms[i] / 1e3)
        if _overlapping(a, b, ev["checkpoint"], 0.0):
            why["checkpoint"] += 1
        elif _overlapping(a, b, ev["bgcheckpoint"], 0.0):
            why["thread_checkpoint"] += 1
        elif _overlapping(a, b, ev["insert"], 3.0):
            why["commit_over_3ms"] += 1
        elif _overlapping(a, b, ev["gc"], 1.0):
            why["gc"] += 1
        else:
            why["none_of_these"] += 1
    ins = [e[1] for e in ev["insert"]]
    cps = [e[1] for e in ev["checkpoint"]]
    bgs = [e[1] for e in ev["bgcheckpoint"]]
    return {
        "requests": len(lat),
        "failed": int((~ok).sum()),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 3),
        "max_ms": round(float(ms.max()), 3),
        "over_10ms": len(slow),
        "over_10ms_while": why,
        "episodes_over_5ms": len(eps),
        "episode_gap_s_median": round(float(np.median(gaps)), 3) if len(gaps) else None,
        "slow_phase_concentration": phase,
        "gc_over_1ms": [
            {
                "gen": g,
                "n": sum(1 for x in ev["gc"] if x[2] == g),
                "ms_max": round(max(x[1] for x in ev["gc"] if x[2] == g), 2),
            }
            for g in sorted({x[2] for x in ev["gc"]})
        ],
        "commits_over_0.2ms": len(ins),
        "commit_ms_p50_p99_max": [round(float(np.percentile(ins, q)), 2) for q in (50, 99, 100)]
        if ins
        else None,
        "checkpoints": len(cps),
        "checkpoint_ms_median_max": [round(float(np.median(cps)), 2), round(max(cps), 2)]
        if cps
        else None,
        "thread_checkpoints": len(bgs),
        "thread_checkpoint_ms_median_max": [round(float(np.median(bgs)), 2), round(max(bgs), 2)]
        if bgs
        else None,
    }


def start(tree: Path, workdir: Path, port: int, gc_log: Path | None) -> tuple[Any, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOFENCE_")}
    path = str(tree)
    if gc_log is not None:
        site = workdir / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        path = f"{site}:{tree}"
        env["GC_LOG"] = str(gc_log)
    env |= {"PYTHONPATH": path, "GEOFENCE_DATABASE_URL": f"sqlite:///{workdir / 'geofence.db'}"}
    p = bh.Proc(
        [sys.executable, "-m", "api", "serve", "--port", str(port)], env, workdir, f"g-{port}"
    )
    bh.wait_ready(f"http://127.0.0.1:{port}/readyz", p.proc, timeout=900)
    keys = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(gfk_\S+)$", p.out.read_text(), re.M))
    return p, keys["meituan"]


def read_events(path: Path | None) -> dict[str, list[tuple[float, float, int]]]:
    """The servers' logged events by kind: gc, insert (a group commit), checkpoint."""
    out: dict[str, list[tuple[float, float, int]]] = {
        "gc": [],
        "insert": [],
        "checkpoint": [],
        "bgcheckpoint": [],
    }
    if path is None or not path.exists():
        return out
    for line in path.read_text().splitlines():
        kind, t, ms, g = line.split()
        out[kind].append((float(t), float(ms), int(g)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--tree",
        action="append",
        required=True,
        help="NAME=PATH (a checkout; a PATH named bare-audit: bench.http's bare endpoint "
        "that commits one audit row per request)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument(
        "--events",
        action="store_true",
        help="log the servers' collections, audit commits and checkpoints (see the docstring)",
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON report")
    ap.add_argument("--keep", type=Path, default=None, help="keep per-request arrays here")
    args = ap.parse_args()
    trees = {
        n: Path(p) if p == "bare-audit" else Path(p).resolve()
        for n, p in (t.split("=", 1) for t in args.tree)
    }
    work = Path(tempfile.mkdtemp(prefix="geofence-tail-"))
    rounds: list[dict[str, Any]] = []
    try:
        servers = {}
        for name, tree in trees.items():
            port = bh.free_port()
            gl = work / f"gc-{name}.log" if args.events else None
            if tree.name == "bare-audit":  # the baseline of bench.http, this checkout's
                (work / name).mkdir()
                start_bare(work / name, port, audit=True)
                servers[name] = (port, "-", gl, "/bare")
            else:
                _, key = start(tree, work / f"db-{name}", port, gl)
                servers[name] = (port, key, gl, "/v1/checks")
            print(f"{name}: {tree} on {port}", flush=True)
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text(
            "\n".join(json.dumps(b) for b in bh.check_bodies(2000, 3, seed=1)) + "\n"
        )
        names = list(trees)

        def drive(name: str, dur: float) -> dict[str, Any]:
            port, key, gl, route = servers[name]
            out = work / f"{name}.npz"
            subprocess.run(
                [sys.executable, __file__, "--client", str(port), route, key,
                 str(bodies_file), str(args.rate), str(dur), str(out)],
                check=True, timeout=dur + 120,
            )  # fmt: skip
            d = np.load(out)
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(out, args.keep / f"{name}-{len(rounds)}.npz")
            return analyse(d["due"], d["lat"], read_events(gl))

        for name in names:  # warm each
            drive(name, 3.0)
        for i in range(args.rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            row: dict[str, Any] = {"order": "".join(order), "load": os.getloadavg()[0]}
            for name in order:
                row[name] = drive(name, args.duration)
                r = row[name]
                print(f"round {i} {name}: {json.dumps(r)}", flush=True)
            rounds.append(row)
    finally:
        for p in bh._STARTED:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        n: {k: statistics.median(r[n][k] for r in rounds) for k in ("p50_ms", "p99_ms")}
        for n in names
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "trees": {n: str(p) for n, p in trees.items()},
                    "rate": args.rate,
                    "method": f"{args.rounds} rounds, order rotating; per round and server an "
                    f"open loop at {args.rate:.0f} checks/s for {args.duration} s (its own "
                    "process); medians over the rounds",
                    "median": summary,
                    "rounds": rounds,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        a = sys.argv[2:]
        client_main(int(a[0]), a[1], a[2], Path(a[3]), float(a[4]), float(a[5]), a[6])
    else:
        main()
