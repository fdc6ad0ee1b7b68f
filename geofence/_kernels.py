"""Compiled kernels of the zone index (numba, nopython, cached on disk).

The index is a handful of flat arrays gathered in one :class:`Grid` named tuple
(see :mod:`geofence.index`). Zones are stored in an internal order (along a
Z-order curve, for memory locality); ``perm[z]`` maps internal zone ``z`` back to
its position in the zone set, and every kernel answers with positions.

- rings: vertices ``vxy`` (lon/lat pairs, one cache line holds four) and ``mx, my``
  (metres, EPSG:4547), closed rings; ``ring_start`` (offsets into the vertices, one
  more than rings) and ``zone_ring_start`` (offsets into the rings, one more than
  zones).
- a hierarchical hashed grid: level ``l`` has cells of ``s0 * 4**l`` degrees; a zone
  is registered, at the smallest level whose cells are at least ``1 / index._SPAN``
  of its size, in every cell its bounding box overlaps. Occupied cells live in an
  open-addressing hash table of 16-byte rows ``(key, start << 32 | end)``: the
  cell's entries ``start:end`` (zone, rank, bounding box; contiguous) are in rank
  order (the locate tie-break: parking before no-parking, then smaller area).
  Bulk ``locate`` reads the first level's entries from ``entry_frame``: 32-byte
  rows, two a cache line, that decide most points without reading a vertex.

Everything here is a pure function of its arguments; nothing allocates per point
in the hot loops. Kernels unpack the :class:`Grid` once, outside their loops, and
pass arrays to the per-point functions: reading a field of the tuple inside a loop
costs a reference-count update each time (measured 5x slower). Numba also updates
the reference count of every array passed to an inlined helper, at each call; the
hot loops keep such calls few.

One file (~700 lines) on purpose: numba's on-disk cache judges a kernel fresh by the
source of its own file, and these kernels inline each other; split into modules they
would need the shared cache stamp :mod:`geofence.decisions._jit` gives its package.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

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
    level_zone_start: np.ndarray  # offsets into level_zones, one more than levels
    level_zones: np.ndarray  # internal zones grouped by level
    table: np.ndarray  # (2**bits, 2) int64 rows (key, start << 32 | end)
    shift: int  # 64 - bits
    entry_zone: np.ndarray  # int32 internal zone per cell entry
    entry_rank: np.ndarray  # int32 rank per cell entry
    entry_box: np.ndarray  # (entries, 4) lon/lat bounding box per cell entry
    entry_frame: np.ndarray  # (entries, 8) int32: bulk locate's 32-byte rows (index._entry_frames)
    entry_frame_f: np.ndarray  # the same memory as float32
    cell_size: np.ndarray  # cell size (degrees) per level
    bbox: np.ndarray  # (zones, 4) lon/lat bounding box per internal zone
    mbox: np.ndarray  # (zones, 4) metre bounding box per internal zone
    vxy: np.ndarray  # (vertices, 2) lon/lat
    mx: np.ndarray
    my: np.ndarray
    ring_start: np.ndarray
    zone_ring_start: np.ndarray
    perm: np.ndarray  # internal zone -> position
    inv_perm: np.ndarray  # position -> internal zone


# Field numbers of :class:`Grid`: kernels receive ``tuple(grid)`` (numba dispatches a
# plain tuple twice as fast as a named one: ~2.9 against ~5.6 us for these arrays)
# and read it as ``g[G_LEVELS]``; numba folds these module constants at compile time.
_F = Grid._fields.index
G_INV_SIZE = _F("inv_size")
G_LEVELS = _F("levels")
G_LEVEL_MIN_RANK = _F("level_min_rank")
G_LEVEL_ZONE_START = _F("level_zone_start")
G_LEVEL_ZONES = _F("level_zones")
G_TABLE = _F("table")
G_SHIFT = _F("shift")
G_ENTRY_ZONE = _F("entry_zone")
G_ENTRY_RANK = _F("entry_rank")
G_ENTRY_BOX = _F("entry_box")
G_ENTRY_FRAME = _F("entry_frame")
G_ENTRY_FRAME_F = _F("entry_frame_f")
G_CELL_SIZE = _F("cell_size")
G_BBOX = _F("bbox")
G_MBOX = _F("mbox")
G_VXY = _F("vxy")
G_MX = _F("mx")
G_MY = _F("my")
G_RING_START = _F("ring_start")
G_ZONE_RING_START = _F("zone_ring_start")
G_PERM = _F("perm")
G_INV_PERM = _F("inv_perm")


@_jit_inline
def cell_key(level, cx, cy):
    """Pack (level, cx, cy) into one non-negative int64."""
    return (np.int64(level) << np.int64(58)) | ((cx + _OFF) << np.int64(29)) | (cy + _OFF)


@_jit_inline
def _hash(key, shift):
    return np.int64((np.uint64(key) * _HASH_MUL) >> np.uint64(shift))


@_jit
def build_table(keys, starts, ends, bits, table):
    """Fill ``table`` (``2**bits`` rows) as an open-addressing hash table: rows
    ``(key, start << 32 | end)``, key -1 for empty. Allocated by the caller, so that
    NumPy gives a large table huge pages (fewer TLB misses on random probes)."""
    mask = (1 << bits) - 1
    shift = 64 - bits
    table[:, 0] = _EMPTY
    table[:, 1] = 0
    for j in range(keys.shape[0]):
        h = _hash(keys[j], shift)
        while table[h, 0] != _EMPTY:
            h = (h + 1) & mask
        table[h, 0] = keys[j]
        table[h, 1] = (starts[j] << np.int64(32)) | ends[j]


@_jit_inline
def _lookup(table, shift, key):
    """``start << 32 | end`` of ``key``'s entries, or -1."""
    mask = table.shape[0] - 1
    h = _hash(key, shift)
    while True:
        k = table[h, 0]
        if k == key:
            return table[h, 1]
        if k == _EMPTY:
            return _EMPTY
        h = (h + 1) & mask


