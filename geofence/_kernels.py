"""Compiled kernels of the zone index (numba, nopython, cached on disk).

The index is a handful of flat arrays (see :mod:`geofence.index`):

- rings: vertex arrays ``vx, vy`` (closed rings), ``ring_start`` (offsets into the
  vertices, one more than rings) and ``zone_ring_start`` (offsets into the rings,
  one more than zones). The same layout serves lon/lat and metres.
- a hierarchical hashed grid: level ``l`` has cells of ``s0 * 4**l`` degrees; a zone
  is registered, at the smallest level whose cell is at least its size, in every
  cell its bounding box overlaps (at most 2 x 2). Occupied cells live in an
  open-addressing hash table whose rows are ``(key, start, end, 0)``: the cell's
  entries ``start:end`` (zone, rank, bounding box; contiguous) are in rank order
  (the locate tie-break: parking before no-parking, then smaller area).

Everything here is a pure function of its arguments; nothing allocates per point
in the hot loops.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_OFF = np.int64(1 << 28)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.int64(-1)

_jit = nb.njit(cache=True, nogil=True, fastmath=False)
_jit_inline = nb.njit(cache=True, nogil=True, inline="always")


@_jit_inline
def cell_key(level, cx, cy):
    """Pack (level, cx, cy) into one non-negative int64."""
    return (np.int64(level) << np.int64(58)) | ((cx + _OFF) << np.int64(29)) | (cy + _OFF)


@_jit_inline
def _hash(key, shift):
    return np.int64((np.uint64(key) * _HASH_MUL) >> np.uint64(shift))


@_jit
def build_table(keys, starts, ends, bits):
    """Open-addressing hash table: rows ``(key, start, end, 0)``, key -1 for empty."""
    size = 1 << bits
    mask = size - 1
    shift = 64 - bits
    table = np.zeros((size, 4), np.int64)
    table[:, 0] = _EMPTY
    for j in range(keys.shape[0]):
        h = _hash(keys[j], shift)
        while table[h, 0] != _EMPTY:
            h = (h + 1) & mask
        table[h, 0] = keys[j]
        table[h, 1] = starts[j]
        table[h, 2] = ends[j]
    return table


@_jit_inline
def _lookup(table, shift, key):
    """Row of ``key`` in the table, or -1."""
    mask = table.shape[0] - 1
    h = _hash(key, shift)
    while True:
        k = table[h, 0]
        if k == key:
            return h
        if k == _EMPTY:
            return -1
        h = (h + 1) & mask


@_jit_inline
def point_in_zone(z, px, py, vx, vy, ring_start, zone_ring_start):
    """Even-odd test over all rings of zone ``z``; a point on an edge or vertex is inside."""
    inside = False
    for r in range(zone_ring_start[z], zone_ring_start[z + 1]):
        for i in range(ring_start[r], ring_start[r + 1] - 1):
            x1 = vx[i]
            y1 = vy[i]
            x2 = vx[i + 1]
            y2 = vy[i + 1]
            if y1 == py:
                if x1 == px:
                    return True
                if y2 == py and (x1 <= px) != (x2 < px):
                    return True
            if (y1 > py) != (y2 > py):
                cross = (x2 - x1) * (py - y1) - (px - x1) * (y2 - y1)
                if cross == 0.0:
                    return True
                if (cross > 0.0) == (y2 > y1):
                    inside = not inside
    return inside


@_jit_inline
def zone_distance(z, px, py, vx, vy, ring_start, zone_ring_start):
    """Signed distance from (px, py) to zone ``z``'s boundary: negative inside, 0 on it."""
    inside = False
    best = np.inf
    for r in range(zone_ring_start[z], zone_ring_start[z + 1]):
        for i in range(ring_start[r], ring_start[r + 1] - 1):
            x1 = vx[i]
            y1 = vy[i]
            x2 = vx[i + 1]
            y2 = vy[i + 1]
            dx = x2 - x1
            dy = y2 - y1
            wx = px - x1
            wy = py - y1
            seg2 = dx * dx + dy * dy
            t = 0.0
            if seg2 > 0.0:
                t = (wx * dx + wy * dy) / seg2
                if t < 0.0:
                    t = 0.0
                elif t > 1.0:
                    t = 1.0
            ex = wx - t * dx
            ey = wy - t * dy
            d2 = ex * ex + ey * ey
            if d2 < best:
                best = d2
            if (y1 > py) != (y2 > py):
                cross = dx * (py - y1) - wx * dy
                if (cross > 0.0) == (y2 > y1):
                    inside = not inside
    d = math.sqrt(best)
    return -d if inside else d


