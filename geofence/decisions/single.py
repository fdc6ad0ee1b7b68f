"""The single-check entry point :func:`decide`: the batch path's kernels on one check,
with per-thread buffers and cached kernel arguments instead of per-call arrays (the
same decision as :func:`~geofence.decisions.decide_many`, in ~35 us).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from geofence import crs as _crs
from geofence.decisions.bearings import _true_bearings_one
from geofence.decisions.fusion import _fuse, _fuse_work
from geofence.decisions.inputs import (
    _QUALITY_CODE,
    OUTCOMES,
    Q_UNKNOWN,
    SIGMA_PER_R68,
    Check,
    Policy,
)
from geofence.decisions.kernel import _decide, _work_buffers
from geofence.decisions.outputs import Decision, _reason_names
from geofence.decisions.tables import _static_args, _tables, _zone_info
from geofence.errors import CheckError
from geofence.index import ZoneIndex


def decide(
    index: ZoneIndex, check: Check, policy: Policy, now: float, check_id: str | None = None
) -> Decision:
    """Decide one trip-end check: ``settle``, ``reject`` or ``review``, with reasons.

    A pure function of its arguments; ``now`` is recorded as ``decided_at`` and
    nothing else depends on it (activity and staleness are judged at
    ``check.ended_at``).

    Raises :class:`CheckError` for evidence that cannot be decided (a trail spread
    over more than ``policy.max_trail_spread_m``); malformed checks are refused
    when the :class:`Check` is built.

    Examples
    --------
    >>> from geofence import Fix, ZoneSet, ZoneIndex
    >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
    ...   "id": "A", "properties": {"kind": "parking", "fenced": True},
    ...   "geometry": {"type": "Polygon", "coordinates": [[[113.55, 22.25],
    ...     [113.55008, 22.25], [113.55008, 22.25002], [113.55, 22.25002], [113.55, 22.25]]]}}]}
    >>> ix = ZoneIndex(ZoneSet.from_geojson(fc))
    >>> check = Check(fixes=(Fix(113.55004, 22.25001, accuracy_m=0.5),), ended_at=1.8e9)
    >>> d = decide(ix, check, Policy(), now=1.8e9)
    >>> d.outcome, d.zone["id"], d.reasons
    ('settle', 'A', ('inside_fenced_box',))
    >>> far = Check(fixes=(Fix(113.5505, 22.25, accuracy_m=3),), ended_at=1.8e9)
    >>> d = decide(ix, far, Policy(), now=1.8e9)
    >>> d.outcome, d.reasons, d.nearest[0]["zone_id"], round(d.nearest[0]["bearing_deg"])
    ('reject', ('outside_all_boxes',), 'A', 270)
    """
    t = _tables(index, policy.tolerance_m)
    fixes = check.fixes
    m = len(fixes)
    nan = math.nan
    # lon, lat, accuracy and time of each fix, then ended_at and heading: one array
    block = np.array(
        [f.lon for f in fixes]
        + [f.lat for f in fixes]
        + [nan if f.accuracy_m is None else f.accuracy_m for f in fixes]
        + [nan if f.at is None else f.at for f in fixes]
        + [check.ended_at, nan if check.heading_deg is None else check.heading_deg],
        np.float64,
    )
    lon = block[0:m].reshape(1, m)
    lat = block[m : 2 * m].reshape(1, m)
    foreign = [j for j, f in enumerate(fixes) if f.crs not in ("wgs84", "cgcs2000")]
    if foreign:  # as CheckBatch.from_checks does it: one conversion per CRS
        crs_of: dict[str, list[int]] = {}
        for j in foreign:
            crs_of.setdefault(fixes[j].crs, []).append(j)
        for name, jj in crs_of.items():
            lon[0, jj], lat[0, jj] = _crs.to_wgs84(lon[0, jj], lat[0, jj], name)
    bz = -1
    if check.beacons:
        stud = t.beacon_position
        heard = [b for b in check.beacons if b.rssi >= policy.beacon_rssi_dbm and b.id in stud]
        if heard:
            bz = stud[max(heard, key=lambda b: (b.rssi, b.id)).id]
    # the device class's row of the calibration's lookup (0), or the last row (-1)
    dc = check.device_class
    ints = np.array([m, bz], np.int64)
    dcls = np.array([-1 if dc is None else 0], np.int32)
    quality = np.array(
        [Q_UNKNOWN if f.quality is None else _QUALITY_CODE[f.quality] for f in fixes], np.int8
    )
    ended_at = block[4 * m : 4 * m + 1]
    fused = np.empty((1, 7))
    _fuse(
        lon,
        lat,
        block[2 * m : 3 * m].reshape(1, m),
        block[3 * m : 4 * m].reshape(1, m),
        ints[0:1],
        ended_at,
        quality.reshape(1, m),
        dcls,
        policy.calibration.lookup(check.operator, () if dc is None else (dc,)),
        policy.calibration.table,
        policy.default_accuracy_m,
        policy.max_fix_age_s,
        policy.max_clock_skew_s,
        policy.student_nu,
        fused,
        _single_fuse_work(m),
    )
    f_lon, f_lat, f_sigma, _, f_spread, _, _ = fused[0].tolist()
    if f_spread > policy.max_trail_spread_m:
        raise CheckError(
            f"fixes: the trail spreads over {f_spread:.0f} m "
            f"(at most {policy.max_trail_spread_m:.0f} m for a bike standing still)",
            field="fixes",
            rule="spread",
            check_index=0,
        )
    x, y = _crs.project(f_lon, f_lat)
    key = (policy.id, check.operator)
    static = t.single_args.get(key)
    if static is None:
        static = t.single_args[key] = _static_args(index, t, policy, check.operator)
    head, tail = static
    k = policy.k_nearest
    out = _single_buffers(k)
    _decide(
        index._gtuple,
        fused[0:1, 0],
        fused[0:1, 1],
        np.ascontiguousarray(x, dtype=np.float64).reshape(1),
        np.ascontiguousarray(y, dtype=np.float64).reshape(1),
        fused[0:1, 2],
        fused[0:1, 3] > 0,
        fused[0:1, 5],
        fused[0:1, 6] > 0,
        *head,
        ended_at,
        block[4 * m + 1 : 4 * m + 2],
        ints[1:2],
        *tail,
        *out,
        _single_work(),
    )
    outcome, reasons, zone, p, dist, near_pos, near_dist, near_bearing, near_dy = out
    nearest: tuple[dict[str, Any], ...] = ()
    if k and near_pos[0, 0] >= 0:
        bearings = _true_bearings_one(f_lon, f_lat, near_bearing[0], near_dy[0])
        nearest = tuple(
            {"zone_id": t.ids[q], "distance_m": round(dq, 2), "bearing_deg": round(b, 1)}
            for q, dq, b in zip(near_pos[0].tolist(), near_dist[0].tolist(), bearings, strict=True)
            if q >= 0
        )
    zs = index.zone_set
    z = int(zone[0])
    d = float(dist[0])
    p_in = min(max(float(p[0]), 0.0), 1.0)  # np.clip, as decide_arrays
    decision = object.__new__(Decision)  # the fields as the dataclass would set them
    decision.__dict__.update(
        outcome=OUTCOMES[int(outcome[0])],
        zone=None if z < 0 else dict(_zone_info(index, t, z)),
        p_inside=round(p_in, 4),
        distance_m=None if math.isnan(d) else round(d, 2),
        nearest=nearest,
        reasons=_reason_names(int(reasons[0])),
        zone_set_version=zs.version,
        policy=policy.id,
        check_id=check_id,
        decided_at=now,
        position={
            "lon": round(f_lon, 7),
            "lat": round(f_lat, 7),
            "accuracy_m": round(f_sigma * SIGMA_PER_R68, 2),
        },
    )
    return decision


_SINGLE = threading.local()  # per-thread output and work buffers of the single-check path


def _single_fuse_work(m: int) -> tuple[np.ndarray, ...]:
    work = getattr(_SINGLE, "fuse_work", None)
    if work is None or work[0].shape[0] < m:
        work = _SINGLE.fuse_work = _fuse_work(max(m, 16))
    return work


def _single_work() -> tuple[np.ndarray, ...]:
    work = getattr(_SINGLE, "work", None)
    if work is None:
        work = _SINGLE.work = _work_buffers()
    return work


def _single_buffers(k: int) -> tuple[np.ndarray, ...]:
    bufs = getattr(_SINGLE, "bufs", None)
    if bufs is None:
        bufs = _SINGLE.bufs = {}
    out = bufs.get(k)
    if out is None:
        out = bufs[k] = (
            np.empty(1, np.int8),
            np.empty(1, np.int32),
            np.empty(1, np.int64),
            np.empty(1),
            np.empty(1),
            np.empty((1, k), np.int64),
            np.empty((1, k)),
            np.empty((1, k)),
            np.empty((1, k)),  # the offsets' dy (see _true_bearings)
        )
    return out
