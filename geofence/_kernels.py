"""Compiled kernels of the zone index (numba, nopython, cached on disk).

The index is a handful of flat arrays gathered in one :class:`Grid` named tuple
(see :mod:`geofence.index`). Zones are stored in an internal order (along a
Z-order curve, for memory locality); ``perm[z]`` maps internal zone ``z`` back to
its position in the zone set, and every kernel answers with positions.

- rings: vertex arrays ``vx, vy`` (lon/lat) and ``mx, my`` (metres, EPSG:4547),
  closed rings; ``ring_start`` (offsets into the vertices, one more than rings) and
  ``zone_ring_start`` (offsets into the rings, one more than zones).
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
from typing import NamedTuple

import numba as nb
import numpy as np

_OFF = np.int64(1 << 28)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.int64(-1)

_jit = nb.njit(cache=True, nogil=True)
_jit_inline = nb.njit(cache=True, nogil=True, inline="always")


class Grid(NamedTuple):
    """The index's arrays, passed to kernels as one argument."""

    inv_size: np.ndarray  # 1 / cell size (degrees) per level
    levels: np.ndarray  # occupied levels, ascending
    level_min_rank: np.ndarray  # best rank on each occupied level
    level_cells: np.ndarray  # occupied cells on each occupied level (float)
    level_zone_start: np.ndarray  # offsets into level_zones, one more than levels
    level_zones: np.ndarray  # internal zones grouped by level
    table: np.ndarray  # (2**bits, 4) int64 rows (key, start, end, 0)
    shift: int  # 64 - bits
    entry_zone: np.ndarray  # int32 internal zone per cell entry
    entry_rank: np.ndarray  # int32 rank per cell entry
    entry_box: np.ndarray  # (entries, 4) lon/lat bounding box per cell entry
    bminx: np.ndarray  # lon/lat bounding boxes per internal zone
    bminy: np.ndarray
    bmaxx: np.ndarray
    bmaxy: np.ndarray
    mminx: np.ndarray  # metre bounding boxes per internal zone
    mminy: np.ndarray
    mmaxx: np.ndarray
    mmaxy: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    ring_start: np.ndarray
    zone_ring_start: np.ndarray
    perm: np.ndarray  # internal zone -> position
    inv_perm: np.ndarray  # position -> internal zone


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
def zone_closest(z, px, py, vx, vy, ring_start, zone_ring_start):
    """Signed distance from (px, py) to zone ``z``'s boundary (negative inside) and the
    closest boundary point."""
    inside = False
    best = np.inf
    bx = px
    by = py
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
                bx = x1 + t * dx
                by = y1 + t * dy
            if (y1 > py) != (y2 > py):
                cross = dx * (py - y1) - wx * dy
                if (cross > 0.0) == (y2 > y1):
                    inside = not inside
    d = math.sqrt(best)
    return (-d if inside else d), bx, by


@_jit_inline
def _locate_one(
    px,
    py,
    levels,
    level_min_rank,
    inv_size,
    table,
    shift,
    entry_rank,
    entry_box,
    entry_zone,
    vx,
    vy,
    ring_start,
    zone_ring_start,
):
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
    return best


@_jit_inline
def locate_one(g, px, py):
    """Internal zone of best rank covering (px, py) in lon/lat, or -1."""
    return _locate_one(
        px,
        py,
        g.levels,
        g.level_min_rank,
        g.inv_size,
        g.table,
        g.shift,
        g.entry_rank,
        g.entry_box,
        g.entry_zone,
        g.vx,
        g.vy,
        g.ring_start,
        g.zone_ring_start,
    )


@_jit
def locate(g, lon, lat, out):
    """``out[i]``: position of the best-ranked zone covering point i, or -1."""
    levels = g.levels
    level_min_rank = g.level_min_rank
    inv_size = g.inv_size
    table = g.table
    shift = g.shift
    entry_rank = g.entry_rank
    entry_box = g.entry_box
    entry_zone = g.entry_zone
    vx = g.vx
    vy = g.vy
    ring_start = g.ring_start
    zone_ring_start = g.zone_ring_start
    perm = g.perm
    for i in range(lon.shape[0]):
        z = _locate_one(
            lon[i],
            lat[i],
            levels,
            level_min_rank,
            inv_size,
            table,
            shift,
            entry_rank,
            entry_box,
            entry_zone,
            vx,
            vy,
            ring_start,
            zone_ring_start,
        )
        out[i] = perm[z] if z >= 0 else -1


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


@_jit_inline
def _candidate(g, z, mask, active_from, active_to, t):
    """Zone z (internal) is a nearest candidate: in mask and, unless t is NaN, active."""
    p = g.perm[z]
    if not mask[p]:
        return False
    if t == t and not (active_from[p] <= t < active_to[p]):
        return False
    return True