@_jit
def locate(
    lon,
    lat,
    inv_size,
    levels,
    level_min_rank,
    table,
    bits,
    entry_zone,
    entry_rank,
    entry_box,
    vx,
    vy,
    ring_start,
    zone_ring_start,
    perm,
    out,
):
    """For each point, the position (``perm`` of the zone) of best rank covering it, or -1."""
    shift = 64 - bits
    for i in range(lon.shape[0]):
        px = lon[i]
        py = lat[i]
        best = -1
        best_rank = np.iinfo(np.int32).max
        if math.isfinite(px) and math.isfinite(py):
            for li in range(levels.shape[0]):
                if level_min_rank[li] >= best_rank:
                    continue  # nothing on this level can beat what we have
                lev = levels[li]
                inv = inv_size[lev]
                cx = np.int64(math.floor(px * inv))
                cy = np.int64(math.floor(py * inv))
                row = _lookup(table, shift, cell_key(lev, cx, cy))
                if row < 0:
                    continue
                for e in range(table[row, 1], table[row, 2]):
                    if entry_rank[e] >= best_rank:
                        break  # the cell lists zones in rank order
                    if (
                        px < entry_box[e, 0]
                        or py < entry_box[e, 1]
                        or px > entry_box[e, 2]
                        or py > entry_box[e, 3]
                    ):
                        continue
                    z = entry_zone[e]
                    if point_in_zone(z, px, py, vx, vy, ring_start, zone_ring_start):
                        best = z
                        best_rank = entry_rank[e]
                        break
        out[i] = perm[best] if best >= 0 else -1


@_jit_inline
def _insert(row_pos, row_dist, k, z, d):
    """Insert (d, z) into the ascending top-k row if it belongs there."""
    last = k - 1
    if d > row_dist[last] or (d == row_dist[last] and row_pos[last] != -1 and z > row_pos[last]):
        return
    j = last
    while j > 0 and (
        row_dist[j - 1] > d
        or (row_dist[j - 1] == d and (row_pos[j - 1] == -1 or row_pos[j - 1] > z))
    ):
        row_dist[j] = row_dist[j - 1]
        row_pos[j] = row_pos[j - 1]
        j -= 1
    row_dist[j] = d
    row_pos[j] = z


