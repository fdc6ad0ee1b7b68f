"""Decisions under real GNSS error: scenario models, ground truth in bands, targets.

``main``: the command line, every scenario and band under each condition,
``bench/results/gnss.json`` and the printed table (the setting and the baselines are
:mod:`bench.decisions`').
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import geofence
from bench.decisions.report import _jsonable
from bench.decisions.workload import (
    ENDED_AT,
    FIX_INTERVAL_S,
    OPERATOR,
    RESULTS,
    ROOT,
    ZONES,
    git_info,
)
from bench.gnss.metrics import (
    baseline_metrics,
    calibrated_policy,
    check_targets,
    engine_metrics,
    reliability,
)
from bench.gnss.report import plot_reliability, print_table
from bench.gnss.scenarios import BANDS, LABEL_TRIPS, MAX_FIXES, SCENARIOS, SEED, TARGETS
from bench.gnss.truth import checks_of, draw_truth, load_zones, observe


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=5_000, help="trips per scenario and band")
    ap.add_argument("--labels", type=int, default=LABEL_TRIPS, help="labelled trips per class")
    ap.add_argument("--quick", action="store_true", help="1,000 trips per scenario and band")
    ap.add_argument("--out", type=Path, default=RESULTS / "gnss.json")
    args = ap.parse_args(argv)
    n = 1_000 if args.quick else args.trips
    t0 = time.perf_counter()
    git = git_info()
    z = load_zones()
    base = geofence.Policy(**json.loads(os.environ.get("GNSS_POLICY", "{}")))

    truths = {band: draw_truth(z, band, n, SEED + b) for b, band in enumerate(BANDS)}
    for band, tr in truths.items():
        lo_hi = BANDS[band]
        if lo_hi is None:
            assert (tr.d_fenced < 1e-6).all(), "inside truth off its box"
        else:
            assert ((tr.d_fenced > lo_hi[0]) & (tr.d_fenced < lo_hi[1])).all(), band
    print(f"truth: {n:,} trips in each of {len(BANDS)} bands", flush=True)

    results: dict[str, Any] = {}
    rel_p: dict[str, dict[str, list[np.ndarray]]] = {"uncalibrated": {}, "calibrated": {}}
    rel_in: dict[str, dict[str, list[np.ndarray]]] = {"uncalibrated": {}, "calibrated": {}}
    notes: dict[str, str] = {}
    for s, sc in enumerate(SCENARIOS):
        policies: dict[str, geofence.Policy | None] = {"uncalibrated": base}
        policies["calibrated"], notes[sc.name] = calibrated_policy(z, sc, s, base, args.labels)
        results[sc.name] = {}
        for b, (band, tr) in enumerate(truths.items()):
            trips = observe(z, tr, sc, SEED + 1000 * (s + 1) + b)
            row: dict[str, Any] = {"baselines": baseline_metrics(z, tr, trips)}
            for cond, pol in policies.items():
                if pol is None:
                    row[cond] = None
                    continue
                d = geofence.decide_arrays(z.ix, trips.batch, pol, z.ended_at)
                if b == 0 and cond == "uncalibrated":
                    # the array path decides as the device's request path does
                    idx = range(min(200, n))
                    cb = geofence.CheckBatch.from_checks(
                        z.ix, checks_of(trips.batch, idx), pol, OPERATOR
                    )
                    d2 = geofence.decide_arrays(z.ix, cb, pol, z.ended_at)
                    assert np.array_equal(d2.outcome, d.outcome[: len(idx)]), sc.name
                m = engine_metrics(tr, d)
                m["targets"] = check_targets(cond, sc.name, band, m)
                row[cond] = m
                rel_p[cond].setdefault(sc.name, []).append(np.asarray(d.p_inside))
                rel_in[cond].setdefault(sc.name, []).append(np.full(len(d), band == "inside", bool))
            results[sc.name][band] = row
        print(f"{sc.name}: decided {n * len(BANDS):,} trips; {notes[sc.name]}", flush=True)

    conds = [c for c in ("uncalibrated", "calibrated") if rel_p[c]]
    rel = {
        c: {
            sc: reliability(np.concatenate(rel_p[c][sc]), np.concatenate(rel_in[c][sc]))
            for sc in rel_p[c]
        }
        for c in conds
    }
    missed = [
        {"condition": c, "scenario": sc, "band": band, **t}
        for sc, per_band in results.items()
        for band, r in per_band.items()
        for c in conds
        if r[c] is not None
        for t in r[c]["targets"]
        if not t["met"]
    ]
    out = {
        "benchmark": "gnss",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        },
        "python": sys.version.split()[0],
        "zones": {
            "path": str(ZONES.relative_to(ROOT)),
            "zones": len(z.zs),
            "eligible_fenced": int(z.eligible.sum()),
            "checksum": z.zs.checksum,
        },
        "setup": {
            "trips_per_scenario_and_band": n,
            "bands_m": {k: v for k, v in BANDS.items()},
            "fixes_per_trip": [1, MAX_FIXES],
            "fix_interval_s": FIX_INTERVAL_S,
            "operator": OPERATOR,
            "ended_at": ENDED_AT,
            "seeds": {
                "truth": {band: SEED + b for b, band in enumerate(BANDS)},
                "errors": {
                    sc.name: {band: SEED + 1000 * (s + 1) + b for b, band in enumerate(BANDS)}
                    for s, sc in enumerate(SCENARIOS)
                },
                "labels": "truth SEED+500+10*scenario+band, errors SEED+900000+1000*scenario+band",
            },
            "label_trips_per_class": args.labels,
            "policy_uncalibrated": base.id,
        },
        "definitions": {
            "settled_pct": "outcome settle, % of the band's trips (outside bands: wrongly "
            "settled; inside: parked and settled)",
            "rejected_pct": "outcome reject (inside band: parked but rejected)",
            "coverage_r68_pct": "% of trips whose true position lies within the decision's "
            "position.accuracy_m of position.lon/lat",
            "settled_other_box_pct": "inside band: settled in a box other than the one the "
            "bike stands in",
            "baselines": "raw_point_in_polygon: the last fix in an eligible fenced box; "
            "buffer_5m: the last fix within 5 m of one",
            "reliability": "p_inside of the decision, binned, against the share of those "
            "trips truly inside an eligible box; the four bands in equal shares",
        },
        "scenarios": [sc.model() for sc in SCENARIOS],
        "targets": TARGETS,
        "calibration_notes": notes,
        "results": results,
        "targets_missed": missed,
        "reliability": rel,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=_jsonable) + "\n")
    plot_reliability(rel, args.out.with_suffix(".png"))
    print_table(results, conds)
    if "calibrated" not in conds:
        print(next(iter(notes.values())))
    print(f"targets missed: {len(missed)}; wrote {args.out} in {out['seconds']} s")
    return out
