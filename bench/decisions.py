"""Decision quality benchmark: settle / reject / review against ground truth.

Draws seeded trip-end workloads with ground truth (:func:`zones.workload.make_trip_ends`,
the bundled 18,300-zone Zhuhai set) for consumer GPS (3-10 m) and high-precision
(0.3-1 m) fixes, decides them with the default :class:`geofence.Policy` through the
compiled batch path (:func:`geofence.decide_arrays`) and reports, per fix class:

* a confusion matrix of outcome against truth class. The workload's ``inside`` class
  is split into boxes *eligible* for the operator at ``ended_at`` (open to it and
  active: these should settle) and boxes closed to it or inactive (a rejection is
  the right answer there); ``beside`` is split at the policy's tolerance;
* wrongly settled: ``settle`` although the true position is farther than
  ``tolerance_m`` from every fenced box (true distance in EPSG:4547 with shapely), as
  a share of all trips and of the truly-outside trips; correctly settled (share of
  eligible truly-inside trips that settle); review share; reject share of the
  truly-outside trips; reason-code breakdowns and examples of doubtful decisions;
* the same trips decided by two baselines: a raw point-in-polygon on the last fix
  (settle iff it lies in an eligible fenced box) and a fixed 5 m buffer (settle iff
  the last fix is within 5 m of an eligible fenced box);
* a sweep of the policy's thresholds (``settle_p`` x ``tolerance_m`` x
  ``fix_correlation``) on the same trips, plotted to ``bench/results/decisions.png``;
* throughput on one core: ``decide_arrays`` checks/s (median of 5 runs), the
  single-check ``geofence.decide`` latency (median over 2,000 calls) and
  ``decide_many`` checks/s.

Writes ``bench/results/decisions.json`` and prints a readable summary.

    python -m bench.decisions [--trips 200000] [--quick]
    python -m bench.decisions --gnss [...]   # the GNSS scenarios: bench/gnss.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/ holds http.py, which would shadow the standard library's `http` package:
# keep this folder off the import path (it is on it when run as `python bench/decisions.py`)
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402

import geofence  # noqa: E402
from geofence import crs as gcrs  # noqa: E402
from geofence.decisions import SIGMA_PER_R68  # noqa: E402
from zones.districts import service_area  # noqa: E402
from zones.workload import make_trip_ends  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENGINE_SRC = ROOT / "geofence" / "decisions"  # the engine: the package's modules
ENGINE_FILES = sorted(p.name for p in ENGINE_SRC.glob("*.py"))


def engine_sha(read: Any) -> str:
    """SHA-256 (16 hex digits) over the engine's modules, ``read(name)`` each's bytes."""
    h = hashlib.sha256()
    for name in ENGINE_FILES:
        h.update(name.encode() + b"\0" + hashlib.sha256(read(name)).digest())
    return h.hexdigest()[:16]


ENGINE_SHA_AT_IMPORT = engine_sha(lambda name: (ENGINE_SRC / name).read_bytes())
ZONES = ROOT / "zones" / "data" / "zhuhai.geojson"
ENDED_AT = "2026-11-26T12:00:00+08:00"
OPERATOR = "meituan"
SEEDS = {"consumer": 20261126_1, "precise": 20261126_2}
FIXES_PER_TRIP = 5
FIX_INTERVAL_S = 2.0  # fixes 2 s apart, the last one at ended_at
FIX_CLASSES = ("consumer", "precise")
OUTCOMES = geofence.OUTCOMES
SETTLE, REJECT, REVIEW = (OUTCOMES.index(o) for o in ("settle", "reject", "review"))
# rows of the confusion matrices
ROWS = (
    "inside_eligible",
    "inside_closed",
    "beside_within_tol",
    "beside_beyond_tol",
    "near",
    "far",
    "inside_unfenced",
    "no_parking",
)
TARGET_WRONG_PCT = 0.5
TARGET_CORRECT_PRECISE_PCT = 98.0
SWEEP = {
    "settle_p": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
    "tolerance_m": [0.0, 0.15, 0.3, 0.5],
    "fix_correlation": [0.0, 0.5, 1.0],
}


# --------------------------------------------------------------------------- setup
def reasons_text(bits: int) -> str:
    names = [r for b, r in enumerate(geofence.REASONS) if bits >> b & 1]
    return "+".join(names) if names else "(none)"


def git_info() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": run("rev-parse", "HEAD"),
        "geofence_uncommitted": run("status", "--porcelain", "--", "geofence").splitlines(),
        "geofence_decisions_py_sha256": ENGINE_SHA_AT_IMPORT,
        "geofence_decisions_py_committed_sha256": engine_sha(
            lambda name: (
                subprocess.run(
                    ["git", "show", f"HEAD:geofence/decisions/{name}"],
                    cwd=ROOT,
                    capture_output=True,
                ).stdout
            )
        ),
    }


class Truth:
    """Ground truth of one workload, judged for ``operator`` at ``ended_at``."""

    def __init__(self, zs: geofence.ZoneSet, w: Any, eligible: np.ndarray, fenced_tree: Any):
        self.cls = w.truth
        self.n = len(w)
        self.x, self.y = (
            np.asarray(a, dtype=np.float64) for a in gcrs.project(w.true_lon, w.true_lat)
        )
        pts = shapely.points(self.x, self.y)
        # true distance to the nearest fenced box (any operator, any time): 0 inside
        _, dist = fenced_tree.query_nearest(pts, return_distance=True, all_matches=False)
        self.d_fenced = dist
        pos = zs.position
        self.zone = np.array([pos.get(z, -1) if z else -1 for z in w.truth_zone.tolist()])
        self.inside = self.cls == "inside"
        self.should_settle = self.inside & eligible[np.maximum(self.zone, 0)] & (self.zone >= 0)
        self.inside_closed = self.inside & ~self.should_settle
        self.pts = pts
        self.acc = w.accuracy_m[:, -1]

    def rows(self, tol: float) -> dict[str, np.ndarray]:
        c = self.cls
        return {
            "inside_eligible": self.should_settle,
            "inside_closed": self.inside_closed,
            "beside_within_tol": (c == "beside") & (self.d_fenced <= tol),
            "beside_beyond_tol": (c == "beside") & (self.d_fenced > tol),
            "near": c == "near",
            "far": c == "far",
            "inside_unfenced": c == "inside_unfenced",
            "no_parking": c == "no_parking",
        }

    def outside(self, tol: float) -> np.ndarray:
        """Truly outside every fenced box by more than ``tol``."""
        return ~self.inside & (self.d_fenced > tol)


def batch_of(w: Any, ended_at: float, operator: str) -> geofence.CheckBatch:
    n, m = w.fix_lon.shape
    at = ended_at - FIX_INTERVAL_S * (m - 1 - np.arange(m, dtype=np.float64))
    return geofence.CheckBatch(
        lon=np.ascontiguousarray(w.fix_lon),
        lat=np.ascontiguousarray(w.fix_lat),
        accuracy_m=np.ascontiguousarray(w.accuracy_m),
        at=np.ascontiguousarray(np.broadcast_to(at, (n, m))),
        n_fixes=np.full(n, m, np.int64),
        ended_at=np.full(n, ended_at),
        heading_deg=np.full(n, np.nan),  # heading not sent: heading rules cannot fire
        beacon_zone=np.full(n, -1, np.int64),  # no road studs heard
        operator=operator,
    )


# --------------------------------------------------------------------------- metrics
def pct(a: int | float, b: int | float) -> float:
    return round(100.0 * a / b, 4) if b else float("nan")


def evaluate(
    truth: Truth,
    zs: geofence.ZoneSet,
    outcome: np.ndarray,
    zone: np.ndarray,
    tol: float,
    ref_tol: float,
    *,
    matrix: bool = True,
) -> dict[str, Any]:
    """Metrics of one set of outcomes (engine or baseline) against the truth."""
    n = truth.n
    settle = outcome == SETTLE
    review = outcome == REVIEW
    reject = outcome == REJECT
    outside = truth.outside(tol)
    should = truth.should_settle
    wrong = settle & outside
    # stricter: settled in a box the bike is not in, by more than the tolerance
    d_settled = np.full(n, np.nan)
    s_idx = np.flatnonzero(settle & (zone >= 0))
    d_settled[s_idx] = shapely.distance(zs.geometry_m[zone[s_idx]], truth.pts[s_idx])
    wrong_box = settle & ~(d_settled <= tol)
    out: dict[str, Any] = {
        "trips": n,
        "truly_outside": int(outside.sum()),
        "should_settle": int(should.sum()),
        "wrongly_settled": int(wrong.sum()),
        "wrongly_settled_pct_of_trips": pct(wrong.sum(), n),
        "wrongly_settled_pct_of_outside": pct(wrong.sum(), outside.sum()),
        "correctly_settled_pct": pct((settle & should).sum(), should.sum()),
        "review_pct": pct(review.sum(), n),
        "review_pct_of_should_settle": pct((review & should).sum(), should.sum()),
        "review_pct_of_outside": pct((review & outside).sum(), outside.sum()),
        "reject_pct_of_outside": pct((reject & outside).sum(), outside.sum()),
        "reject_pct_of_should_settle": pct((reject & should).sum(), should.sum()),
        "truly_inside_pct_of_rejects": pct((reject & truth.inside).sum(), reject.sum()),
        "settled_pct_of_trips": pct(settle.sum(), n),
        "settled_outside_ref_tol_pct_of_trips": pct((settle & truth.outside(ref_tol)).sum(), n),
        "settled_not_in_that_box_pct_of_trips": pct(wrong_box.sum(), n),
        "inside_closed_settled": int((settle & truth.inside_closed).sum()),
        "inside_closed_rejected_pct": pct(
            (reject & truth.inside_closed).sum(), truth.inside_closed.sum()
        ),
    }
    if matrix:
        rows = truth.rows(tol)
        out["matrix"] = {
            r: {o: int((m & (outcome == k)).sum()) for k, o in enumerate(OUTCOMES)}
            for r, m in rows.items()
        }
        out["matrix_by_workload_class"] = {
            c: {o: int(((truth.cls == c) & (outcome == k)).sum()) for k, o in enumerate(OUTCOMES)}
            for c in np.unique(truth.cls).tolist()
        }
    return out


def reason_breakdown(
    truth: Truth, d: geofence.DecisionBatch, tol: float, top: int = 6
) -> dict[str, dict[str, list[tuple[str, int]]]]:
    out: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for r, m in truth.rows(tol).items():
        out[r] = {}
        for k, o in enumerate(OUTCOMES):
            sel = m & (d.outcome == k)
            if not sel.any():
                continue
            cnt = Counter(d.reasons[sel].tolist())
            out[r][o] = [(reasons_text(b), c) for b, c in cnt.most_common(top)]
    return out


def examples(
    truth: Truth, zs: geofence.ZoneSet, d: geofence.DecisionBatch, tol: float, k: int = 3
) -> dict[str, list[dict[str, Any]]]:
    """A few decisions of each doubtful kind, with their evidence and reason codes."""
    rows = truth.rows(tol)
    o = d.outcome
    fx, fy = (np.asarray(a, dtype=np.float64) for a in gcrs.project(d.lon, d.lat))
    fused_err = np.hypot(fx - truth.x, fy - truth.y)
    kinds = {
        "wrongly_settled": (o == SETTLE) & truth.outside(tol),
        "should_settle_but_rejected": truth.should_settle & (o == REJECT),
        "should_settle_but_review": truth.should_settle & (o == REVIEW),
        "inside_closed_not_rejected": truth.inside_closed & (o != REJECT),
        "inside_unfenced_or_no_parking_review": (rows["inside_unfenced"] | rows["no_parking"])
        & (o == REVIEW),
        "far_or_near_review": (rows["far"] | rows["near"]) & (o == REVIEW),
        "settled_no_reason_or_reject_no_reason": d.reasons == 0,
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for name, sel in kinds.items():
        idx = np.flatnonzero(sel)[:k]
        out[name] = [
            {
                "trip": int(i),
                "truth": str(truth.cls[i]),
                "truth_zone": str(zs.ids[truth.zone[i]]) if truth.zone[i] >= 0 else None,
                "true_dist_to_fenced_m": round(float(truth.d_fenced[i]), 3),
                "accuracy_m": round(float(truth.acc[i]), 2),
                "fused_accuracy_m": round(float(d.accuracy_m[i]), 2),
                "fused_error_m": round(float(fused_err[i]), 2),
                "outcome": OUTCOMES[int(o[i])],
                "reasons": reasons_text(int(d.reasons[i])),
                "zone": str(zs.ids[d.zone[i]]) if d.zone[i] >= 0 else None,
                "p_inside": round(float(d.p_inside[i]), 4),
                "distance_m": None
                if np.isnan(d.distance_m[i])
                else round(float(d.distance_m[i]), 2),
            }
            for i in idx
        ]
        out[name + "_count"] = int(sel.sum())  # type: ignore[assignment]
    return out


def reject_calibration(truth: Truth, d: geofence.DecisionBatch) -> dict[str, Any]:
    """How often a rejection hit a bike that was truly in a box, by p_inside."""
    rej = d.outcome == REJECT
    bins = [(0.0, 1e-6), (1e-6, 0.01), (0.01, 0.03), (0.03, 1.0)]
    out: dict[str, Any] = {}
    for lo, hi in bins:
        sel = rej & (d.p_inside > lo) & (d.p_inside <= hi) if lo else rej & (d.p_inside <= hi)
        out[f"p_in_({lo:g},{hi:g}]"] = {
            "rejects": int(sel.sum()),
            "truly_inside_pct": pct((sel & truth.inside).sum(), sel.sum()),
            "truly_inside_eligible_pct": pct((sel & truth.should_settle).sum(), sel.sum()),
        }
    bad = truth.should_settle & rej
    sig = d.accuracy_m / SIGMA_PER_R68
    out["should_settle_rejected"] = int(bad.sum())
    out["of_which_fused_position_inside_a_box"] = int((bad & (d.distance_m <= 0)).sum())
    out["of_which_fused_within_1_sigma_of_box"] = int((bad & (d.distance_m <= sig)).sum())
    out["of_which_fused_within_2_sigma_of_box"] = int((bad & (d.distance_m <= 2 * sig)).sum())
    return out


def probes(
    ix: geofence.ZoneIndex, zs: geofence.ZoneSet, eligible: np.ndarray, ended_at: float
) -> list[dict[str, Any]]:
    """Five identical fixes at the centre of an eligible box: the smallest and a median one."""
    area = np.where(eligible, zs.area_m2, np.inf)
    order = np.argsort(area[eligible])
    boxes = {
        "smallest eligible box": int(np.argmin(area)),
        "median eligible box": int(np.flatnonzero(eligible)[order[len(order) // 2]]),
    }
    out = []
    for label, z in boxes.items():
        c = shapely.centroid(zs.geometry[z])
        for acc in (1.0, 3.0, 5.0, 8.0, 10.0, 14.0):
            fixes = tuple(
                geofence.Fix(c.x, c.y, acc, ended_at - FIX_INTERVAL_S * (4 - j)) for j in range(5)
            )
            check = geofence.Check(fixes=fixes, ended_at=ended_at, operator=OPERATOR)
            dd = geofence.decide(ix, check, geofence.Policy(), ended_at)
            out.append(
                {
                    "box": label,
                    "zone": str(zs.ids[z]),
                    "area_m2": round(float(zs.area_m2[z]), 2),
                    "accuracy_m": acc,
                    "outcome": dd.outcome,
                    "reasons": list(dd.reasons),
                    "p_inside": dd.p_inside,
                    "distance_m": dd.distance_m,
                    "nearest": [dict(n) for n in dd.nearest[:1]],
                }
            )
    return out


# --------------------------------------------------------------------------- baselines
def baselines(
    ix: geofence.ZoneIndex, w: Any, eligible: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    lon = np.ascontiguousarray(w.fix_lon[:, -1])
    lat = np.ascontiguousarray(w.fix_lat[:, -1])
    pos = ix.locate(lon, lat)
    pip_settle = (pos >= 0) & eligible[np.maximum(pos, 0)]
    near_pos, _ = ix.nearest(lon, lat, k=1, max_distance_m=5.0, mask=eligible)
    buf_settle = near_pos[:, 0] >= 0
    return {
        "raw_point_in_polygon": (
            np.where(pip_settle, SETTLE, REJECT).astype(np.int8),
            np.where(pip_settle, pos, -1),
        ),
        "buffer_5m": (
            np.where(buf_settle, SETTLE, REJECT).astype(np.int8),
            near_pos[:, 0],
        ),
    }


# --------------------------------------------------------------------------- throughput
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
    for w in works.values():
        m = w.fix_lon.shape[1]
        for i in range(n_single // len(works)):
            fixes = tuple(
                geofence.Fix(
                    lon=float(w.fix_lon[i, j]),
                    lat=float(w.fix_lat[i, j]),
                    accuracy_m=float(w.accuracy_m[i, j]),
                    at=ended_at - FIX_INTERVAL_S * (m - 1 - j),
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


# --------------------------------------------------------------------------- plot
def plot(sweep: list[dict[str, Any]], default: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("wrongly_settled_pct_of_trips", "wrongly settled, % of all trips", TARGET_WRONG_PCT),
        ("correctly_settled_pct", "correctly settled, % of eligible inside", None),
        ("review_pct", "review, % of all trips", None),
    ]
    tols = SWEEP["tolerance_m"]
    rhos = SWEEP["fix_correlation"]
    colors = dict(zip(tols, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=True))
    styles = dict(zip(rhos, [":", "-", "--"], strict=True))
    fig, axes = plt.subplots(3, 2, figsize=(12, 11), sharex=True)
    for col, fc in enumerate(FIX_CLASSES):
        for row, (key, label, target) in enumerate(metrics):
            ax = axes[row, col]
            for tol in tols:
                for rho in rhos:
                    pts = sorted(
                        (r["settle_p"], r[fc][key])
                        for r in sweep
                        if r["tolerance_m"] == tol and r["fix_correlation"] == rho
                    )
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        color=colors[tol],
                        linestyle=styles[rho],
                        marker=".",
                        label=f"tol {tol} m, rho {rho}" if (row, col) == (0, 0) else None,
                    )
            if target is not None:
                ax.axhline(target, color="k", lw=0.8, ls="-.", alpha=0.7)
            if key == "correctly_settled_pct" and fc == "precise":
                ax.axhline(TARGET_CORRECT_PRECISE_PCT, color="k", lw=0.8, ls="-.", alpha=0.7)
            ax.plot(
                default["settle_p"],
                default[fc][key],
                marker="*",
                ms=14,
                color="k",
                ls="none",
                label="default policy" if (row, col) == (0, 0) else None,
            )
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            if row == 0:
                acc = "3-10 m" if fc == "consumer" else "0.3-1 m"
                ax.set_title(f"{fc} fixes ({acc}, {FIXES_PER_TRIP} per trip)")
            if row == 2:
                ax.set_xlabel("settle_p")
    fig.legend(loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Decision quality against the policy's thresholds (same trips; dash-dot: targets)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def print_matrix(title: str, m: dict[str, dict[str, int]], cols: tuple[str, ...]) -> None:
    print(f"  {title}")
    print("    " + f"{'truth':<20}" + "".join(f"{c:>10}" for c in cols) + f"{'total':>10}")
    for r, row in m.items():
        tot = sum(row.values())
        if not tot:
            continue
        cells = "".join(f"{100 * row[c] / tot:>9.2f}%" for c in cols)
        print(f"    {r:<20}{cells}{tot:>10,}")


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
        batches[fc] = batch_of(w, ended_at, OPERATOR)
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
            for rho in SWEEP["fix_correlation"]:
                for sp in SWEEP["settle_p"]:
                    pol = geofence.Policy(tolerance_m=tol, settle_p=sp, fix_correlation=rho)
                    row: dict[str, Any] = {
                        "settle_p": sp,
                        "tolerance_m": tol,
                        "fix_correlation": rho,
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
        "fix_correlation": default.fix_correlation,
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
            "fix_correlation": r["fix_correlation"],
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
            "engine_source_changed_during_run": hashlib.sha256(ENGINE_SRC.read_bytes()).hexdigest()[
                :16
            ]
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
                f"  {r['settle_p']:>8}{r['tolerance_m']:>6}{r['fix_correlation']:>5}  "
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


if __name__ == "__main__":
    main()