@_jit_inline
def point_in_zone(z, px, py, vxy, ring_start, zone_ring_start):
    """Even-odd test over all rings of zone ``z``; a point on an edge or vertex is inside."""
    inside = False
    for r in range(zone_ring_start[z], zone_ring_start[z + 1]):
        for i in range(ring_start[r], ring_start[r + 1] - 1):
            x1 = vxy[i, 0]
            y1 = vxy[i, 1]
            x2 = vxy[i + 1, 0]
            y2 = vxy[i + 1, 1]
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
def _ring_covers(px, py, vxy, a, b):
    """The closed ring ``a:b`` covers (px, py): even-odd, an edge or vertex is inside.

    :func:`point_in_zone`'s loop for a zone of one ring, written out again on purpose:
    calling this from there would add an inlined call with array arguments per ring
    (reference-count updates) to every exact test."""
    inside = False
    for i in range(a, b - 1):
        x1 = vxy[i, 0]
        y1 = vxy[i, 1]
        x2 = vxy[i + 1, 0]
        y2 = vxy[i + 1, 1]
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
def locate_one(
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
    vxy,
    ring_start,
    zone_ring_start,
):
    """Internal zone of best rank covering (px, py) in lon/lat, or -1."""
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
            se = _lookup(table, shift, cell_key(lev, cx, cy))
            if se < 0:
                continue
            for e in range(se >> 32, se & 0xFFFFFFFF):
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
                if point_in_zone(z, px, py, vxy, ring_start, zone_ring_start):
                    best = z
                    best_rank = entry_rank[e]
                    break
    return best


@_jit
def locate_point(px, py, levels, level_min_rank, inv_size, table, shift, entry_rank, entry_box,
                 entry_zone, vxy, ring_start, zone_ring_start, perm):  # fmt: skip
    """``locate`` of one point (lon/lat floats): the zone set position, or -1.

    The single-point entry point of :meth:`geofence.ZoneIndex.locate`: the exact test
    of :func:`locate_one` (the bulk kernel's frames pay off over blocks of points) and
    the arrays it reads, not the whole :class:`Grid` (numba types a tuple argument
    anew at each call: ~2.6 us for the grid's 22 fields, against ~0.03 us an array).
    """
    z = locate_one(
        px, py, levels, level_min_rank, inv_size, table, shift, entry_rank, entry_box,
        entry_zone, vxy, ring_start, zone_ring_start,
    )  # fmt: skip
    return perm[z] if z >= 0 else -1


