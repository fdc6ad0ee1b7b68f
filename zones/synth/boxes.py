"""Parking boxes: candidate runs along the kerbs of each anchor's street grid, then
placement on land, clear of no-parking areas and of each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from zones.synth.geometry import _box_shapes, _greedy, _place
from zones.synth.land import _Anchors, _Land
from zones.synth.params import BOX_GAP_M, NP_GAP_M, Progress


@dataclass
class _Boxes:
    geom: np.ndarray  # metric polygons
    cx: np.ndarray
    cy: np.ndarray
    length: np.ndarray
    width: np.ndarray
    angle: np.ndarray  # long-axis direction, radians from +x (metric grid)
    shape: np.ndarray  # 0 rectangle, 1.. non-rectangular
    anchor: np.ndarray
    district: np.ndarray
    rings: np.ndarray  # object array of (k, 2) metric rings


def _candidate_boxes(
    rng: np.random.Generator, anc: _Anchors, n_boxes: int, odd_share: float
) -> _Boxes:
    """About ``n_boxes`` candidate boxes, in runs along the kerbs of each anchor's grid."""
    if n_boxes <= 0:
        e = np.zeros(0)
        return _Boxes(
            np.empty(0, dtype=object), e, e, e, e, e, np.zeros(0, dtype=int),
            np.zeros(0, dtype=int), np.zeros(0, dtype="<U2"), np.empty(0, dtype=object),
        )  # fmt: skip
    run_len = np.minimum(rng.geometric(0.45, size=n_boxes), 6)  # boxes per run
    cum = np.cumsum(run_len)
    n_runs = int(np.searchsorted(cum, n_boxes)) + 1
    run_len = run_len[:n_runs]
    a = rng.choice(len(anc.name), n_runs, p=anc.weight / anc.weight.sum())
    # run origin: Gaussian around the anchor, snapped to a kerb of the local grid
    px = rng.normal(0.0, 1.0, n_runs) * anc.radius[a]
    py = rng.normal(0.0, 1.0, n_runs) * anc.radius[a]
    c, s = np.cos(anc.theta[a]), np.sin(anc.theta[a])
    u = px * c + py * s
    v = -px * s + py * c
    along_u = rng.random(n_runs) < 0.5  # street runs along the grid's u axis (v = const)
    side = np.where(rng.random(n_runs) < 0.5, -1.0, 1.0)
    width = np.clip(rng.normal(2.0, 0.3, n_runs), 1.55, 2.95)
    setback = rng.uniform(0.3, 2.5, n_runs)
    perp = anc.half_street[a] + setback + width / 2
    v_line = np.round((v - anc.ov[a]) / anc.sv[a]) * anc.sv[a] + anc.ov[a]
    u_line = np.round((u - anc.ou[a]) / anc.su[a]) * anc.su[a] + anc.ou[a]
    u0 = np.where(along_u, u, u_line + side * perp)
    v0 = np.where(along_u, v_line + side * perp, v)
    run_angle = anc.theta[a] + np.where(along_u, 0.0, math.pi / 2)
    length = np.clip(rng.lognormal(math.log(7.5), 0.38, n_runs), 4.2, 19.5)
    same = rng.random(n_runs) < 0.8  # most runs repeat one box size
    gap = rng.uniform(0.8, 3.0, n_runs)

    # expand runs to boxes
    n = int(run_len.sum())
    r = np.repeat(np.arange(n_runs), run_len)
    blen = np.where(same[r], length[r], np.clip(rng.lognormal(math.log(7.5), 0.38, n), 4.2, 19.5))
    # along-street centre of box k of a run: the run's previous boxes and gaps, then half
    step = blen + gap[r]
    before = np.cumsum(step) - step
    t = before - before[np.cumsum(run_len) - run_len][r] + blen / 2
    direction = np.where(rng.random(n_runs) < 0.5, -1.0, 1.0)[r]
    bu = np.where(along_u[r], u0[r] + direction * t, u0[r])
    bv = np.where(along_u[r], v0[r], v0[r] + direction * t)
    ca, sa = np.cos(anc.theta[a[r]]), np.sin(anc.theta[a[r]])
    cx = anc.x[a[r]] + bu * ca - bv * sa
    cy = anc.y[a[r]] + bu * sa + bv * ca
    bwid = width[r]
    angle = run_angle[r]
    # the kerb-side edge (local -v) faces the street: flip boxes on the far side
    angle = np.where(side[r] > 0, angle, angle + math.pi)
    angle = np.where(along_u[r], angle, angle + math.pi)

    code, groups = _box_shapes(rng, n, blen, bwid, odd_share)
    rings = np.empty(n, dtype=object)
    geom = np.empty(n, dtype=object)
    for idx, lu, lv in groups:
        if len(idx):
            rr = _place(lu, lv, cx[idx], cy[idx], angle[idx])
            geom[idx] = shapely.polygons(rr)
            rings[idx] = list(rr)
    return _Boxes(
        geom=geom,
        cx=cx,
        cy=cy,
        length=blen,
        width=bwid,
        angle=angle,
        shape=code,
        anchor=a[r],
        district=np.full(n, "", dtype="<U2"),
        rings=rings,
    )


def _take(b: _Boxes, idx: Any) -> _Boxes:
    return _Boxes(**{f.name: getattr(b, f.name)[idx] for f in fields(_Boxes)})


def _concat(a: _Boxes, b: _Boxes) -> _Boxes:
    return _Boxes(
        **{f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in fields(_Boxes)}
    )


def _place_boxes(
    rng: np.random.Generator,
    land: _Land,
    anc: _Anchors,
    no_parking: list[shapely.Geometry],
    n_target: int,
    step: Progress,
) -> _Boxes:
    np_tree = STRtree(np.array(no_parking, dtype=object))
    kept = _candidate_boxes(rng, anc, 0, 0.05)
    for _ in range(12):
        need = n_target - len(kept.geom)
        if need <= 0:
            break
        cand = _candidate_boxes(rng, anc, int(need * 1.5) + 64, 0.05)
        label = land.label(cand.cx, cand.cy)
        ok = (label != "") & shapely.is_valid(cand.geom)
        for code in land.code:
            m = np.flatnonzero(label == code)
            ok[m] &= shapely.contains(land.inner[code], cand.geom[m])
        hit, _ = np_tree.query(cand.geom, predicate="dwithin", distance=NP_GAP_M)
        ok[hit] = False
        cand = _take(cand, ok)
        cand.district = label[ok]
        both = _concat(kept, cand)
        kept = _take(both, _greedy(both.geom, len(kept.geom), BOX_GAP_M))
        step("parking boxes", min(len(kept.geom) / max(n_target, 1), 1.0))
    if len(kept.geom) < n_target:
        raise RuntimeError(f"could only place {len(kept.geom)} of {n_target} parking boxes")
    return _take(kept, slice(0, n_target))
