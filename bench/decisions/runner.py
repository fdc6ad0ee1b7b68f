"""Decision quality benchmark: settle / reject / review against ground truth.

``main``: the command line, the workloads per fix class, the engine and the baselines
decided on them, the sweep, the throughput, ``bench/results/decisions.json`` and the
summary printed (``--gnss`` hands over to :mod:`bench.gnss`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely

import geofence
from bench.decisions.metrics import (
    baselines,
    evaluate,
    examples,
    probes,
    reason_breakdown,
    reject_calibration,
)
from bench.decisions.report import _jsonable, plot, print_matrix
from bench.decisions.throughput import throughput
from bench.decisions.workload import (
    ENDED_AT,
    ENGINE_SHA_AT_IMPORT,
    ENGINE_SRC,
    FIX_CLASSES,
    FIX_INTERVAL_S,
    FIX_QUALITY,
    FIXES_PER_TRIP,
    OPERATOR,
    OUTCOMES,
    RESULTS,
    ROOT,
    SEEDS,
    SWEEP,
    TARGET_CORRECT_PRECISE_PCT,
    TARGET_WRONG_PCT,
    ZONES,
    Truth,
    batch_of,
    engine_sha,
    git_info,
)
from geofence import crs as gcrs
from geofence.decisions import SIGMA_PER_R68
from zones.districts import service_area
from zones.workload import make_trip_ends


def main() -> None:
    if "--gnss" in sys.argv[1:]:
        from bench import gnss  # the scenario benchmark owns its own arguments

        gnss.main([a for a in sys.argv[1:] if a != "--gnss"])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=200_000, help="trips per fix class")
    ap.add_argument("--quick", action="store_true", help="20,000 trips, no sweep (smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS / "decisions.json")
    args = ap.parse_args()
    n_trips = 20_000 if args.quick else args.trips
    t_start = time.perf_counter()
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})  # one core, for everything (numba is single-threaded)
    load_before = os.getloadavg()
    git = git_info()  # the engine code this run imported (others may commit meanwhile)

    zs = geofence.ZoneSet.from_geojson(ZONES, version=1)
    ix = geofence.ZoneIndex(zs, service_area=service_area())
    ended_at = datetime.fromisoformat(ENDED_AT).timestamp()
    fenced = (zs.kind == geofence.KIND_PARKING) & zs.fenced
    open_to = zs.open_to(OPERATOR)
    active = zs.active_at(ended_at)
    eligible = fenced & open_to & active
    fenced_pos = np.flatnonzero(fenced)
    fenced_tree = shapely.STRtree(zs.geometry_m[fenced_pos])
    default = geofence.Policy()
    ref_tol = default.tolerance_m

    works: dict[str, Any] = {}
    truths: dict[str, Truth] = {}
    batches: dict[str, geofence.CheckBatch] = {}
    for fc in FIX_CLASSES:
        w = make_trip_ends(
            ZONES,
            n_trips,
            seed=SEEDS[fc],
            accuracy=fc,
            crs="wgs84",
            fixes_per_trip=FIXES_PER_TRIP,
        )
        works[fc] = w
        truths[fc] = Truth(zs, w, eligible, fenced_tree)
        batches[fc] = batch_of(w, ended_at, OPERATOR, FIX_QUALITY[fc])
        bad = truths[fc].inside & (truths[fc].d_fenced > 1e-6)
        if bad.any():
            print(f"warning: {bad.sum()} {fc} inside trips are not in a fenced box", flush=True)

    # ---- the default policy and the baselines
    per_class: dict[str, Any] = {}
    decisions: dict[str, geofence.DecisionBatch] = {}
    for fc in FIX_CLASSES:
        tr = truths[fc]
        d = geofence.decide_arrays(ix, batches[fc], default, ended_at)
        decisions[fc] = d
        res = evaluate(tr, zs, d.outcome, d.zone, default.tolerance_m, ref_tol)
        res["reasons"] = reason_breakdown(tr, d, default.tolerance_m)
        res["examples"] = examples(tr, zs, d, default.tolerance_m)
        res["reject_calibration"] = reject_calibration(tr, d)
        res["fused_accuracy_m_median"] = round(float(np.median(d.accuracy_m)), 3)
        fx, fy = (np.asarray(a, dtype=np.float64) for a in gcrs.project(d.lon, d.lat))
        err = np.hypot(fx - tr.x, fy - tr.y)
        sig = d.accuracy_m / SIGMA_PER_R68
        # calibration of the fused uncertainty: share of true positions within the
        # fused 68 % radius (0.68 if the fused sigma is right)
        res["fused_error"] = {
            "median_m": round(float(np.median(err)), 3),
            "share_within_fused_r68": round(float((err <= d.accuracy_m).mean()), 4),
            "median_error_over_sigma": round(float(np.median(err / sig)), 3),
        }
        res["baselines"] = {
            name: evaluate(tr, zs, o, z, default.tolerance_m, ref_tol)
            for name, (o, z) in baselines(ix, works[fc], eligible).items()
        }
        per_class[fc] = res
        print(f"{fc}: decided {tr.n:,} trips", flush=True)

    # ---- the sweep
    sweep: list[dict[str, Any]] = []
    if not args.quick:
        for tol in SWEEP["tolerance_m"]:
            for rho in SWEEP["centre_p"]:
                for sp in SWEEP["settle_p"]:
                    pol = geofence.Policy(tolerance_m=tol, settle_p=sp, centre_p=rho)
                    row: dict[str, Any] = {
                        "settle_p": sp,
                        "tolerance_m": tol,
                        "centre_p": rho,
                        "policy": pol.id,
                    }
                    for fc in FIX_CLASSES:
                        d = geofence.decide_arrays(ix, batches[fc], pol, ended_at)
                        row[fc] = evaluate(
                            truths[fc], zs, d.outcome, d.zone, tol, ref_tol, matrix=False
                        )
                    row["meets_targets"] = bool(
                        all(
                            row[fc]["wrongly_settled_pct_of_trips"] <= TARGET_WRONG_PCT
                            for fc in FIX_CLASSES
                        )
                        and row["precise"]["correctly_settled_pct"] >= TARGET_CORRECT_PRECISE_PCT
                    )
                    sweep.append(row)
            print(f"sweep: tolerance {tol} m done", flush=True)
    default_row = {
        "settle_p": default.settle_p,
        "tolerance_m": default.tolerance_m,
        "centre_p": default.centre_p,
        **{
            fc: {k: v for k, v in per_class[fc].items() if not isinstance(v, dict)}
            for fc in FIX_CLASSES
        },
    }
    meeting = sorted(
        (r for r in sweep if r["meets_targets"]),
        key=lambda r: (r["consumer"]["review_pct"], r["precise"]["review_pct"]),
    )
    compact = [
        {
            "settle_p": r["settle_p"],
            "tolerance_m": r["tolerance_m"],
            "centre_p": r["centre_p"],
            "policy": r["policy"],
            **{
                f"{fc}_{k}": r[fc][k]
                for fc in FIX_CLASSES
                for k in (
                    "wrongly_settled_pct_of_trips",
                    "correctly_settled_pct",
                    "review_pct",
                    "settled_outside_ref_tol_pct_of_trips",
                )
            },
        }
        for r in meeting[:10]
    ]

    # ---- throughput (one core)
    tp = throughput(ix, batches, works, ended_at)

    result = {
        "benchmark": "decisions",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": {
            **git,
            "engine_source_changed_during_run": engine_sha(
                lambda name: (ENGINE_SRC / name).read_bytes()
            )
            != ENGINE_SHA_AT_IMPORT,
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_used": 1,
            "pinned_cpu": cpu,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "python": sys.version.split()[0],
        "zones": {
            "path": str(ZONES.relative_to(ROOT)),
            "zones": len(zs),
            "fenced": int(fenced.sum()),
            "eligible": int(eligible.sum()),
            "closed_to_operator": int((fenced & ~open_to).sum()),
            "inactive_at_ended_at": int((fenced & ~active).sum()),
            "checksum": zs.checksum,
        },
        "workload": {
            "generator": "zones.workload.make_trip_ends",
            "trips_per_fix_class": n_trips,
            "seeds": SEEDS,
            "fixes_per_trip": FIXES_PER_TRIP,
            "fix_interval_s": FIX_INTERVAL_S,
            "crs": "wgs84",
            "operator": OPERATOR,
            "ended_at": ENDED_AT,
            "heading": "not sent",
            "beacons": "none",
            "note": "the workload draws each trip's fixes independently around the true "
            "point (no correlation between a trip's fixes)",
        },
        "definitions": {
            "should_settle": "truth 'inside' a fenced box open to the operator and active "
            "at ended_at",
            "truly_outside": "true position farther than the policy's tolerance_m from "
            "every fenced box (shapely distance in EPSG:4547)",
            "wrongly_settled": "settle and truly_outside",
            "settled_outside_ref_tol": f"settle and farther than {ref_tol} m (the default "
            "tolerance) from every fenced box: one yardstick for every policy",
            "settled_not_in_that_box": "settle and the true position farther than the "
            "tolerance from the box it settled in",
            "baselines": "raw_point_in_polygon: settle iff the last raw fix lies in an "
            "eligible fenced box (ZoneIndex.locate); buffer_5m: settle iff the last raw fix "
            "is within 5 m of an eligible fenced box (ZoneIndex.nearest with a mask)",
        },
        "targets": {
            "wrongly_settled_pct_of_trips_max": TARGET_WRONG_PCT,
            "precise_correctly_settled_pct_min": TARGET_CORRECT_PRECISE_PCT,
        },
        "policy": {"id": default.id, **asdict(default)},
        "results": per_class,
        "targets_met_by_default": {
            "consumer_wrongly_settled": per_class["consumer"]["wrongly_settled_pct_of_trips"]
            <= TARGET_WRONG_PCT,
            "precise_wrongly_settled": per_class["precise"]["wrongly_settled_pct_of_trips"]
            <= TARGET_WRONG_PCT,
            "precise_correctly_settled": per_class["precise"]["correctly_settled_pct"]
            >= TARGET_CORRECT_PRECISE_PCT,
        },
        "probes_fixes_at_box_centre": probes(ix, zs, eligible, ended_at),
        "sweep_grid": SWEEP,
        "sweep": sweep,
        "sweep_best_meeting_targets": compact,
        "throughput": tp,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=_jsonable) + "\n")
    if sweep:
        plot(sweep, default_row, args.out.with_suffix(".png"))

    # ---- readable summary
    print(
        f"\nDecision quality: {n_trips:,} trips per fix class, policy {default.id}, "
        f"operator {OPERATOR}, ended_at {ENDED_AT}"
    )
    for fc in FIX_CLASSES:
        r = per_class[fc]
        print(f"\n[{fc}] (fused 68 % radius median {r['fused_accuracy_m_median']} m)")
        print_matrix("engine, default policy (row %):", r["matrix"], OUTCOMES)
        for name, b in r["baselines"].items():
            print_matrix(f"{name} (row %):", b["matrix"], ("settle", "reject"))
        print(
            f"  {'':<22}{'wrong % trips':>14}{'wrong % outside':>16}{'correct %':>11}"
            f"{'review %':>10}{'reject % out':>13}"
        )
        for name, m in [("engine", r), *r["baselines"].items()]:
            print(
                f"  {name:<22}{m['wrongly_settled_pct_of_trips']:>14.3f}"
                f"{m['wrongly_settled_pct_of_outside']:>16.3f}"
                f"{m['correctly_settled_pct']:>11.2f}{m['review_pct']:>10.2f}"
                f"{m['reject_pct_of_outside']:>13.2f}"
            )
    if sweep:
        print("\nSweep: policies meeting both targets, lowest consumer review first:")
        print(
            f"  {'settle_p':>8}{'tol':>6}{'rho':>5}  {'cons wrong':>10}{'cons review':>12}"
            f"{'cons corr':>10}  {'prec wrong':>10}{'prec corr':>10}{'prec review':>12}"
        )
        for r in compact:
            print(
                f"  {r['settle_p']:>8}{r['tolerance_m']:>6}{r['centre_p']:>5}  "
                f"{r['consumer_wrongly_settled_pct_of_trips']:>10.3f}"
                f"{r['consumer_review_pct']:>12.2f}{r['consumer_correctly_settled_pct']:>10.2f}  "
                f"{r['precise_wrongly_settled_pct_of_trips']:>10.3f}"
                f"{r['precise_correctly_settled_pct']:>10.2f}{r['precise_review_pct']:>12.2f}"
            )
        if not compact:
            print("  (none)")
    print("\nThroughput (one core):")
    for k, v in tp.items():
        if isinstance(v, dict):
            print(
                f"  {k}: {v.get('checks_per_s', '')} checks/s"
                if "checks_per_s" in v
                else f"  {k}: {v}"
            )
    print(f"\nwrote {args.out} in {result['seconds']} s")
