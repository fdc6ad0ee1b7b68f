"""What a set of outcomes is worth against the truth: the confusion matrix, wrongly and
correctly settled shares, reason breakdowns, examples of doubtful decisions, the
calibration of rejections, the probes; and the two baselines (raw point-in-polygon on
the last fix, a fixed 5 m buffer) decided on the same trips.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import shapely

import geofence
from bench.decisions.workload import (
    FIX_INTERVAL_S,
    OPERATOR,
    OUTCOMES,
    REJECT,
    REVIEW,
    SETTLE,
    Truth,
    reasons_text,
)
from geofence import crs as gcrs
from geofence.decisions import SIGMA_PER_R68


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