@_jit
def nearest(
    lon,
    lat,
    x,
    y,
    k,
    max_distance,
    inv_size,
    levels,
    level_cells,
    level_zone_start,
    level_zones,
    table,
    bits,
    entry_zone,
    bminx,
    bminy,
    bmaxx,
    bmaxy,
    mminx,
    mminy,
    mmaxx,
    mmaxy,
    mask,
    vx,
    vy,
    ring_start,
    zone_ring_start,
    perm,
    out_pos,
    out_dist,
):
    """For each point, the ``k`` nearest positions (where ``mask``) within ``max_distance`` m.

    ``lon, lat`` select grid cells; ``x, y`` (metres) give exact distances to the
    polygons in ``vx, vy`` (metres); 0 inside. Rows are sorted by (distance, position).
    """
    shift = 64 - bits
    # degrees of latitude per metre, with a margin (TM scale factor >= 1 keeps it safe)
    deg_per_m = 1.0 / 110_000.0
    for i in range(lon.shape[0]):
        row_pos = out_pos[i]
        row_dist = out_dist[i]
        for j in range(k):
            row_pos[j] = -1
            row_dist[j] = np.inf
        px = lon[i]
        py = lat[i]
        qx = x[i]
        qy = y[i]
        if not (math.isfinite(px) and math.isfinite(py) and math.isfinite(qx)):
            continue
        rlat = max_distance * deg_per_m + 1e-9
        coslat = math.cos(math.radians(min(abs(py) + rlat, 89.9)))
        rlon = rlat / coslat
        qminx = px - rlon
        qmaxx = px + rlon
        qminy = py - rlat
        qmaxy = py + rlat
        for li in range(levels.shape[0]):
            lev = levels[li]
            inv = inv_size[lev]
            fx0 = np.floor(qminx * inv)
            fx1 = np.floor(qmaxx * inv)
            fy0 = np.floor(qminy * inv)
            fy1 = np.floor(qmaxy * inv)
            ncells = (fx1 - fx0 + 1.0) * (fy1 - fy0 + 1.0)
            if not (ncells <= level_cells[li]):
                # cheaper to scan every zone of this level than to probe the cells
                for e in range(level_zone_start[li], level_zone_start[li + 1]):
                    z = level_zones[e]
                    if not mask[perm[z]]:
                        continue
                    if bmaxx[z] < qminx or bminx[z] > qmaxx or bmaxy[z] < qminy or bminy[z] > qmaxy:
                        continue
                    _consider(
                        z, qx, qy, max_distance, k, row_pos, row_dist,
                        mminx, mminy, mmaxx, mmaxy, vx, vy, ring_start, zone_ring_start, perm,
                    )  # fmt: skip
                continue
            cx0 = np.int64(fx0)
            cx1 = np.int64(fx1)
            cy0 = np.int64(fy0)
            cy1 = np.int64(fy1)
            for cx in range(cx0, cx1 + 1):
                for cy in range(cy0, cy1 + 1):
                    row = _lookup(table, shift, cell_key(lev, cx, cy))
                    if row < 0:
                        continue
                    for e in range(table[row, 1], table[row, 2]):
                        z = entry_zone[e]
                        if not mask[perm[z]]:
                            continue
                        if (
                            bmaxx[z] < qminx
                            or bminx[z] > qmaxx
                            or bmaxy[z] < qminy
                            or bminy[z] > qmaxy
                        ):
                            continue
                        # visit each zone once: only from the cell holding the lower-left
                        # corner of (query box ∩ zone box)
                        if np.int64(math.floor(max(qminx, bminx[z]) * inv)) != cx:
                            continue
                        if np.int64(math.floor(max(qminy, bminy[z]) * inv)) != cy:
                            continue
                        _consider(
                            z, qx, qy, max_distance, k, row_pos, row_dist,
                            mminx, mminy, mmaxx, mmaxy, vx, vy, ring_start, zone_ring_start, perm,
                        )  # fmt: skip


@_jit_inline
def _consider(
    z,
    qx,
    qy,
    max_distance,
    k,
    row_pos,
    row_dist,
    mminx,
    mminy,
    mmaxx,
    mmaxy,
    vx,
    vy,
    ring_start,
    zone_ring_start,
    perm,
):
    limit = min(max_distance, row_dist[k - 1])
    dx = max(mminx[z] - qx, 0.0, qx - mmaxx[z])
    dy = max(mminy[z] - qy, 0.0, qy - mmaxy[z])
    if dx * dx + dy * dy > limit * limit:
        return
    d = zone_distance(z, qx, qy, vx, vy, ring_start, zone_ring_start)
    if d < 0.0:
        d = 0.0
    if d <= max_distance:
        _insert(row_pos, row_dist, k, perm[z], d)


@_jit
def signed_distance(pos, x, y, vx, vy, ring_start, zone_ring_start, out):
    """``out[i]`` = signed distance from point i to zone ``pos[i]`` (NaN where pos < 0)."""
    for i in range(pos.shape[0]):
        z = pos[i]
        if z < 0:
            out[i] = np.nan
        else:
            out[i] = zone_distance(z, x[i], y[i], vx, vy, ring_start, zone_ring_start)
