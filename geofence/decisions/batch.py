"""The batch entry points: :func:`decide_arrays` (checks as arrays, the compiled path
behind every decision) and :func:`decide_many` (:class:`Check` objects, grouped by
operator).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geofence import crs as _crs
from geofence.decisions.bearings import _true_bearings
from geofence.decisions.fusion import _fuse, _fuse_work
from geofence.decisions.inputs import Q_UNKNOWN, SIGMA_PER_R68, Check, CheckBatch, Policy
from geofence.decisions.kernel import _decide, _work_buffers
from geofence.decisions.order import _gather_inputs, _scatter_outputs, _spatial_order
from geofence.decisions.outputs import Decision, DecisionBatch
from geofence.decisions.tables import _static_args, _tables
from geofence.errors import CheckError
from geofence.index import ZoneIndex


def decide_arrays(index: ZoneIndex, batch: CheckBatch, policy: Policy, now: float) -> DecisionBatch:
    """Decide a batch of checks given as arrays; the compiled path behind every decision.

    Raises :class:`CheckError` when a check's trail spreads over more than
    ``policy.max_trail_spread_m`` (its ``check_index`` is the check's number).
    """
    n = len(batch)
    t = _tables(index, policy.tolerance_m)
    fused = np.empty((n, 7))
    quality = batch.quality
    if quality is None:
        quality = np.full(batch.lon.shape, Q_UNKNOWN, np.int8)
    device_class = batch.device_class
    if device_class is None:
        device_class = np.full(n, -1, np.int32)
    cal = policy.calibration
    _fuse(
        batch.lon,
        batch.lat,
        batch.accuracy_m,
        batch.at,
        batch.n_fixes,
        batch.ended_at,
        quality,
        device_class,
        cal.lookup(batch.operator, batch.device_classes),
        cal.table,
        policy.default_accuracy_m,
        policy.max_fix_age_s,
        policy.max_clock_skew_s,
        policy.student_nu,
        fused,
        _fuse_work(batch.lon.shape[1]),
    )
    too_wide = np.flatnonzero(fused[:, 4] > policy.max_trail_spread_m)
    if len(too_wide):
        i = int(too_wide[0])
        raise CheckError(
            f"fixes: the trail spreads over {fused[i, 4]:.0f} m "
            f"(at most {policy.max_trail_spread_m:.0f} m for a bike standing still)",
            field="fixes",
            rule="spread",
            check_index=i,
        )
    lon = np.ascontiguousarray(fused[:, 0])
    lat = np.ascontiguousarray(fused[:, 1])
    # one fix: the scalar path (Python floats) is ~12 us faster than a one-element array
    x, y = _crs.project(float(lon[0]), float(lat[0])) if n == 1 else _crs.project(lon, lat)
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(n)
    y = np.ascontiguousarray(y, dtype=np.float64).reshape(n)
    k = policy.k_nearest
    outcome = np.empty(n, np.int8)
    reasons = np.empty(n, np.int32)
    zone = np.empty(n, np.int64)
    p = np.empty(n)
    dist = np.empty(n)
    near_pos = np.empty((n, k), np.int64)
    near_dist = np.empty((n, k))
    near_bearing = np.empty((n, k))
    outs: tuple[np.ndarray, ...] = (
        outcome,
        reasons,
        zone,
        p,
        dist,
        near_pos,
        near_dist,
        near_bearing,
    )
    results = outs
    ins: tuple[np.ndarray, ...]
    order = _spatial_order(x, y)
    if order is None:
        ins = (
            lon,
            lat,
            x,
            y,
            np.ascontiguousarray(fused[:, 2]),
            fused[:, 3] > 0,
            np.ascontiguousarray(fused[:, 5]),
            fused[:, 6] > 0,
            batch.ended_at,
            batch.heading_deg,
            batch.beacon_zone,
        )
    else:  # the kernel reads and writes the checks in that order
        kinds: tuple[Any, ...] = (np.float64,) * 5 + (np.bool_, np.float64, np.bool_)
        kinds += (batch.ended_at.dtype, batch.heading_deg.dtype, batch.beacon_zone.dtype)
        ins = tuple(np.empty(n, k) for k in kinds)
        _gather_inputs(
            order, fused, x, y, batch.ended_at, batch.heading_deg, batch.beacon_zone, ins
        )
        outs = tuple(np.empty_like(a) for a in outs)
    head, tail = _static_args(index, t, policy, batch.operator)
    near_dy = np.empty((n, k))
    _decide(index._gtuple, *ins[:8], *head, *ins[8:], *tail, *outs, near_dy, _work_buffers())
    if k:
        _true_bearings(ins[0], ins[1], outs[7], near_dy, outs[5])
    if order is not None:
        _scatter_outputs(order, outs, results)
    return DecisionBatch(
        index=index,
        policy=policy,
        now=now,
        outcome=outcome,
        reasons=reasons,
        zone=zone,
        p_inside=np.clip(p, 0.0, 1.0),
        distance_m=dist,
        nearest_pos=near_pos,
        nearest_dist=near_dist,
        nearest_bearing=near_bearing,
        lon=lon,
        lat=lat,
        accuracy_m=fused[:, 2] * SIGMA_PER_R68,
    )


def decide_many(
    index: ZoneIndex,
    checks: Sequence[Check],
    policy: Policy,
    now: float,
    check_ids: Sequence[str | None] | None = None,
) -> list[Decision]:
    """Decide many checks at once (grouped by operator, compiled inside).

    Equal, check by check, to :func:`decide`.
    """
    if check_ids is not None and len(check_ids) != len(checks):
        raise ValueError(f"{len(check_ids)} check ids for {len(checks)} checks")
    out: list[Decision | None] = [None] * len(checks)
    groups: dict[str | None, list[int]] = {}
    for i, c in enumerate(checks):
        groups.setdefault(c.operator, []).append(i)
    for operator, members in groups.items():
        batch = CheckBatch.from_checks(index, [checks[i] for i in members], policy, operator)
        try:
            decided = decide_arrays(index, batch, policy, now)
        except CheckError as exc:  # number the check in the caller's list
            if exc.check_index is not None:
                exc.check_index = members[exc.check_index]
            raise
        for j, i in enumerate(members):
            out[i] = decided.decision(j, None if check_ids is None else check_ids[i])
    return [d for d in out if d is not None]