def entry_point(dispatcher, args: tuple) -> Callable[..., Any]:
    """``dispatcher``'s compiled function for the types of ``args``, to be called
    directly with arguments of those same types.

    Calling a numba dispatcher types every argument anew (``typeof``, ~0.1 us an
    array, ~2.6 us for the grid's tuple) before it calls the compiled function; the
    single-point and single-check paths call with the same types every time, so they
    look the function up once (numba's public ``Dispatcher.compile``, which compiles
    or loads it from the cache if needed) and skip the typing. Arguments of other
    types must not be passed to what it returns.
    """
    return dispatcher.compile(tuple(nb.typeof(a) for a in args))


_BLOCK = 64
# the band, in a parallelogram's own units, where bulk locate asks the exact test: 3 %
# of a box's sides, wide enough for boxes published to 7 decimals (~1 cm), which are
# parallelograms only to that much (2**-8 left 58 % of Zhuhai's boxes unframed)
FRAME_TOL = 2.0**-5


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the processor to load ``arr.flat[idx]``'s cache line (LLVM's prefetch)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@_jit
def locate(g, lon, lat, out):
    """``out[i]``: position of the best-ranked zone covering point i, or -1.

    Points go in blocks of 64 through three stages, each block one stage behind the
    one before it, so that memory reads of many points are in flight together: (1)
    the cell key on the first level, asking the processor to fetch its hash-table
    row (``_prefetch``); (2) the table lookup, fetching the cell's first entries;
    (3) the answer: each entry of the cell in rank order, a parallelogram box tested
    in its own frame from its 32-byte row (``index._entry_frames``), the exact test
    only within ``FRAME_TOL`` of its edges; then the other levels (large zones),
    while they can beat what we have. Measured against the four passes over one
    block of 64-byte rows that came before: 1.25x at 18,000 zones, 1.9x at
    1,000,000 (where nearly every read goes to DRAM).
    """
    levels = g[G_LEVELS]
    level_min_rank = g[G_LEVEL_MIN_RANK]
    inv_size = g[G_INV_SIZE]
    table = g[G_TABLE]
    shift = g[G_SHIFT]
    entry_rank = g[G_ENTRY_RANK]
    entry_box = g[G_ENTRY_BOX]
    rows = g[G_ENTRY_FRAME]
    rowf = g[G_ENTRY_FRAME_F]
    entry_zone = g[G_ENTRY_ZONE]
    vxy = g[G_VXY]
    ring_start = g[G_RING_START]
    zone_ring_start = g[G_ZONE_RING_START]
    perm = g[G_PERM]
    n = lon.shape[0]
    if levels.shape[0] == 0:
        out[:] = -1
        return
    lev0 = levels[0]
    inv0 = inv_size[lev0]
    size0 = g[G_CELL_SIZE][lev0]
    lo = -FRAME_TOL
    hi = 1.0 + FRAME_TOL
    in_lo = FRAME_TOL
    in_hi = 1.0 - FRAME_TOL
    no_rank = np.iinfo(np.int32).max
    # three blocks in flight: a block's keys, then its table answers (-1 for an empty
    # cell, -2 for a non-finite point)
    work = np.empty(3 * _BLOCK, np.int64)
    blocks = (n + _BLOCK - 1) // _BLOCK
    for step in range(blocks + 2):
        if step < blocks:
            base = step * _BLOCK
            w = (step % 3) * _BLOCK
            for j in range(min(_BLOCK, n - base)):
                px = lon[base + j]
                py = lat[base + j]
                if math.isfinite(px) and math.isfinite(py):
                    cx = np.int64(math.floor(px * inv0))
                    key = cell_key(lev0, cx, np.int64(math.floor(py * inv0)))
                    work[w + j] = key
                    _prefetch(table, _hash(key, shift) * 2)
                else:
                    work[w + j] = -2
        if 1 <= step <= blocks:
            base = (step - 1) * _BLOCK
            w = ((step - 1) % 3) * _BLOCK
            for j in range(min(_BLOCK, n - base)):
                if work[w + j] != -2:
                    se = _lookup(table, shift, work[w + j])
                    work[w + j] = se
                    if se >= 0:
                        # three cache lines (two rows each) from the cell's first entry,
                        # whatever its length: no branch to mispredict (measured faster
                        # than fetching just the cell's lines; a prefetch never faults)
                        line = (se >> 32) >> 1
                        _prefetch(rows, line * 16)
                        _prefetch(rows, line * 16 + 16)
                        _prefetch(rows, line * 16 + 32)
        if step < 2:
            continue
        base = (step - 2) * _BLOCK
        w = ((step - 2) % 3) * _BLOCK
        for j in range(min(_BLOCK, n - base)):
            se = work[w + j]
            if se == -2:
                out[base + j] = -1
                continue
            px = lon[base + j]
            py = lat[base + j]
            best_rank = no_rank
            best_pos = -1
            if se >= 0:
                # the point in its level-0 cell's frame (as index._entry_frames)
                dx = px - math.floor(px * inv0) * size0
                dy = py - math.floor(py * inv0) * size0
                for e in range(se >> 32, se & 0xFFFFFFFF):
                    a = rows[e, 7]
                    if a >= 0:
                        ux = dx - rowf[e, 0]
                        uy = dy - rowf[e, 1]
                        s = rowf[e, 2] * ux + rowf[e, 3] * uy
                        if s < lo or s > hi:
                            continue
                        t = rowf[e, 4] * ux + rowf[e, 5] * uy
                        if t < lo or t > hi:
                            continue
                        if not (in_lo < s < in_hi and in_lo < t < in_hi):
                            if not _ring_covers(px, py, vxy, a, a + 5):
                                continue
                    else:
                        if dx < rowf[e, 0] or dy < rowf[e, 1] or dx > rowf[e, 2] or dy > rowf[e, 3]:
                            continue
                        if not point_in_zone(
                            entry_zone[e], px, py, vxy, ring_start, zone_ring_start
                        ):
                            continue
                    best_pos = rows[e, 6]
                    if levels.shape[0] > 1:  # (a read that costs a cache miss at scale)
                        best_rank = entry_rank[e]
                    break
            # the other levels (large zones), while they can beat what we have
            for li in range(1, levels.shape[0]):
                if level_min_rank[li] >= best_rank:
                    continue
                lev = levels[li]
                inv = inv_size[lev]
                cx = np.int64(math.floor(px * inv))
                se = _lookup(table, shift, cell_key(lev, cx, np.int64(math.floor(py * inv))))
                if se < 0:
                    continue
                for e in range(se >> 32, se & 0xFFFFFFFF):
                    if entry_rank[e] >= best_rank:
                        break
                    if (
                        px < entry_box[e, 0]
                        or py < entry_box[e, 1]
                        or px > entry_box[e, 2]
                        or py > entry_box[e, 3]
                    ):
                        continue
                    z = entry_zone[e]
                    if point_in_zone(z, px, py, vxy, ring_start, zone_ring_start):
                        best_rank = entry_rank[e]
                        best_pos = perm[z]
                        break
            out[base + j] = best_pos


