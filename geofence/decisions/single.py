"""The single-check entry point :func:`decide`: one compiled call per check.

:func:`_decide_one` runs the batch path's kernels on one check, in one compiled call:
the trail's fusion (:func:`~geofence.decisions.fusion._fuse`), the projection of the
fused position, the decision (:func:`~geofence.decisions.kernel._decide`) and the
nearest boxes' bearings. The Python around it builds one array of the check's
numbers, looks up the arguments cached per (index, tolerance, policy, operator) and
per thread, and turns one list of results into the :class:`Decision`.

Why one compiled call, and no numpy function on a Python float: each numpy call on
a scalar costs ~0.3-1 us (2-3x more on some machines of the same kind), and calling
a numba dispatcher types each argument anew (the index's grid tuple alone ~2.6 us);
the earlier single path paid ~20 such calls a check. The compiled function is looked
up once per cached argument set (:func:`geofence._kernels.entry_point`) and called
directly.

The projection and the bearings are the batch path's formulas (the transverse
Mercator of :mod:`geofence._tmerc`, :mod:`~geofence.decisions.bearings`), with the C
library's ``tan``, ``atanh``, ... where the batch path calls numpy's vectorized ones:
the two differ in the last bits (the projected position by < 1e-9 m), far below
every rounding of a :class:`Decision` (``p_inside`` 4 decimals, distances 2); the
tests hold the two paths to equal decisions. A fused position outside the
projection's fast domain goes through the batch path itself.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from geofence import _kernels
from geofence import _tmerc as _tm
from geofence import crs as _crs
from geofence.decisions._jit import _jit, _jit_inline, _unborrow, borrow
from geofence.decisions.bearings import _bearing_degrees_jit
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

_RAD = math.pi / 180.0

# res: status (0 decided, 1 trail too wide, 2 outside the projection's fast domain),
# the fused row (7), outcome, reasons, zone, p, distance, then k positions, k
# distances and k bearings of the nearest boxes
_R_FUSED = 1
_R_OUT = 8
_R_NEAR = 13


@_jit_inline
def _project_one(lon, lat):
    """:func:`geofence._tmerc.forward_one` compiled (the C library's functions)."""
    tau = math.tan(lat * _tm._DEG)
    tan_half = math.tan((lon - _tm.LON0) * (0.5 * _tm._DEG))
    sigma = math.sinh(math.atanh(_tm._atanh_arg_jit(tau)) * _tm._E)
    tp, c, sh = _tm._conformal_jit(tau, tan_half, sigma)
    return _tm._series_jit(math.atan2(tp, c), math.asinh(sh), tp, c, sh)


@_jit_inline
def _convergence_one(lon, lat):
    """:func:`geofence.decisions.bearings._convergence` of one point, compiled."""
    t = math.tan(lat * _RAD)
    return math.atan(t / math.sqrt(t * t + 1.0) * math.tan((lon - 114.0) * _RAD))


@_jit
def _decide_one(tref, layout, scalars, lut, inp, m, k, res):
    """Decide one check: ``inp`` holds its m fixes' lon, lat, accuracy, time and
    quality code (fix by fix), then ended_at, heading, the heard stud's box and the device-class
    row; results go to ``res`` (see ``_R_*``). The arguments cached per (index,
    tolerance, policy, operator) come borrowed (:func:`~geofence.decisions._jit.borrow`).

    The buffers are allocated here (~40 ns each): handing over arrays from Python
    costs ~100 ns each, for the memory record numba makes of every array it is given.
    """
    g, head, tail, fpar, ctab = _unborrow(tref, layout, scalars)
    lon = np.empty((1, m))
    lat = np.empty((1, m))
    acc = np.empty((1, m))
    at = np.empty((1, m))
    qual = np.empty((1, m), np.int8)
    for j in range(m):
        lon[0, j] = inp[5 * j]
        lat[0, j] = inp[5 * j + 1]
        acc[0, j] = inp[5 * j + 2]
        at[0, j] = inp[5 * j + 3]
        qual[0, j] = np.int8(inp[5 * j + 4])
    nfix = np.full(1, m, np.int64)
    ended = inp[5 * m : 5 * m + 1]
    heading = inp[5 * m + 1 : 5 * m + 2]
    bz = np.full(1, np.int64(inp[5 * m + 2]), np.int64)
    dcls = np.full(1, np.int32(inp[5 * m + 3]), np.int32)
    default_acc, max_age, max_skew, nu, max_spread = fpar
    fused = np.empty((1, 7))
    _fuse(
        lon, lat, acc, at, nfix, ended, qual, dcls, lut, ctab, default_acc, max_age,
        max_skew, nu, fused, _fuse_work(m),
    )  # fmt: skip
    for c in range(7):
        res[_R_FUSED + c] = fused[0, c]
    if fused[0, 4] > max_spread:
        res[0] = 1.0
        return
    lo = fused[0, 0]
    la = fused[0, 1]
    if not (abs(la) <= _tm.MAX_ABS_LAT and abs(lo - _tm.LON0) <= _tm.MAX_DLON):
        res[0] = 2.0
        return
    x, y = _project_one(lo, la)
    o_outcome = np.empty(1, np.int8)
    o_reasons = np.empty(1, np.int32)
    o_zone = np.empty(1, np.int64)
    o_p = np.empty(1)
    o_dist = np.empty(1)
    n_pos = np.empty((1, k), np.int64)
    n_dist = np.empty((1, k))
    n_bear = np.empty((1, k))
    n_dy = np.empty((1, k))  # the offsets' dy (see _true_bearings)
    _decide(
        g, fused[:, 0].copy(), fused[:, 1].copy(), np.full(1, x), np.full(1, y),
        fused[:, 2].copy(), fused[:, 3] > 0, fused[:, 5].copy(), fused[:, 6] > 0,
        head[0], head[1], head[2], ended, heading, bz, *tail,
        o_outcome, o_reasons, o_zone, o_p, o_dist, n_pos, n_dist, n_bear, n_dy,
        _work_buffers(),
    )  # fmt: skip
    res[_R_OUT] = o_outcome[0]
    res[_R_OUT + 1] = o_reasons[0]
    res[_R_OUT + 2] = o_zone[0]
    res[_R_OUT + 3] = o_p[0]
    res[_R_OUT + 4] = o_dist[0]
    k = n_pos.shape[1]
    gamma = _convergence_one(lo, la)
    for c in range(k):
        res[_R_NEAR + c] = n_pos[0, c]
        res[_R_NEAR + k + c] = n_dist[0, c]
        b = np.nan
        if n_pos[0, c] >= 0:
            b = _bearing_degrees_jit(math.atan2(n_bear[0, c], n_dy[0, c]), gamma)
        res[_R_NEAR + 2 * k + c] = b
    res[0] = 0.0


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
    fixes = check.fixes
    nan = math.nan
    bz = -1
    if check.beacons:
        stud = _tables(index, policy.tolerance_m).beacon_position
        heard = [b for b in check.beacons if b.rssi >= policy.beacon_rssi_dbm and b.id in stud]
        if heard:
            bz = stud[max(heard, key=lambda b: (b.rssi, b.id)).id]
    # the check's numbers in one list (see decide_values), in one pass over the fixes
    vals: list[float] = []
    foreign = False
    for f in fixes:
        a = f.accuracy_m
        at = f.at
        q = f.quality
        vals += (
            f.lon,
            f.lat,
            nan if a is None else a,
            nan if at is None else at,
            Q_UNKNOWN if q is None else _QUALITY_CODE[q],
        )
        if f.crs not in _NATIVE:
            foreign = True
    if foreign:
        _to_wgs84(fixes, vals)
    decision = decide_values(
        index,
        policy,
        now,
        vals,
        check.ended_at,
        check.heading_deg,
        operator=check.operator,
        device_class=check.device_class,
        check_id=check_id,
        beacon_zone=bz,
    )
    if decision is None:  # far from the zone's meridian: pyproj projects it, as in a batch
        from geofence.decisions.batch import decide_many

        return decide_many(index, [check], policy, now, [check_id])[0]
    return decision


def decide_values(
    index: ZoneIndex,
    policy: Policy,
    now: float,
    values: list[float],
    ended_at: float,
    heading_deg: float | None = None,
    *,
    operator: str | None = None,
    device_class: str | None = None,
    check_id: str | None = None,
    beacon_zone: int = -1,
) -> Decision | None:
    """:func:`decide` of a check given as numbers, for readers that parse a body
    straight to them (the web layer's single-check route): no :class:`Check` is built.

    ``values`` holds the fixes' numbers, five a fix: WGS-84 lon and lat, accuracy_m
    (NaN: none), at (POSIX seconds, NaN: none) and the quality's code
    (:data:`~geofence.decisions.inputs.QUALITIES` index, ``Q_UNKNOWN`` for none); the
    caller has checked them as :class:`Check` does (ranges, 1 to MAX_FIXES fixes).
    ``beacon_zone``: the position of the box whose stud was heard, -1 for none.

    None when the fused position lies outside the projection's fast domain: the
    caller then decides through :func:`decide` (or the batch path), which projects it
    with pyproj. Raises :class:`CheckError` as :func:`decide` does.
    """
    t = _tables(index, policy.tolerance_m)
    m = len(values) // 5
    nan = math.nan
    # the device class's row of the calibration's lookup (0), or the last row (-1)
    inp = np.array(
        [
            *values,
            ended_at,
            nan if heading_deg is None else heading_deg,
            beacon_zone,
            -1 if device_class is None else 0,
        ],
        np.float64,
    )
    key = (policy.id, operator)
    static = t.single_args.get(key)
    if static is None:
        head, tail = _static_args(index, t, policy, operator)
        fpar = (
            float(policy.default_accuracy_m),
            float(policy.max_fix_age_s),
            float(policy.max_clock_skew_s),
            float(policy.student_nu),
            float(policy.max_trail_spread_m),
        )
        kept = (index._gtuple, head, tail, fpar, policy.calibration.table)
        static = t.single_args[key] = (kept, *borrow(kept), [None])
    _, tref, layout, scalars, entry = static
    k = policy.k_nearest
    res = _result(k)
    args = (
        tref,
        layout,
        scalars,
        policy.calibration.lookup(operator, () if device_class is None else (device_class,)),
        inp,
        m,
        k,
        res,
    )
    ep = entry[0]
    if ep is None:
        ep = entry[0] = _kernels.entry_point(_decide_one, args)
    ep(*args)
    v = res.tolist()
    status = v[0]
    f_lon, f_lat, f_sigma, _, f_spread, _, _ = v[_R_FUSED:_R_OUT]
    if status == 1.0:
        raise CheckError(
            f"fixes: the trail spreads over {f_spread:.0f} m "
            f"(at most {policy.max_trail_spread_m:.0f} m for a bike standing still)",
            field="fixes",
            rule="spread",
            check_index=0,
        )
    if status == 2.0:
        return None
    outcome, reasons, zone, p, d = v[_R_OUT:_R_NEAR]
    nearest: tuple[dict[str, Any], ...] = ()
    if k and v[_R_NEAR] >= 0:
        ids = t.ids
        nearest = tuple(
            {"zone_id": ids[int(q)], "distance_m": round(dq, 2), "bearing_deg": round(b, 1)}
            for q, dq, b in zip(
                v[_R_NEAR : _R_NEAR + k],
                v[_R_NEAR + k : _R_NEAR + 2 * k],
                v[_R_NEAR + 2 * k :],
                strict=True,
            )
            if q >= 0
        )
    z = int(zone)
    decision = object.__new__(Decision)  # the fields as the dataclass would set them
    decision.__dict__.update(
        outcome=OUTCOMES[int(outcome)],
        zone=None if z < 0 else dict(_zone_info(index, t, z)),
        p_inside=round(min(max(p, 0.0), 1.0), 4),  # np.clip, as decide_arrays
        distance_m=None if d != d else round(d, 2),
        nearest=nearest,
        reasons=_reason_names(int(reasons)),
        zone_set_version=index.zone_set.version,
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


_NATIVE = ("wgs84", "cgcs2000")  # the fixes' CRSs that need no conversion


def _to_wgs84(fixes: tuple[Any, ...], vals: list[float]) -> None:
    """The fixes in other CRSs converted in ``vals`` (five numbers a fix), as
    CheckBatch.from_checks does (one conversion per CRS)."""
    crs_of: dict[str, list[int]] = {}
    for j, f in enumerate(fixes):
        if f.crs not in _NATIVE:
            crs_of.setdefault(f.crs, []).append(j)
    for name, jj in crs_of.items():
        lon, lat = _crs.to_wgs84(
            np.array([vals[5 * j] for j in jj]), np.array([vals[5 * j + 1] for j in jj]), name
        )
        for j, x, y in zip(jj, lon.tolist(), lat.tolist(), strict=True):
            vals[5 * j] = x
            vals[5 * j + 1] = y


_SINGLE = threading.local()  # per-thread result arrays of the single-check path


def _result(k: int) -> np.ndarray:
    """This thread's result array of :func:`_decide_one` for ``k`` nearest boxes."""
    res = getattr(_SINGLE, "res", None)
    if res is None:
        res = _SINGLE.res = {}
    out = res.get(k)
    if out is None:
        out = res[k] = np.empty(_R_NEAR + 3 * k)
    return out
