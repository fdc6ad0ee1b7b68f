"""HTTP benchmark: the service against a bare FastAPI endpoint served the same way.

The command line (see :mod:`bench.http` for what a run measures)::

    python -m bench.http [--duration 10] [--rates 250 500 1000 2000 3000 4000]
    python -m bench.http --only processes|bytes|batch

and the entry points of the package's own subprocesses: ``--serve-bare PORT
[AUDIT_URL]`` (:func:`bench.http.baselines.serve_bare`) and ``--open-loop PORT PATH
KEY BODIES RATE SECONDS`` (:func:`bench.http.harness.open_loop`, one JSON line out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http import report
from bench.http.audit import audit_bytes
from bench.http.baselines import serve_bare, start_bare
from bench.http.harness import (
    LUA,
    check_bodies,
    free_port,
    open_loop,
    raw_requests,
    start_geofence,
    stop_all,
    wait_quiet,
)
from bench.http.processes import run_processes
from bench.http.scenarios import batch_section, latency, throughput


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__.splitlines()[0])
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
        main_bytes(work)
        return
    if args.only == "batch":
        main_batch(args, work)
        return
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
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

        results["throughput"] = throughput(url, burl, aurl, key, bodies_file, lua, args.duration)
        print("throughput:", results["throughput"], flush=True)
        results["latency_vs_rate"], results["at_1000_per_s"] = latency(
            port, bport, key, bodies_file, args.rates, args.duration, args.sweep_seconds
        )

        results["batch"] = batch_section(work, url, key)
        results["audit_bytes"] = audit_bytes(work)
        results["processes"] = run_processes(work, bodies_file, lua, args.duration)
        results["targets"] = report.targets(results, t_cold)
    finally:
        stop_all(work, args.keep)

    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.write(results)
    print(json.dumps(results["targets"], indent=2))


def main_bytes(work: Path) -> None:
    """``--only bytes``: the audit log's bytes per decision, merged into ``http.json``."""
    try:
        stored = audit_bytes(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    report.merge({"audit_bytes": stored, "audit_bytes_date": date})


def main_batch(args: argparse.Namespace, work: Path) -> None:
    """``--only batch``: a fresh server, the batch runs and the audit floor, merged into
    ``http.json``."""
    load0 = [round(x, 2) for x in os.getloadavg()]
    try:
        port = free_port()
        proc, _ = start_geofence(work, port)
        keys = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(gfk_\S+)$", proc.out.read_text(), re.M))
        section = batch_section(work, f"http://127.0.0.1:{port}", keys["meituan"])
    finally:
        stop_all(work, args.keep)
    section["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    section["load_average"] = {"start": load0, "end": [round(x, 2) for x in os.getloadavg()]}
    report.merge({"batch": section})
    print(json.dumps(section["best_fixes_per_s_by_fixes_per_check"], indent=2))


def main_processes(args: argparse.Namespace, work: Path, waited: float) -> None:
    """``--only processes``: run that section alone; merge it into ``http.json``."""
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
        stop_all(work, args.keep)
    section["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    section["load_average_at_start"] = load0
    section["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    section["waited_for_quiet_s"] = round(waited, 1)
    report.merge({"processes": section})
    print(json.dumps({k: section[k] for k in ("two_vs_one_worker", "postgresql_vs_sqlite")}))


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
