"""The scenarios against a running ``geofence serve`` and the baselines: throughput
(closed loop, wrk), latency against rate (open loop) with the 1,000 checks/s target
measured three times, and batches (``POST /v1/checks/batch``, fixes per second end to
end) with the audit floor beside them (:mod:`bench.http.audit`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench.http.audit import audit_floor
from bench.http.harness import check_bodies, metric, open_loop_subprocess, run_wrk


# ---------------------------------------------------------------------------- throughput
def throughput(
    url: str, burl: str, aurl: str, key: str, bodies_file: Path, lua: Path, duration: int
) -> dict[str, Any]:
    """Closed loop (wrk): the most requests/s of ``POST /v1/checks`` at ``url``, of the
    bare endpoint at ``burl`` and of the bare + audit endpoint at ``aurl``."""
    # closed loop: maximum requests/s
    run_wrk(url, "/v1/checks", key, bodies_file, lua, 3)  # warm both
    run_wrk(burl, "/bare", key, bodies_file, lua, 3)
    run_wrk(aurl, "/bare", key, bodies_file, lua, 3)
    thr_checks = run_wrk(url, "/v1/checks", key, bodies_file, lua, duration)
    thr_bare = run_wrk(burl, "/bare", key, bodies_file, lua, duration)
    thr_bare_audit = run_wrk(aurl, "/bare", key, bodies_file, lua, duration)
    commits = metric(url, "geofence_audit_commit_rows_count")
    rows = metric(url, "geofence_audit_commit_rows_sum")
    return {
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


# ---------------------------------------------------------------------------- latency
def latency(
    port: int,
    bport: int,
    key: str,
    bodies_file: Path,
    rates: list[float],
    duration: int,
    sweep_seconds: float,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Open loop at each of ``rates`` against the service (``port``) and the bare endpoint
    (``bport``), ``duration`` s at 1,000/s (three runs) and ``sweep_seconds`` at the
    others; returns the sweep and the 1,000 checks/s section (medians of the three)."""
    # open loop: latency at fixed rates
    sweep: dict[str, list[dict[str, Any]]] = {"checks": [], "bare": []}
    runs: list[dict[str, Any]] = []  # the target's rate, three times
    for rate in rates:
        dur = duration if rate == 1000 else sweep_seconds
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
                runs.append(open_loop_subprocess(port, "/v1/checks", key, bodies_file, 1000, dur))
                print("checks", runs[-1], flush=True)
    at1000 = {
        k: statistics.median(r[k] for r in runs)
        for k in ("p50_ms", "p99_ms", "achieved_rate", "non200")
    }
    return sweep, {
        **at1000,
        "runs_p99_ms": [r["p99_ms"] for r in runs],
        "note": "medians of three 10 s runs at 1,000 checks/s",
    }


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
