"""The compiled decision of fused checks: :func:`_decide`, and its work buffers.

For each check: the service area, the box the fused position lies in, ``p_inside``
over the candidate fenced boxes, the rules that forbid settling (activity, operator,
heading), a road stud heard, the outcome and reason bits, and the nearest boxes where
a rejected check could settle. Compiled without numba's runtime: every array it
writes comes from the caller (:func:`_work_buffers`).
"""

from __future__ import annotations

import math

import numpy as np

from geofence import _kernels
from geofence.decisions._jit import _jit, _jit_borrowed, _jit_inline, _zone_closest
from geofence.decisions.grid import (
    _CELL_BUF,
    _LIST_K,
    _MEMO,
    _SERVICE_EDGE_FRAC,
    _SVC_EDGE,
    _SVC_IN,
    _SVC_OUT,
    _grid_nearest,
    _list_nearest,
)
from geofence.decisions.inputs import (
    R_ACCURACY,
    R_BEACON,
    R_HEADING,
    R_INACTIVE,
    R_INSIDE_FENCED,
    R_INSIDE_UNFENCED,
    R_NEAR_EDGE,
    R_NO_PARKING,
    R_OPERATOR,
    R_OUTSIDE_ALL,
    R_SERVICE,
    R_STALE,
    REJECT,
    REVIEW,
    SETTLE,
)
from geofence.decisions.probability import _poly_p, _rect_p
from geofence.decisions.tables import _MITRE_LIMIT
from geofence.zoneset import KIND_NO_PARKING, KIND_PARKING

_CANDIDATES = 4  # fenced boxes weighed for p_inside


_SIGMAS = 4.0  # boxes farther than tolerance + 4 sigma have p < 3.2e-5 (p_inside has 4 decimals)


_RECT_SLACK_M = 0.05  # a rectangle's frame lies within this of the box itself


_P_SLACK = 1e-3  # above the numeric error of p_inside


@_jit_inline
def _forbidden(t, heading, active_from, active_to, open_, zh, heading_tol):
    """Reason bits that forbid settling this check in a box (0: none).

    Takes the box's values, not the arrays: an inlined helper's array arguments
    cost reference-count updates on every call in the hot loop.
    """
    forbid = 0
    if not (active_from <= t < active_to):
        forbid |= R_INACTIVE
    if not open_:
        forbid |= R_OPERATOR
    if heading == heading and zh == zh:
        diff = abs(((heading - zh) + 90.0) % 180.0 - 90.0)  # orientations: modulo 180
        if diff > heading_tol:
            forbid |= R_HEADING
    return forbid


@_jit_inline
def bz_hit(bz, z, x, y, near_radius, inv_perm, mx, my, rs, zrs):
    """The road stud heard (box bz) belongs to box z, and z is within near_radius."""
    if bz < 0 or bz != z:
        return False
    d, _, _ = _zone_closest(inv_perm[bz], x, y, mx, my, rs, zrs)
    return d <= near_radius