@_jit_inline
def _insert(out_pos, out_dist, i, k, z, d):
    """Insert (d, z) into the ascending top-k row i if it belongs there."""
    last = k - 1
    if d > out_dist[i, last] or (
        d == out_dist[i, last] and out_pos[i, last] != -1 and z > out_pos[i, last]
    ):
        return
    j = last
    while j > 0 and (
        out_dist[i, j - 1] > d
        or (out_dist[i, j - 1] == d and (out_pos[i, j - 1] == -1 or out_pos[i, j - 1] > z))
    ):
        out_dist[i, j] = out_dist[i, j - 1]
        out_pos[i, j] = out_pos[i, j - 1]
        j -= 1
    out_dist[i, j] = d
    out_pos[i, j] = z


@_jit_inline
def _candidate(p, mask, active_from, active_to, t):
    """Position p is a nearest candidate: in mask and, unless t is NaN, active at t."""
    if not mask[p]:
        return False
    if t == t and not (active_from[p] <= t < active_to[p]):
        return False
    return True


@_jit_inline
def _consider(z, p, qx, qy, max_distance, k, out_pos, out_dist, i, mbox, mx, my, rs, zrs):
    limit = min(max_distance, out_dist[i, k - 1])
    dx = max(mbox[z, 0] - qx, 0.0, qx - mbox[z, 2])
    dy = max(mbox[z, 1] - qy, 0.0, qy - mbox[z, 3])
    if dx * dx + dy * dy > limit * limit:
        return
    d, _, _ = zone_closest(z, qx, qy, mx, my, rs, zrs)
    if d < 0.0:
        d = 0.0
    if d <= max_distance:
        _insert(out_pos, out_dist, i, k, p, d)


