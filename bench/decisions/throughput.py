"""Throughput on one core: ``decide_arrays`` checks/s (median of 5 runs), the
single-check ``geofence.decide`` latency (median over 2,000 calls) and ``decide_many``
checks/s.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

import geofence
from bench.decisions.workload import FIX_INTERVAL_S, FIX_QUALITY, OPERATOR


def throughput(
    ix: geofence.ZoneIndex,
    batches: dict[str, geofence.CheckBatch],
    works: dict[str, Any],
    ended_at: float,
    repeat: int = 5,
    n_single: int = 2000,
    n_many: int = 20_000,
) -> dict[str, Any]:
    pol = geofence.Policy()
    out: dict[str, Any] = {"repeat": repeat}
    for fc, b in batches.items():
        for label, p in (("default", pol), ("k_nearest_0", geofence.Policy(k_nearest=0))):
            geofence.decide_arrays(ix, b, p, ended_at)  # warm-up (JIT, tables)
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                geofence.decide_arrays(ix, b, p, ended_at)
                ts.append(time.perf_counter() - t0)
            med = statistics.median(ts)
            out[f"decide_arrays_{fc}_{label}"] = {
                "checks": len(b),
                "fixes_per_check": int(b.n_fixes[0]),
                "median_s": round(med, 4),
                "checks_per_s": round(len(b) / med),
                "runs_s": [round(t, 4) for t in ts],
            }
    # single checks (consumer and precise interleaved), Check/Fix objects built beforehand
    checks = []
    for fc, w in works.items():
        m = w.fix_lon.shape[1]
        for i in range(n_single // len(works)):
            fixes = tuple(
                geofence.Fix(
                    lon=float(w.fix_lon[i, j]),
                    lat=float(w.fix_lat[i, j]),
                    accuracy_m=float(w.accuracy_m[i, j]),
                    at=ended_at - FIX_INTERVAL_S * (m - 1 - j),
                    quality=FIX_QUALITY[fc],
                )
                for j in range(m)
            )
            checks.append(geofence.Check(fixes=fixes, ended_at=ended_at, operator=OPERATOR))
    for c in checks[:200]:
        geofence.decide(ix, c, pol, ended_at)
    lat_ns = []
    for c in checks:
        t0 = time.perf_counter_ns()
        geofence.decide(ix, c, pol, ended_at)
        lat_ns.append(time.perf_counter_ns() - t0)
    lat_us = np.array(lat_ns) / 1e3
    out["decide_single"] = {
        "calls": len(lat_us),
        "median_us": round(float(np.median(lat_us)), 1),
        "p90_us": round(float(np.percentile(lat_us, 90)), 1),
        "p99_us": round(float(np.percentile(lat_us, 99)), 1),
    }
    # decide_many on Check objects (the named batch entry point)
    many = [checks[i % len(checks)] for i in range(n_many)]
    geofence.decide_many(ix, many[:1000], pol, ended_at)
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        geofence.decide_many(ix, many, pol, ended_at)
        ts.append(time.perf_counter() - t0)
    out["decide_many"] = {
        "checks": n_many,
        "median_s": round(statistics.median(ts), 4),
        "checks_per_s": round(n_many / statistics.median(ts)),
    }
    return out
