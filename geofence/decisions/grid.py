"""The nearest-box searches of the kernels, and the grids they search.

:func:`_box_grid`: a dense metric grid of the fenced boxes, with a copy of the rows
that reject most candidates and of one-ring boxes' vertices; :func:`_near_lists`: per
cell, the boxes that may be nearest to a fix in it. :func:`_grid_nearest` walks the
grid and :func:`_list_nearest` answers from a cell's list when it can (the same
answer as :func:`geofence._kernels.nearest_one`). :func:`_service_map`: a lon/lat cell
map of the service area, so that most fixes skip its exact test.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import shapely

from geofence import _kernels
from geofence.decisions._jit import _insert, _jit, _jit_inline, _zone_closest
from geofence.index import ZoneIndex

_BOX_CELL_M = 100.0  # fenced-box grid cell (metres): 25-100 m measured alike; 100 m: 3 MB here


_BOX_GRID_CELLS = 1 << 22  # at most this many cells (16 MiB of offsets); coarser beyond


_BOX_GRID_MAX_CELL_M = 400.0  # coarser than this: search the index's own grid instead


_BOX_GRID_EPS_M = 1e-3  # boxes are registered this much wider (rounding at cell edges)


def _box_grid(index: ZoneIndex, fenced: np.ndarray) -> tuple[Any, ...]:
    """A dense metric grid of the fenced boxes, for the nearest-box searches.

    Returns ``(x0, y0, cell, nx, ny, cell_start, entry_box, entry_id, vxy, lists)``: cell
    ``(a, b)`` (column ``a = floor((x - x0) / cell)``, row ``b``) has the entries ``e``
    in ``cell_start[b * nx + a]:cell_start[b * nx + a + 1]``, one per internal zone
    whose metre bounding box (widened by 1 mm) overlaps it, in zone order. An entry's
    rows hold what rejects most entries without reading the zone's own rows:
    ``entry_box[e]`` is the zone's metre box (the index's ``mbox`` row, the same
    numbers); ``entry_id[e]`` its internal zone, its position,
    1 when that has a time window (``active_from`` or ``active_to`` other than -inf,
    +inf; 0: always active, the window is not read) and, for a zone of one ring, the
    range ``v0, v1`` of its vertices in ``vxy`` (else -1, -1): a copy of the index's
    ``mx``, ``my`` of those zones, x and y side by side. ``nx = 0``: no grid (no
    fenced box, or an extent so large that the cells would be coarse); the kernels
    then search the index's grid. Every nearest-box candidate (``fenced`` and
    ``fenced & open``) is a fenced box, so the grid holds every zone those searches
    may return. ``lists``: each cell's near boxes (:func:`_near_lists`).
    """
    z = index._grid.inv_perm[np.flatnonzero(fenced)]
    no_rows = (np.zeros((0, 4)), np.zeros((0, 5), np.int32), np.zeros((0, 2)))
    no_lists = (np.zeros(1, np.int32), np.zeros(0, np.float32), np.zeros((0, 2)))
    none = (0.0, 0.0, 1.0, 0, 0, np.zeros(1, np.int32), *no_rows, no_lists)
    if len(z) == 0:
        return none
    mb = index._grid.mbox[z]
    eps = _BOX_GRID_EPS_M
    x0 = float(mb[:, 0].min()) - 2 * eps
    y0 = float(mb[:, 1].min()) - 2 * eps
    w = float(mb[:, 2].max()) + 2 * eps - x0
    h = float(mb[:, 3].max()) + 2 * eps - y0
    cell = max(_BOX_CELL_M, math.sqrt(w * h / _BOX_GRID_CELLS))
    if not math.isfinite(cell) or cell > _BOX_GRID_MAX_CELL_M:
        return none
    nx = int(w // cell) + 1
    ny = int(h // cell) + 1
    i0 = np.floor((mb[:, 0] - eps - x0) / cell).astype(np.int64).clip(0, nx - 1)
    i1 = np.floor((mb[:, 2] + eps - x0) / cell).astype(np.int64).clip(0, nx - 1)
    j0 = np.floor((mb[:, 1] - eps - y0) / cell).astype(np.int64).clip(0, ny - 1)
    j1 = np.floor((mb[:, 3] + eps - y0) / cell).astype(np.int64).clip(0, ny - 1)
    wi = i1 - i0 + 1
    per = wi * (j1 - j0 + 1)
    owner = np.repeat(np.arange(len(z)), per)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)
    cells = (j0[owner] + k // wi[owner]) * nx + i0[owner] + k % wi[owner]
    order = np.lexsort((z[owner], cells))
    cell_start = np.zeros(nx * ny + 1, np.int32)
    np.cumsum(np.bincount(cells, minlength=nx * ny), out=cell_start[1:])
    ez = z[owner][order]
    pos = index._grid.perm[ez]
    zs = index.zone_set
    windowed = (zs.active_from[pos] != -np.inf) | (zs.active_to[pos] != np.inf)
    entry_box = np.ascontiguousarray(index._grid.mbox[ez], dtype=np.float64)
    # the vertices of the zones of one ring, (x, y) side by side, zone after zone
    g = index._grid
    uz = np.unique(ez)
    zr = g.zone_ring_start
    one = zr[uz + 1] - zr[uz] == 1
    a0 = g.ring_start[zr[uz]]
    cnt = np.where(one, g.ring_start[np.minimum(zr[uz] + 1, len(g.ring_start) - 1)] - a0, 0)
    start = np.cumsum(cnt) - cnt
    idx = np.repeat(a0, cnt) + np.arange(int(cnt.sum())) - np.repeat(start, cnt)
    vxy = np.ascontiguousarray(np.column_stack((g.mx[idx], g.my[idx])), dtype=np.float64)
    u = np.searchsorted(uz, ez)
    v0 = np.where(one[u], start[u], -1)
    v1 = np.where(one[u], start[u] + cnt[u], -1)
    entry_id = np.ascontiguousarray(np.column_stack((ez, pos, windowed, v0, v1)).astype(np.int32))
    grid = (x0, y0, cell, nx, ny, cell_start, _aligned(entry_box), entry_id, _aligned(vxy))
    return (*grid, _near_lists(grid, len(g.perm)))


def _aligned(a: np.ndarray, align: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``a`` that starts on an ``align``-byte boundary.

    numpy aligns to 16 bytes, so half of the box grid's 32-byte rows would straddle
    two cache lines (measured ~10 ns a check slower than these)."""
    buf = np.empty(a.nbytes + align, np.uint8)
    off = -buf.ctypes.data % align
    out = buf[off : off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


_SERVICE_CELL_DEG = 0.0025  # service-area map cell (~250 m; the index's tiles are 0.01)


_SERVICE_MAP_CELLS = 1 << 20  # at most this many cells (1 MiB); coarser for larger areas


_SERVICE_EDGE_FRAC = 1e-4  # fixes this close to a cell's side (a share of it) test exactly


_SVC_OUT, _SVC_IN, _SVC_EDGE = 0, 1, 2


_NO_SERVICE_MAP = (0.0, 0.0, 1.0, 0, 0, np.zeros(1, np.int8))


@functools.lru_cache(maxsize=8)
def _service_map(service: ZoneIndex) -> tuple[float, float, float, int, int, np.ndarray]:
    """A lon/lat cell map of the service area, so that most fixes skip its exact test.

    Returns ``(x0, y0, 1 / cell, nx, ny, state)``: cell ``(a, b)``, at column
    ``a = floor((lon - x0) / cell)`` and row ``b``, is ``_SVC_IN`` when one piece of the
    service index contains the cell shrunk by half ``_SERVICE_EDGE_FRAC`` of its side,
    ``_SVC_OUT`` when no piece meets the shrunk cell, and ``_SVC_EDGE`` otherwise. The
    kernel locates fixes in edge cells, and those within ``_SERVICE_EDGE_FRAC`` of a
    cell's side, in the service index itself; every other fix lies well inside or
    outside every piece, where the index's even-odd test cannot err. Points off the
    map (two cells around the pieces) are outside. Cells are coarser where the area
    would need more than ``_SERVICE_MAP_CELLS`` of them (above 6 square degrees; no
    cell then fits in one tile, and the map only settles the fixes outside).
    """
    geoms = service.zone_set.geometry
    if len(geoms) == 0:
        return _NO_SERVICE_MAP  # no piece: every fix is off the map, outside
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    cell = max(_SERVICE_CELL_DEG, math.sqrt((maxx - minx) * (maxy - miny) / _SERVICE_MAP_CELLS))
    x0 = (math.floor(minx / cell) - 2) * cell  # 0.0025: cells line up with the tiles
    y0 = (math.floor(miny / cell) - 2) * cell
    nx = int((maxx - x0) // cell) + 3
    ny = int((maxy - y0) // cell) + 3
    # only cells near a piece's bounding box can meet it: the others stay outside
    # without a geometry each (making every cell's box was most of the build)
    near = np.zeros((ny, nx), bool)
    b = shapely.bounds(geoms)
    a0 = np.clip(np.floor((b[:, 0] - x0) / cell).astype(np.int64) - 1, 0, nx - 1)
    a1 = np.clip(np.floor((b[:, 2] - x0) / cell).astype(np.int64) + 1, 0, nx - 1)
    b0 = np.clip(np.floor((b[:, 1] - y0) / cell).astype(np.int64) - 1, 0, ny - 1)
    b1 = np.clip(np.floor((b[:, 3] - y0) / cell).astype(np.int64) + 1, 0, ny - 1)
    for i in range(len(b)):
        near[b0[i] : b1[i] + 1, a0[i] : a1[i] + 1] = True
    idx = np.flatnonzero(near.ravel())
    gx = x0 + cell * (idx % nx)
    gy = y0 + cell * (idx // nx)
    m = 0.5 * _SERVICE_EDGE_FRAC * cell
    cells = shapely.box(gx + m, gy + m, gx + cell - m, gy + cell - m)
    tree = shapely.STRtree(geoms)
    state = np.full(nx * ny, _SVC_OUT, np.int8)
    state[idx[np.unique(tree.query(cells, predicate="intersects")[0])]] = _SVC_EDGE
    state[idx[np.unique(tree.query(cells, predicate="within")[0])]] = _SVC_IN
    return x0, y0, 1.0 / cell, nx, ny, state


_LIST_K = 4  # lists answer searches for up to this many boxes (the candidates, the nearest)


_LIST_SLACK_M = 10.0  # see _near_lists


# cells whose list would reach farther than this, or hold more boxes, have none;
# measured on the bench (Zhuhai, 100 m cells): 250 m / 64 boxes left ~19 % of the
# trip ends to the walk, 600 / 128 ~80 ns a consumer check faster (14 MB of lists)
_LIST_MAX_U_M = 600.0


_LIST_MAX_LEN = 128


_LIST_MAX_ROWS_PER_BOX = 64  # at most this many rows a fenced box (nearest cells first)


@_jit_inline
def _near_list_members(x0, y0, cell, nx, ny, cstart, gbox, gid, a, b, u, stamp, tag, rows, w):
    """How many boxes have their metre box within ``u`` of cell (a, b) (each once:
    ``stamp[zone] = tag``); from ``w >= 0`` on, their rows (distance, entry) too."""
    ax0 = x0 + a * cell
    ay0 = y0 + b * cell
    r2 = np.int64(u // cell) + 1
    m = 0
    for bb in range(max(b - r2, 0), min(b + r2, ny - 1) + 1):
        for aa in range(max(a - r2, 0), min(a + r2, nx - 1) + 1):
            c = bb * nx + aa
            for f in range(cstart[c], cstart[c + 1]):
                z = gid[f, 0]
                if stamp[z] == tag:
                    continue
                dx = max(gbox[f, 0] - (ax0 + cell), 0.0, ax0 - gbox[f, 2])
                dy = max(gbox[f, 1] - (ay0 + cell), 0.0, ay0 - gbox[f, 3])
                d = math.sqrt(dx * dx + dy * dy)
                if d <= u:
                    stamp[z] = tag
                    if w >= 0:
                        rows[w + m, 0] = d
                        rows[w + m, 1] = f
                    m += 1
    return m


@_jit
def _near_list_bounds(x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, kk, slack, umax, lmax):
    """The reach ``u`` of each of ``cells``' lists (-1: none) and their lengths."""
    reach = np.full(len(cells), -1.0)
    count = np.zeros(len(cells), np.int64)
    stamp = np.full(nz, -1, np.int64)
    rows0 = np.empty((0, 2))
    best = np.empty(kk)
    half = cell * math.sqrt(0.5)
    rr = np.int64(umax // cell) + 1
    for n in range(len(cells)):
        a = cells[n] % nx
        b = cells[n] // nx
        cx = x0 + (a + 0.5) * cell
        cy = y0 + (b + 0.5) * cell
        for j in range(kk):
            best[j] = np.inf
        for bb in range(max(b - rr, 0), min(b + rr, ny - 1) + 1):
            for aa in range(max(a - rr, 0), min(a + rr, nx - 1) + 1):
                c = bb * nx + aa
                for f in range(cstart[c], cstart[c + 1]):
                    z = gid[f, 0]
                    if stamp[z] == 2 * n:
                        continue
                    stamp[z] = 2 * n
                    dx = max(gbox[f, 0] - cx, 0.0, cx - gbox[f, 2])
                    dy = max(gbox[f, 1] - cy, 0.0, cy - gbox[f, 3])
                    d = math.sqrt(dx * dx + dy * dy)
                    j = kk - 1
                    if d < best[j]:
                        while j > 0 and best[j - 1] > d:
                            best[j] = best[j - 1]
                            j -= 1
                        best[j] = d
        u = best[kk - 1] + half + slack
        if not u <= umax:
            continue
        m = _near_list_members(
            x0, y0, cell, nx, ny, cstart, gbox, gid, a, b, u, stamp, 2 * n + 1, rows0, -1
        )
        if m <= lmax:
            reach[n] = u
            count[n] = m
    return reach, count


@_jit
def _near_list_rows(x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, reach, start, rows):
    """Fill each listed cell's rows (distance of the metre box from the cell, entry),
    nearest first."""
    stamp = np.full(nz, -1, np.int64)
    for n in range(len(cells)):
        u = reach[n]
        if u < 0.0:
            continue
        a = cells[n] % nx
        b = cells[n] // nx
        w = start[n]
        w += _near_list_members(x0, y0, cell, nx, ny, cstart, gbox, gid, a, b, u, stamp, n, rows, w)
        seg = rows[start[n] : w]
        order = np.argsort(seg[:, 0], kind="mergesort")
        seg[:] = seg[order]


def _near_lists(grid: tuple[Any, ...], nz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of the box grid, the fenced boxes that may be nearest to a fix in it.

    ``(start, reach, rows)``: cell ``c``'s rows ``start[c]:start[c + 1]`` are
    (distance of the box's metre box from the cell, box grid entry) for every
    fenced box within ``reach[c]`` of the cell (one entry per box), nearest first;
    ``reach[c] < 0``: no list. The reach is the distance from the cell's centre to
    its ``_LIST_K``-th nearest metre box, plus the cell's half diagonal and
    ``_LIST_SLACK_M`` (a box's metre box is nearer than the box): enough, for most
    fixes in the cell, to hold their ``_LIST_K`` nearest boxes and leave the check
    of :func:`_list_nearest` true. Cells whose list would reach beyond
    ``_LIST_MAX_U_M`` or hold more than ``_LIST_MAX_LEN`` boxes get none (the
    search walks the grid there), and so do those of the longest reach once the
    rows would exceed ``_LIST_MAX_ROWS_PER_BOX`` a box.
    """
    x0, y0, cell, nx, ny, cstart, gbox, gid, _ = grid
    ncell = nx * ny
    start = np.zeros(ncell + 1, np.int32)
    reach32 = np.full(ncell, -1.0, np.float32)
    if ncell == 0 or len(gbox) == 0:
        return start, reach32, np.zeros((0, 2))
    # the cells within r cells of an occupied one (the others' lists would reach
    # farther than _LIST_MAX_U_M): a box sum over the occupied cells' prefix sums
    occupied = (np.diff(cstart) > 0).reshape(ny, nx)
    r = int(_LIST_MAX_U_M // cell) + 1
    acc = np.zeros((ny + 1, nx + 1), np.int64)
    acc[1:, 1:] = occupied.cumsum(0).cumsum(1)
    lo_y = np.clip(np.arange(ny) - r, 0, ny)[:, None]
    hi_y = np.clip(np.arange(ny) + r + 1, 0, ny)[:, None]
    lo_x = np.clip(np.arange(nx) - r, 0, nx)[None, :]
    hi_x = np.clip(np.arange(nx) + r + 1, 0, nx)[None, :]
    near = acc[hi_y, hi_x] - acc[lo_y, hi_x] - acc[hi_y, lo_x] + acc[lo_y, lo_x] > 0
    cells = np.flatnonzero(near.ravel())
    reach, count = _near_list_bounds(
        x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, _LIST_K, _LIST_SLACK_M,
        _LIST_MAX_U_M, _LIST_MAX_LEN,
    )  # fmt: skip
    # bound the memory: beyond _LIST_MAX_ROWS_PER_BOX rows a fenced box, the cells
    # of the longest reach lose their lists first
    budget = _LIST_MAX_ROWS_PER_BOX * len(np.unique(gid[:, 0]))
    if count.sum() > budget:
        by_reach = np.argsort(reach, kind="stable")
        drop = by_reach[np.cumsum(count[by_reach]) > budget]
        reach[drop] = -1.0
        count[drop] = 0
    cstart_rows = np.cumsum(count) - count
    rows = np.empty((int(count.sum()), 2))
    _near_list_rows(x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, reach, cstart_rows, rows)
    counts = np.zeros(ncell, np.int32)
    counts[cells] = count
    np.cumsum(counts, out=start[1:])
    # float32, rounded down: every box within the stored reach is still on the list
    r32 = reach.astype(np.float32)
    r32 = np.where(r32 > reach, np.nextafter(r32, np.float32(-1.0)), r32)
    reach32[cells] = np.where(reach < 0.0, -1.0, r32)
    return start, reach32, rows


@_jit
def _ring_closest(v0, v1, px, py, vxy):
    """:func:`geofence._kernels.zone_closest` of a zone of one ring, ``vxy[v0:v1]``.

    The same operations in the same order (the same numbers), on the box grid's copy
    of the ring: one read for x and y, and no ring tables. The edge loop is a copy of
    that function's on purpose (``duplicates`` reports it; issue 17 left it): a shared
    per-edge helper would live in :mod:`geofence._kernels` and be inlined here, outside
    this package's cache stamp (:mod:`geofence.decisions._jit`: numba judges a cached
    kernel by its own file), so an edit of the helper would leave these kernels loading
    stale code; making the stamp cover ``_kernels.py`` and measuring that the inlined
    helper costs nothing (``bench.decisions``, interleaved) is the way to share it.
    """
    inside = False
    best = np.inf
    bx = px
    by = py
    for i in range(v0, v1 - 1):
        x1 = vxy[i, 0]
        y1 = vxy[i, 1]
        x2 = vxy[i + 1, 0]
        y2 = vxy[i + 1, 1]
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


_MEMO = 16  # _zone_closest results kept per check (see _grid_nearest)


_CELL_BUF = 32  # a cell's candidates sorted at a time (see _grid_nearest)


@_jit_inline
def _box_d2(gbox, f, qx, qy):
    """Squared distance from (qx, qy) to box grid entry f's metre box."""
    dx = max(gbox[f, 0] - qx, 0.0, qx - gbox[f, 2])
    dy = max(gbox[f, 1] - qy, 0.0, qy - gbox[f, 3])
    return dx * dx + dy * dy


@_jit_inline
def _entry_open(gid, f, mask, active_from, active_to, t, t_some, t_all):
    """Entry f's box is in ``mask`` and active at t (its window read only where the
    row flags one, or at t = +inf; none at t = NaN: see :func:`_grid_nearest`)."""
    p = gid[f, 1]
    if not mask[p]:
        return False
    if t_some and (gid[f, 2] != 0 or t_all):
        return active_from[p] <= t < active_to[p]
    return True


@_jit_inline
def _measured(gid, f, qx, qy, memo, gv, mx, my, rs, zrs):
    """Entry f's box's :func:`_zone_closest` distance at (qx, qy), 0 inside: from the
    memo, or computed (its own ring copy for a box of one ring) and kept there."""
    p = gid[f, 1]
    mlast = memo.shape[0] - 1
    n = np.int64(memo[mlast, 0])
    j = 0
    while j < n and memo[j, 0] != p:
        j += 1
    if j < n:
        d = memo[j, 1]
    else:
        if gid[f, 3] >= 0:  # one ring: its own copy, no ring tables
            d, cx, cy = _ring_closest(gid[f, 3], gid[f, 4], qx, qy, gv)
        else:
            d, cx, cy = _zone_closest(gid[f, 0], qx, qy, mx, my, rs, zrs)
        if n < mlast:
            memo[n, 0] = p
            memo[n, 1] = d
            memo[n, 2] = cx
            memo[n, 3] = cy
            memo[mlast, 0] = n + 1
    if d < 0.0:
        d = 0.0
    return d


@_jit_inline
def _grid_nearest(
    qx, qy, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist, i, buf,
    memo, bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, mx, my, rs, zrs,
):  # fmt: skip
    """:func:`geofence._kernels.nearest_one` over the fenced-box grid (see :func:`_box_grid`).

    The same answer for masks of fenced boxes: the k candidates of least (distance,
    position) among those that lie within ``max_distance``. (``nearest_one`` also
    requires a candidate's lon/lat box to meet a query box around the fix; that box
    holds every point within ``max_distance`` metres, so a box that lies within it in
    EPSG:4547 metres, which are never shorter than the true ones, passes that test:
    the answers agree without it.) Rings of cells around the fix, nearest first, until a
    ring is farther than the k-th best; cells farther than it are skipped (a box's
    nearest point to the fix lies in one of its cells). Each entry is tested first on
    its own row (the metre box); only those that pass read
    the zone's rows, and the time window only where the row flags one. A cell's
    candidates are then measured nearest metre box first (sorted in ``buf``, rows of
    squared metre-box distance and entry), so that the k-th best shrinks early and
    the farther ones are skipped; the ring of each (the grid's copy, see
    :func:`_box_grid`) is prefetched when it is buffered.

    ``memo`` rows ``0 .. memo[-1, 0] - 1`` hold (position, signed distance, closest
    x, y) of the boxes whose :func:`_zone_closest` at (qx, qy) is known; the search
    reads and extends it (the caller empties it for each check, and reads the
    decided zone's distance and the nearest boxes' closest points from it).
    """
    for j in range(k):
        out_pos[i, j] = -1
        out_dist[i, j] = np.inf
    if not (math.isfinite(qx) and math.isfinite(qy)):
        return
    nbuf = buf.shape[0]
    ca = math.floor((qx - bx0) / bcell)
    cb = math.floor((qy - by0) / bcell)
    if not (abs(ca) < 1e9 and abs(cb) < 1e9):
        return
    ca = np.int64(ca)
    cb = np.int64(cb)
    # the time window is tested for the boxes that have one; for every box at t = +inf
    # (where -inf <= t < +inf fails too), for none at t = NaN
    t_some = t == t
    t_all = t == math.inf
    r = 0
    while True:
        limit = min(max_distance, out_dist[i, k - 1])
        if r > 0:
            # every cell of ring r and beyond lies outside the square of the inner
            # rings: at least this far from the fix (less a hair for rounding)
            near = min(
                qx - (bx0 + (ca - r + 1) * bcell),
                (bx0 + (ca + r) * bcell) - qx,
                qy - (by0 + (cb - r + 1) * bcell),
                (by0 + (cb + r) * bcell) - qy,
            )
            if near - 1e-6 > limit:
                break
            if ca - r < 0 and cb - r < 0 and ca + r >= bnx and cb + r >= bny:
                break  # the ring is outside the grid, and so is every later one
        for b in range(max(cb - r, 0), min(cb + r, bny - 1) + 1):
            edge_row = b == cb - r or b == cb + r
            cy0 = by0 + b * bcell
            gy = max(cy0 - qy, 0.0, qy - (cy0 + bcell))
            if gy - 1e-6 > limit:
                continue
            a = max(ca - r, 0)
            a_end = min(ca + r, bnx - 1)
            while a <= a_end:
                if not edge_row and a != ca - r and a != ca + r:
                    # inside the ring: jump to its right column
                    a = ca + r
                    continue
                cell = b * bnx + a
                cx0 = bx0 + a * bcell
                a += 1
                gx = max(cx0 - qx, 0.0, qx - (cx0 + bcell))
                if gx * gx + gy * gy > (limit + 1e-6) * (limit + 1e-6):
                    continue  # the cell is farther than the k-th best
                e = bstart[cell]
                e_end = bstart[cell + 1]
                while e < e_end:
                    # the cell's candidates (as many as buf holds), nearest metre box
                    # first: the k-th best shrinks before the farther ones are met
                    nc = 0
                    while e < e_end and nc < nbuf:
                        f = e
                        e += 1
                        d2 = _box_d2(gbox, f, qx, qy)
                        if d2 > limit * limit:
                            continue
                        if not _entry_open(gid, f, mask, active_from, active_to, t, t_some, t_all):
                            continue
                        if gid[f, 3] >= 0:
                            _kernels._prefetch(gv, 2 * gid[f, 3])  # its ring, measured soon
                        c = nc
                        while c > 0 and buf[c - 1, 0] > d2:
                            buf[c, 0] = buf[c - 1, 0]
                            buf[c, 1] = buf[c - 1, 1]
                            c -= 1
                        buf[c, 0] = d2
                        buf[c, 1] = f
                        nc += 1
                    for c in range(nc):
                        if buf[c, 0] > limit * limit:
                            break  # and so are the rest
                        f = np.int64(buf[c, 1])
                        p = gid[f, 1]
                        seen = False
                        for j in range(k):
                            if out_pos[i, j] == p:
                                seen = True  # met in an earlier cell
                        if seen:
                            continue
                        d = _measured(gid, f, qx, qy, memo, gv, mx, my, rs, zrs)
                        if d <= max_distance:
                            _insert(out_pos, out_dist, i, k, p, d)
                            limit = min(max_distance, out_dist[i, k - 1])
        r += 1


@_jit_inline
def _list_nearest(
    qx, qy, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist, i,
    memo, bx0, by0, bcell, bnx, bny, lists, gbox, gid, gv, mx, my, rs, zrs,
):  # fmt: skip
    """:func:`_grid_nearest` from the fix's cell's list of near boxes (see :func:`_near_lists`).

    Returns False when the list cannot answer (the cell has none, or a box beyond
    it might belong to the answer): the caller then walks the grid. Otherwise the
    answer is the walk's: the list holds every fenced box whose metre box lies within
    ``u`` of the cell, nearest to the cell first; its candidates pass the walk's own
    tests (metre box, mask, time window) and are measured the same
    way (the memo, :func:`_ring_closest`, :func:`_zone_closest`); a box not on the
    list is farther than ``u`` from the fix, so when the k-th best (or
    ``max_distance``) is nearer than ``u`` no such box can enter the answer.
    """
    lstart, lu, lrows = lists
    for j in range(k):
        out_pos[i, j] = -1
        out_dist[i, j] = np.inf
    if not (math.isfinite(qx) and math.isfinite(qy)):
        return True  # the walk answers nothing too
    fa = (qx - bx0) / bcell
    fb = (qy - by0) / bcell
    if not (0.0 <= fa < bnx and 0.0 <= fb < bny):
        return False
    cell = np.int64(fb) * bnx + np.int64(fa)
    u = lu[cell] - 1e-6
    if u < 0.0:
        return False
    t_some = t == t
    t_all = t == math.inf
    limit = max_distance
    for r in range(lstart[cell], lstart[cell + 1]):
        if lrows[r, 0] - 1e-6 > limit:
            break  # this box and the rest are farther from the cell than the k-th best
        f = np.int64(lrows[r, 1])
        if _box_d2(gbox, f, qx, qy) > limit * limit:
            continue
        if not _entry_open(gid, f, mask, active_from, active_to, t, t_some, t_all):
            continue
        d = _measured(gid, f, qx, qy, memo, gv, mx, my, rs, zrs)
        if d <= max_distance:
            _insert(out_pos, out_dist, i, k, gid[f, 1], d)
            limit = min(max_distance, out_dist[i, k - 1])
    return out_dist[i, k - 1] < u or max_distance < u