@_jit_inline
def nearest_one(
    px, py, qx, qy, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist, i, qbox,
    levels, inv_size, level_zone_start, level_zones, table, shift, entry_box, entry_zone,
    bbox, mbox, mx, my, rs, zrs, perm,
):  # fmt: skip
    """Fill row i of ``out_pos``/``out_dist`` with the k nearest candidate positions.

    ``px, py`` (lon/lat) select grid cells; ``qx, qy`` (metres) give exact distances
    to the polygons in metres, 0 inside. Rows are sorted by (distance, position).
    Candidates are the positions where ``mask`` holds and, unless ``t`` is NaN, that
    are active at ``t``. ``qbox`` is a work array of 4.
    """
    for j in range(k):
        out_pos[i, j] = -1
        out_dist[i, j] = np.inf
    if math.isfinite(px) and math.isfinite(py) and math.isfinite(qx) and math.isfinite(qy):
        # degrees of latitude per metre, with a margin (TM scale factor >= 1 keeps it safe)
        rlat = max_distance / 110_000.0 + 1e-9
        coslat = math.cos(math.radians(min(abs(py) + rlat + 0.1, 89.9)))
        rlon = rlat / coslat
        qbox[0] = px - rlon
        qbox[1] = py - rlat
        qbox[2] = px + rlon
        qbox[3] = py + rlat
        for li in range(levels.shape[0]):
            lev = levels[li]
            inv = inv_size[lev]
            fx0 = np.floor(qbox[0] * inv)
            fx1 = np.floor(qbox[2] * inv)
            fy0 = np.floor(qbox[1] * inv)
            fy1 = np.floor(qbox[3] * inv)
            ncells = (fx1 - fx0 + 1.0) * (fy1 - fy0 + 1.0)
            if not (ncells <= level_zone_start[li + 1] - level_zone_start[li]):
                # cheaper to scan every zone of this level than to probe the cells
                for e in range(level_zone_start[li], level_zone_start[li + 1]):
                    z = level_zones[e]
                    if bbox[z, 2] < qbox[0] or bbox[z, 0] > qbox[2]:
                        continue
                    if bbox[z, 3] < qbox[1] or bbox[z, 1] > qbox[3]:
                        continue
                    p = perm[z]
                    if _candidate(p, mask, active_from, active_to, t):
                        _consider(
                            z, p, qx, qy, max_distance, k, out_pos, out_dist, i, mbox, mx, my,
                            rs, zrs,
                        )  # fmt: skip
                continue
            # rings of cells around the fix's cell, nearest first, until a ring is
            # farther than the k-th best. A zone spans several cells; it is visited
            # once, from the cell holding the point of its box nearest the fix: no
            # point of the zone lies in a nearer ring, so that cell's ring is reached
            # whenever the zone can matter
            u = px * inv
            v = py * inv
            cx0 = np.int64(math.floor(u))
            cy0 = np.int64(math.floor(v))
            # metres per cell, lower bounds (so the ring bound never overshoots)
            cmy = 110_000.0 / inv
            cmx = cmy * coslat
            ix0 = np.int64(fx0)
            ix1 = np.int64(fx1)
            iy0 = np.int64(fy0)
            iy1 = np.int64(fy1)
            r_max = max(cx0 - ix0, ix1 - cx0, cy0 - iy0, iy1 - cy0)
            for r in range(r_max + 1):
                if r > 0:
                    bx = min(u - (cx0 - r + 1), (cx0 + r) - u) * cmx
                    by = min(v - (cy0 - r + 1), (cy0 + r) - v) * cmy
                    if min(bx, by) > min(max_distance, out_dist[i, k - 1]):
                        break
                for c in range(-r, r + 1):
                    for side in range(4):
                        inner = -r < c < r
                        if side == 0:
                            cx, cy = cx0 + c, cy0 - r
                        elif side == 1:
                            if not inner:
                                continue
                            cx, cy = cx0 - r, cy0 + c
                        elif side == 2:
                            if r == 0:
                                continue
                            cx, cy = cx0 + c, cy0 + r
                        else:
                            if not inner:
                                continue
                            cx, cy = cx0 + r, cy0 + c
                        if not (ix0 <= cx <= ix1 and iy0 <= cy <= iy1):
                            continue
                        se = _lookup(table, shift, cell_key(lev, cx, cy))
                        if se < 0:
                            continue
                        for e in range(se >> 32, se & 0xFFFFFFFF):
                            if entry_box[e, 2] < qbox[0] or entry_box[e, 0] > qbox[2]:
                                continue
                            if entry_box[e, 3] < qbox[1] or entry_box[e, 1] > qbox[3]:
                                continue
                            # visit each zone once: from the cell of its box's point
                            # nearest the fix (the fix clamped to the box)
                            nx = min(max(px, entry_box[e, 0]), entry_box[e, 2])
                            if np.int64(math.floor(nx * inv)) != cx:
                                continue
                            ny = min(max(py, entry_box[e, 1]), entry_box[e, 3])
                            if np.int64(math.floor(ny * inv)) != cy:
                                continue
                            z = entry_zone[e]
                            p = perm[z]
                            if not mask[p]:
                                continue
                            if t == t and not (active_from[p] <= t < active_to[p]):
                                continue
                            limit = min(max_distance, out_dist[i, k - 1])
                            dx = max(mbox[z, 0] - qx, 0.0, qx - mbox[z, 2])
                            dy = max(mbox[z, 1] - qy, 0.0, qy - mbox[z, 3])
                            if dx * dx + dy * dy > limit * limit:
                                continue
                            _consider(
                                z, p, qx, qy, max_distance, k, out_pos, out_dist, i,
                                mbox, mx, my, rs, zrs,
                            )  # fmt: skip