@_jit_borrowed
def _decide(
    g,
    lon,
    lat,
    x,
    y,
    sigma,
    stale,
    eps,
    narrow,
    sg,
    has_service,
    smap,
    ended_at,
    heading,
    beacon_zone,
    kind,
    zheading,
    active_from,
    active_to,
    fenced,
    open_fenced,
    open_any,
    rect,
    poly_of,
    pframe,
    pvx,
    pvy,
    pring,
    pzone,
    tol,
    settle_p,
    reject_p,
    max_acc,
    heading_tol,
    beacon_p,
    k_near,
    near_radius,
    bgrid,
    width,
    narrow_box,
    reject_k,
    reject_margin,
    centre_p,
    out_outcome,
    out_reasons,
    out_zone,
    out_p,
    out_dist,
    near_pos,
    near_dist,
    near_bearing,
    near_dy,
    work,
):
    levels, lmr, inv_size, table, shift = (
        g[_kernels.G_LEVELS],
        g[_kernels.G_LEVEL_MIN_RANK],
        g[_kernels.G_INV_SIZE],
        g[_kernels.G_TABLE],
        g[_kernels.G_SHIFT],
    )
    lzs, lz, ebox, ezone, erank = (
        g[_kernels.G_LEVEL_ZONE_START],
        g[_kernels.G_LEVEL_ZONES],
        g[_kernels.G_ENTRY_BOX],
        g[_kernels.G_ENTRY_ZONE],
        g[_kernels.G_ENTRY_RANK],
    )
    bbox, mbox, vxy, mx, my = (
        g[_kernels.G_BBOX],
        g[_kernels.G_MBOX],
        g[_kernels.G_VXY],
        g[_kernels.G_MX],
        g[_kernels.G_MY],
    )
    rs, zrs, perm, inv_perm = (
        g[_kernels.G_RING_START],
        g[_kernels.G_ZONE_RING_START],
        g[_kernels.G_PERM],
        g[_kernels.G_INV_PERM],
    )
    # the service area's own grid (tiles of the city outline)
    s_levels, s_lmr, s_inv, s_table, s_shift = (
        sg[_kernels.G_LEVELS],
        sg[_kernels.G_LEVEL_MIN_RANK],
        sg[_kernels.G_INV_SIZE],
        sg[_kernels.G_TABLE],
        sg[_kernels.G_SHIFT],
    )
    s_erank, s_ebox, s_ezone = (
        sg[_kernels.G_ENTRY_RANK],
        sg[_kernels.G_ENTRY_BOX],
        sg[_kernels.G_ENTRY_ZONE],
    )
    s_vxy, s_rs, s_zrs = (
        sg[_kernels.G_VXY],
        sg[_kernels.G_RING_START],
        sg[_kernels.G_ZONE_RING_START],
    )
    bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, lists = bgrid
    sx0, sy0, sinv, snx, sny, sstate = smap
    cand_pos, cand_dist, qbox, memo, cbuf = work  # see _work_buffers
    for i in range(lon.shape[0]):
        s = sigma[i]
        acc68 = s * 1.5095921854516636
        memo[_MEMO, 0] = 0.0
        t = ended_at[i]
        # the boxes weighed: those within _SIGMAS, and any the reject rule must see
        reach = tol + max(_SIGMAS * s, reject_k * s, reject_margin)
        # the covering zone (a parking box beats a no-parking area)
        loc = _kernels.locate_one(
            lon[i], lat[i], levels, lmr, inv_size, table, shift, erank, ebox, ezone,
            vxy, rs, zrs,
        )  # fmt: skip
        loc = perm[loc] if loc >= 0 else -1
        # fenced boxes close enough to matter, and the most probable one
        if bnx > 0:
            if not _list_nearest(
                x[i], y[i], 4, reach, fenced, active_from, active_to,
                np.nan, cand_pos, cand_dist, 0, memo,
                bx0, by0, bcell, bnx, bny, lists, gbox, gid, gv, mx, my, rs, zrs,
            ):  # fmt: skip
                _grid_nearest(
                    x[i], y[i], 4, reach, fenced, active_from,
                    active_to, np.nan, cand_pos, cand_dist, 0, cbuf, memo,
                    bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, mx, my, rs, zrs,
                )  # fmt: skip
        else:
            _kernels.nearest_one(
                lon[i], lat[i], x[i], y[i], 4, reach, fenced, active_from, active_to,
                np.nan, cand_pos, cand_dist, 0, qbox,
                levels, inv_size, lzs, lz, table, shift, ebox, ezone, bbox, mbox, mx, my, rs,
                zrs, perm,
            )  # fmt: skip
        # the most probable fenced box (any), and the most probable one where this
        # check may settle (active at ended_at, open to the operator, heading fits)
        best = -1
        best_p = 0.0
        best_forbid = 0
        ok = -1
        ok_p = 0.0
        ok_dist = np.inf
        for c in range(4):
            z = cand_pos[0, c]
            if z < 0:
                break
            forbid = _forbidden(
                t, heading[i], active_from[z], active_to[z], open_any[z], zheading[z], heading_tol
            )
            if forbid == 0:
                ok_dist = min(ok_dist, cand_dist[0, c])
            # a box this far cannot beat the best so far: skip its exact p (an upper
            # bound from its distance; the search returns the nearest box first)
            bar = ok_p if forbid == 0 else best_p
            if bar > _P_SLACK and beacon_zone[i] != z:
                if rect[z, 0] == rect[z, 0]:
                    # the widened rectangle is convex: p <= P(beyond a half-plane)
                    gap = cand_dist[0, c] - tol - _RECT_SLACK_M
                    cap = 0.5 * math.erfc(gap * 0.7071067811865476 / s) if gap > 0.0 else 1.0
                else:
                    # any shape within mitre_limit * tol of the box: P(|error| > gap)
                    gap = cand_dist[0, c] - _MITRE_LIMIT * tol
                    cap = math.exp(-0.5 * (gap / s) ** 2) if gap > 0.0 else 1.0
                if cap + _P_SLACK < bar:
                    continue
            if rect[z, 0] == rect[z, 0]:
                p = _rect_p(x[i], y[i], s, rect, z, tol)
            else:
                q = poly_of[z]
                dx = x[i] - pframe[q, 0]
                dy = y[i] - pframe[q, 1]
                cs = pframe[q, 2]
                sn = pframe[q, 3]
                p = _poly_p(q, dx * cs - dy * sn, dx * sn + dy * cs, s, pvx, pvy, pring, pzone)
            # the fused position may itself be an outlier (then it says nothing of
            # this box: its share of p is negligible against a box's few square metres)
            p *= 1.0 - eps[i]
            if beacon_zone[i] == z and bz_hit(
                z, z, x[i], y[i], near_radius, inv_perm, mx, my, rs, zrs
            ):
                p = max(p, beacon_p)
            if p > best_p:
                best_p = p
                best = z
                best_forbid = forbid
            if forbid == 0 and p > ok_p:
                ok_p = p
                ok = z
        beacon = False
        bz = beacon_zone[i]
        if bz >= 0 and bz_hit(bz, bz, x[i], y[i], near_radius, inv_perm, mx, my, rs, zrs):
            # a stud heard loud is strong evidence for its box, even out of GPS reach
            beacon = True
            forbid = _forbidden(
                t, heading[i], active_from[bz], active_to[bz], open_any[bz], zheading[bz],
                heading_tol,
            )  # fmt: skip
            pb = max(beacon_p, best_p if best == bz else 0.0)
            if pb >= best_p:
                best, best_p, best_forbid = bz, pb, forbid
            if forbid == 0 and pb >= ok_p:
                ok, ok_p, ok_dist = bz, pb, 0.0
        zone = ok if ok >= 0 and ok_p >= best_p else (best if best >= 0 else loc)
        dist = np.nan
        if zone >= 0:
            dist = np.nan
            for j in range(np.int64(memo[_MEMO, 0])):  # met in the search: the same
                if memo[j, 0] == zone:
                    dist = memo[j, 1]
            if dist != dist:
                dist, _, _ = _zone_closest(inv_perm[zone], x[i], y[i], mx, my, rs, zrs)
        reasons = 0
        if beacon:
            reasons |= R_BEACON
        if loc >= 0 and kind[loc] == KIND_NO_PARKING:
            reasons |= R_NO_PARKING
        in_service = True
        if has_service:
            # the service map's cell, then the exact test for fixes on its edge cells
            sa = (lon[i] - sx0) * sinv
            sb = (lat[i] - sy0) * sinv
            state = _SVC_OUT  # off the map, or not finite: outside (as locate_one)
            if 0.0 <= sa < snx and 0.0 <= sb < sny:
                ia = np.int64(sa)
                ib = np.int64(sb)
                fa = sa - ia
                fb = sb - ib
                state = _SVC_EDGE  # near a cell's side
                if _SERVICE_EDGE_FRAC <= fa <= 1.0 - _SERVICE_EDGE_FRAC:
                    if _SERVICE_EDGE_FRAC <= fb <= 1.0 - _SERVICE_EDGE_FRAC:
                        state = sstate[ib * snx + ia]
            if state == _SVC_EDGE:
                in_service = (
                    _kernels.locate_one(
                        lon[i], lat[i], s_levels, s_lmr, s_inv, s_table, s_shift, s_erank,
                        s_ebox, s_ezone, s_vxy, s_rs, s_zrs,
                    )
                    >= 0
                )  # fmt: skip
            else:
                in_service = state == _SVC_IN
        if not in_service:
            outcome = REJECT
            reasons |= R_SERVICE
        elif stale[i]:
            outcome = REVIEW
            reasons |= R_STALE
        elif (
            ok_p >= settle_p
            and (acc68 <= max_acc or beacon)
            and (narrow[i] or beacon or width[ok] >= narrow_box)
            and (beacon or math.erf((0.5 * width[ok] + tol) / (s * 1.4142135623730951)) >= centre_p)
        ):
            outcome = SETTLE
            reasons |= R_INSIDE_FENCED
            if dist == dist and dist > -acc68:
                reasons |= R_NEAR_EDGE
        elif best_p >= settle_p and best_forbid != 0 and (acc68 <= max_acc or beacon):
            # confidently in a box where this trip may not settle
            outcome = REJECT
            reasons |= best_forbid
        elif ok_p <= reject_p and not (ok_dist <= tol + max(reject_k * s, reject_margin)):
            # no box where it may settle within reject_k sigmas (the shared bias
            # included): the evidence is clear
            outcome = REJECT
            if best_forbid != 0 and best_p > reject_p:
                reasons |= best_forbid
            elif loc >= 0 and kind[loc] == KIND_PARKING and not fenced[loc]:
                reasons |= R_INSIDE_UNFENCED
            elif not (loc >= 0 and kind[loc] == KIND_NO_PARKING):
                reasons |= R_OUTSIDE_ALL
        else:
            outcome = REVIEW
            # is the fix too coarse for the box itself (even at its centre p < settle)?
            coarse = acc68 > max_acc
            if not coarse and ok >= 0 and not narrow[i] and width[ok] < narrow_box:
                coarse = True  # the fixes' class may not settle a box this narrow
            if not coarse and ok >= 0:
                # even at the box's centre line the evidence would not tell it apart
                coarse = math.erf((0.5 * width[ok] + tol) / (s * 1.4142135623730951)) < centre_p
            if not coarse and ok >= 0 and rect[ok, 0] == rect[ok, 0]:
                coarse = _rect_p(rect[ok, 0], rect[ok, 1], s, rect, ok, tol) < settle_p
            reasons |= R_ACCURACY if coarse else R_NEAR_EDGE
        out_outcome[i] = outcome
        out_reasons[i] = reasons
        out_zone[i] = zone
        out_p[i] = best_p
        out_dist[i] = dist
        # where the rider could park instead (not needed once settled): fenced boxes
        # open to the operator and active
        for c in range(k_near):
            near_pos[i, c] = -1
            near_dist[i, c] = np.inf
            near_bearing[i, c] = 0.0  # an offset (0, 1) where no box: see _true_bearings
            near_dy[i, c] = 1.0
        if k_near == 0 or outcome == SETTLE:
            continue
        if bnx > 0:
            if k_near > _LIST_K or not _list_nearest(
                x[i], y[i], k_near, near_radius, open_fenced, active_from,
                active_to, t, near_pos, near_dist, i, memo,
                bx0, by0, bcell, bnx, bny, lists, gbox, gid, gv, mx, my, rs, zrs,
            ):  # fmt: skip
                _grid_nearest(
                    x[i], y[i], k_near, near_radius, open_fenced,
                    active_from, active_to, t, near_pos, near_dist, i, cbuf, memo,
                    bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, mx, my, rs, zrs,
                )  # fmt: skip
        else:
            _kernels.nearest_one(
                lon[i], lat[i], x[i], y[i], k_near, near_radius, open_fenced, active_from,
                active_to, t, near_pos, near_dist, i, qbox,
                levels, inv_size, lzs, lz, table, shift, ebox, ezone, bbox, mbox, mx, my, rs,
                zrs, perm,
            )  # fmt: skip
        if near_pos[i, 0] < 0:
            continue  # no box near (the row fills from the front)
        # the offsets to each box's closest point, turned into bearings afterwards for
        # the whole batch at once (see _true_bearings)
        for c in range(k_near):
            z = near_pos[i, c]
            if z >= 0:
                j = 0
                while j < np.int64(memo[_MEMO, 0]) and memo[j, 0] != z:
                    j += 1
                if j < np.int64(memo[_MEMO, 0]):  # met in the search: the same point
                    bx = memo[j, 2]
                    by = memo[j, 3]
                else:
                    _, bx, by = _zone_closest(inv_perm[z], x[i], y[i], mx, my, rs, zrs)
                near_bearing[i, c] = bx - x[i]
                near_dy[i, c] = by - y[i]


@_jit
def _work_buffers():
    """The work arrays of one :func:`_decide` call: the candidate boxes (positions,
    distances), a query box, the check's memo of box distances and a cell's candidates
    (see :func:`_grid_nearest`)."""
    return (
        np.empty((1, _CANDIDATES), np.int64),
        np.empty((1, _CANDIDATES)),
        np.empty(4),
        np.empty((_MEMO + 1, 4)),
        np.empty((_CELL_BUF, 2)),
    )