@_jit_inline
def _consider(g, z, qx, qy, max_distance, k, row_pos, row_dist):
    limit = min(max_distance, row_dist[k - 1])
    dx = max(g.mminx[z] - qx, 0.0, qx - g.mmaxx[z])
    dy = max(g.mminy[z] - qy, 0.0, qy - g.mmaxy[z])
    if dx * dx + dy * dy > limit * limit:
        return
    d, _, _ = zone_closest(z, qx, qy, g.mx, g.my, g.ring_start, g.zone_ring_start)
    if d < 0.0:
        d = 0.0
    if d <= max_distance:
        _insert(row_pos, row_dist, k, g.perm[z], d)


@_jit_inline
def nearest_one(
    g, px, py, qx, qy, k, max_distance, mask, active_from, active_to, t, row_pos, row_dist
):
    """Fill ``row_pos``/``row_dist`` (length k) with the nearest candidate positions.

    ``px, py`` (lon/lat) select grid cells; ``qx, qy`` (metres) give exact distances
    to the polygons in metres, 0 inside. Rows are sorted by (distance, position).
    """
    for j in range(k):
        row_pos[j] = -1
        row_dist[j] = np.inf
    if math.isfinite(px) and math.isfinite(py) and math.isfinite(qx) and math.isfinite(qy):
        # degrees of latitude per metre, with a margin (TM scale factor >= 1 keeps it safe)
        rlat = max_distance / 110_000.0 + 1e-9
        rlon = rlat / math.cos(math.radians(min(abs(py) + rlat, 89.9)))
        qminx = px - rlon
        qmaxx = px + rlon
        qminy = py - rlat
        qmaxy = py + rlat
        for li in range(g.levels.shape[0]):
            lev = g.levels[li]
            inv = g.inv_size[lev]
            fx0 = np.floor(qminx * inv)
            fx1 = np.floor(qmaxx * inv)
            fy0 = np.floor(qminy * inv)
            fy1 = np.floor(qmaxy * inv)
            ncells = (fx1 - fx0 + 1.0) * (fy1 - fy0 + 1.0)
            if not (ncells <= g.level_cells[li]):
                # cheaper to scan every zone of this level than to probe the cells
                for e in range(g.level_zone_start[li], g.level_zone_start[li + 1]):
                    z = g.level_zones[e]
                    if (
                        g.bmaxx[z] < qminx
                        or g.bminx[z] > qmaxx
                        or g.bmaxy[z] < qminy
                        or g.bminy[z] > qmaxy
                    ):
                        continue
                    if _candidate(g, z, mask, active_from, active_to, t):
                        _consider(g, z, qx, qy, max_distance, k, row_pos, row_dist)
                continue
            for cx in range(np.int64(fx0), np.int64(fx1) + 1):
                for cy in range(np.int64(fy0), np.int64(fy1) + 1):
                    row = _lookup(g.table, g.shift, cell_key(lev, cx, cy))
                    if row < 0:
                        continue
                    box = g.entry_box
                    for e in range(g.table[row, 1], g.table[row, 2]):
                        if box[e, 2] < qminx or box[e, 0] > qmaxx:
                            continue
                        if box[e, 3] < qminy or box[e, 1] > qmaxy:
                            continue
                        # visit each zone once: only from the cell holding the lower-left
                        # corner of (query box ∩ zone box)
                        if np.int64(math.floor(max(qminx, box[e, 0]) * inv)) != cx:
                            continue
                        if np.int64(math.floor(max(qminy, box[e, 1]) * inv)) != cy:
                            continue
                        z = g.entry_zone[e]
                        if _candidate(g, z, mask, active_from, active_to, t):
                            _consider(g, z, qx, qy, max_distance, k, row_pos, row_dist)


@_jit
def nearest(g, lon, lat, x, y, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist):
    """Row i of ``out_pos``/``out_dist``: the k nearest candidates of point i."""
    for i in range(lon.shape[0]):
        nearest_one(
            g,
            lon[i],
            lat[i],
            x[i],
            y[i],
            k,
            max_distance,
            mask,
            active_from,
            active_to,
            t,
            out_pos[i],
            out_dist[i],
        )


@_jit
def closest(g, pos, x, y, out_dist, out_x, out_y):
    """Signed distance (negative inside) and closest boundary point, point i to zone pos[i]."""
    for i in range(pos.shape[0]):
        if pos[i] < 0:
            out_dist[i] = np.nan
            out_x[i] = np.nan
            out_y[i] = np.nan
            continue
        z = g.inv_perm[pos[i]]
        d, bx, by = zone_closest(z, x[i], y[i], g.mx, g.my, g.ring_start, g.zone_ring_start)
        out_dist[i] = d
        out_x[i] = bx
        out_y[i] = by