@_jit
def nearest(g, lon, lat, x, y, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist):
    """Row i of ``out_pos``/``out_dist``: the k nearest candidates of point i."""
    levels, inv_size, table, shift = g[G_LEVELS], g[G_INV_SIZE], g[G_TABLE], g[G_SHIFT]
    lzs, lz, ebox, ezone = g[G_LEVEL_ZONE_START], g[G_LEVEL_ZONES], g[G_ENTRY_BOX], g[G_ENTRY_ZONE]
    bbox, mbox, mx, my, rs, zrs, perm = (
        g[G_BBOX],
        g[G_MBOX],
        g[G_MX],
        g[G_MY],
        g[G_RING_START],
        g[G_ZONE_RING_START],
        g[G_PERM],
    )
    qbox = np.empty(4)
    for i in range(lon.shape[0]):
        nearest_one(
            lon[i], lat[i], x[i], y[i], k, max_distance, mask, active_from, active_to, t,
            out_pos, out_dist, i, qbox,
            levels, inv_size, lzs, lz, table, shift, ebox, ezone, bbox, mbox, mx, my, rs, zrs, perm,
        )  # fmt: skip


@_jit
def closest(g, pos, x, y, out_dist, out_x, out_y):
    """Signed distance (negative inside) and closest boundary point, point i to zone pos[i]."""
    for i in range(pos.shape[0]):
        if pos[i] < 0:
            out_dist[i] = np.nan
            out_x[i] = np.nan
            out_y[i] = np.nan
            continue
        z = g[G_INV_PERM][pos[i]]
        d, bx, by = zone_closest(
            z, x[i], y[i], g[G_MX], g[G_MY], g[G_RING_START], g[G_ZONE_RING_START]
        )
        out_dist[i] = d
        out_x[i] = bx
        out_y[i] = by
