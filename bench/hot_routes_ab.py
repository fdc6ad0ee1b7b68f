"""A/B of the hot routes between two versions of the web layer, interleaved in one run.

The machine is shared and noisy, so two ``geofence serve`` processes run side by side
(the bundled 18,300-zone set, SQLite, the audit log on): ``A`` serves the ``api/``
package of a base commit, ``B`` this checkout's; ``geofence/`` and ``zones/`` are the
checkout's for both (the compiled kernels' cache is shared, and the A/B is about the web
layer). Rounds alternate the order (A B, B A, ...); each round measures, on each server,
``POST /v1/checks`` with wrk (closed loop, :func:`bench.http.harness.run_wrk`, 2,000 distinct
3-fix bodies) and ``POST /v1/checks/batch`` (1,000 checks of 10 fixes,
:func:`bench.http.scenarios.run_batches`). The report is the median of the rounds per server,
and each round's figures.

    python bench/hot_routes_ab.py --base b920fbd [--rounds 5] [--duration 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# run as a file, this folder is first on the import path, and its bench/http/ would
# shadow the standard library's `http` (httpx and uvicorn need it): the checkout instead
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.http import harness as bh  # noqa: E402
from bench.http import report  # noqa: E402
from bench.http.scenarios import run_batches  # noqa: E402


def base_tree(commit: str, into: Path) -> Path:
    """``api/`` of ``commit`` beside links to this checkout's ``geofence/`` and ``zones/``."""
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "api"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    for name in ("geofence", "zones"):
        (into / name).symlink_to(ROOT / name)
    return into


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants (the audit writer)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / tick
    family, grew = {pid}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in family} - family
        grew = bool(more)
        family |= more
    return sum(cpu.get(p, 0.0) for p in family)


def start(tree: Path, workdir: Path, port: int) -> tuple[Any, dict[str, str]]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOFENCE_")}
    env |= {
        "PYTHONPATH": str(tree),
        "GEOFENCE_DATABASE_URL": f"sqlite:///{workdir / 'geofence.db'}",
    }
    p = bh.Proc(
        [sys.executable, "-m", "api", "serve", "--port", str(port)], env, workdir, f"g-{port}"
    )
    bh.wait_ready(f"http://127.0.0.1:{port}/readyz", p.proc, timeout=600)
    keys = dict(re.findall(r"^\s+\w+\s+(\w+)\s+(gfk_\S+)$", p.out.read_text(), re.M))
    return p, keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the commit whose api/ is A")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hot_routes_ab.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="geofence-ab-"))
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "api"], capture_output=True, text=True
    ).stdout.strip()
    trees = {"A": base_tree(args.base, work / "base"), "B": ROOT}
    rounds: list[dict[str, Any]] = []
    try:
        servers = {}
        pids = {}
        for name, tree in trees.items():
            port = bh.free_port()
            proc, keys = start(tree, work / f"db-{name}", port)
            servers[name] = (f"http://127.0.0.1:{port}", keys["meituan"])
            pids[name] = proc.proc.pid
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text(
            "\n".join(json.dumps(b) for b in bh.check_bodies(2000, 3, seed=1)) + "\n"
        )
        lua = work / "post.lua"
        lua.write_text(bh.LUA)
        for url, key in servers.values():  # warm both
            bh.run_wrk(url, "/v1/checks", key, bodies_file, lua, 3)
        for i in range(args.rounds):
            order = ["A", "B"] if i % 2 == 0 else ["B", "A"]
            row: dict[str, Any] = {"order": "".join(order)}
            for name in order:
                url, key = servers[name]
                c0 = _tree_cpu_s(pids[name])
                w = bh.run_wrk(url, "/v1/checks", key, bodies_file, lua, args.duration)
                c1 = _tree_cpu_s(pids[name])
                b = run_batches(url, key, 1000, 10, 5, 1)
                c2 = _tree_cpu_s(pids[name])
                row[name] = {
                    "checks_rps": w["rps"],
                    "checks_p99_ms": w.get("p99_ms"),
                    # server CPU per request: far less moved by the other load than rps
                    "cpu_us_per_check": round((c1 - c0) / w["requests"] * 1e6, 1),
                    "batch_median_s": b["median_batch_s"],
                    "batch_fixes_per_s": b["fixes_per_s"],
                    "cpu_ms_per_batch": round((c2 - c1) / (b["batches"] + 1) * 1e3, 1),
                }
            print(json.dumps(row), flush=True)
            rounds.append(row)
    finally:
        for p in bh._STARTED:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)

    def med(name: str, k: str) -> float:
        return statistics.median(r[name][k] for r in rounds)

    keys = (
        "checks_rps",
        "cpu_us_per_check",
        "batch_median_s",
        "batch_fixes_per_s",
        "cpu_ms_per_batch",
    )
    summary = {n: {k: med(n, k) for k in keys} for n in ("A", "B")}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "A": f"api/ of {args.base} (before)",
        "B": f"api/ of {head}{' + uncommitted changes' if dirty else ''} (after)",
        "method": f"{args.rounds} interleaved rounds (ABBA...); per round and server: wrk "
        f"{args.duration} s on POST /v1/checks (16 connections, 2,000 distinct 3-fix "
        "bodies), then 5 batches of 1,000 checks x 10 fixes (+1 warm-up); the server's CPU "
        "time (process and children, /proc) per check and per batch; medians over the rounds",
        "median": summary,
        "B_over_A": {k: round(summary["B"][k] / summary["A"][k], 3) for k in keys},
        "rounds": rounds,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"median": summary, "B_over_A": result["B_over_A"]}, indent=2))


if __name__ == "__main__":
    main()
