"""The spatial index over a zone set: covering zone and nearest zones, vectorized."""

from __future__ import annotations

import functools
import time
from functools import cached_property
from typing import Any

import numpy as np
import shapely

from geofence import _kernels
from geofence import crs as _crs
from geofence.zoneset import KIND_NO_PARKING, ZoneSet

__all__ = ["ZoneIndex"]

_MAX_LEVEL = 14
_LEVEL_RATIO = 4
_CELL_PER_ZONE = 12.0
# a zone may span up to this many cells (per axis) of its level: no-parking areas a
# few hundred metres across then share the boxes' level and a point probes one cell
# instead of one per level (measured: 1.5x faster locate at 18,000 zones)
_SPAN = 16


def _morton(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Interleave the bits of two non-negative integer arrays (Z-order key)."""

    def spread(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
        for shift, mask in (
            (16, 0x0000FFFF0000FFFF),
            (8, 0x00FF00FF00FF00FF),
            (4, 0x0F0F0F0F0F0F0F0F),
            (2, 0x3333333333333333),
            (1, 0x5555555555555555),
        ):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    return spread(x) | (spread(y) << np.uint64(1))


def _flatten(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Polygons/MultiPolygons -> (vx, vy, ring_start, zone_ring_start).

    Through shapely's ragged arrays: no geometry object per part or ring (a third of
    the build at 1,000,000 zones went to creating them)."""
    if len(geoms) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(1, np.int64), np.zeros(1, np.int64)
    kind, coords, offsets = shapely.to_ragged_array(geoms, include_z=False)
    ring_start = offsets[0].astype(np.int64)
    zone_ring_start = offsets[1].astype(np.int64)
    if kind == shapely.GeometryType.MULTIPOLYGON:  # rings per polygon, polygons per zone
        zone_ring_start = zone_ring_start[offsets[2]]
    return (
        np.ascontiguousarray(coords[:, 0]),
        np.ascontiguousarray(coords[:, 1]),
        ring_start,
        zone_ring_start,
    )


def _aligned_empty(shape: tuple[int, ...], dtype, align: int = 64) -> np.ndarray:
    """An empty C-contiguous array whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + align, np.uint8)
    skip = -buf.ctypes.data % align
    return buf[skip : skip + nbytes].view(dtype).reshape(shape)


def _entry_frames(
    vxy: np.ndarray,
    ring_start: np.ndarray,
    zone_ring_start: np.ndarray,
    zone: np.ndarray,
    ox: np.ndarray,
    oy: np.ndarray,
    box: np.ndarray,
    pos: np.ndarray,
    cell: np.ndarray,
) -> np.ndarray:
    """Bulk locate's row per cell entry: eight 4-byte slots, 32 bytes, 64-byte aligned.

    Coordinates are relative to the entry's cell origin ``(ox, oy)``, so float32 holds
    them to a few micrometres. A zone of one ring of four corners that is a
    parallelogram ``c0 + s a + t b`` (0 <= s, t <= 1; every box drawn as a rotated
    rectangle is one in lon/lat) stores ``c0`` and the inverse of the matrix
    ``[a b]``: slots 0-1 ``c0``, 2-3 and 4-5 the rows giving ``s`` and ``t``, 6 the
    position, 7 the ring's first vertex. The kernel then answers inside when both
    ``s`` and ``t`` are within ``[tau, 1 - tau]`` and outside when one is beyond
    ``[-tau, 1 + tau]`` (``tau = _kernels.FRAME_TOL``); in the band between, the
    exact test on the float64 vertices decides. A zone is stored so only where the
    float32 rounding, the corner's distance from the parallelogram and the worst
    point of the cell move ``s`` and ``t`` by less than ``tau / 2`` together. Any
    other entry (holes, more corners, non-parallelograms) stores its bounding box
    rounded outwards in slots 0-3 and -1 in slot 7: the kernel tests the box, then
    the zone's rings.
    """
    e = len(zone)
    rows = _aligned_empty((e, 8), np.int32)
    f = rows.view(np.float32)
    rows[:, 6] = pos
    ring = np.minimum(zone_ring_start[zone], len(ring_start) - 2)
    a = ring_start[ring]
    quad = (zone_ring_start[zone + 1] - zone_ring_start[zone] == 1) & (
        ring_start[ring + 1] - a == 5
    )
    aq = np.where(quad, a, 0)
    cx = vxy[aq[:, None] + np.arange(4), 0] - ox[:, None]
    cy = vxy[aq[:, None] + np.arange(4), 1] - oy[:, None]
    c0x = cx[:, 0].astype(np.float32)
    c0y = cy[:, 0].astype(np.float32)
    ax, ay = cx[:, 1] - cx[:, 0], cy[:, 1] - cy[:, 0]
    bx, by = cx[:, 3] - cx[:, 0], cy[:, 3] - cy[:, 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        det = ax * by - ay * bx
        inv = np.stack([by / det, -bx / det, -ay / det, ax / det], axis=1)
        inv32 = inv.astype(np.float32)
        norm = np.abs(inv).reshape(-1, 2, 2).sum(axis=2).max(axis=1)
        # what moves s and t: the stored c0 against the true one, the fourth corner
        # against the parallelogram's, float32 coefficients times the farthest point
        # of the cell, the rounding of the cell origin
        shift = np.abs(c0x - cx[:, 0]) + np.abs(c0y - cy[:, 0])
        off = np.abs(cx[:, 2] - cx[:, 1] - bx) + np.abs(cy[:, 2] - cy[:, 1] - by)
        far = np.maximum(np.abs(cx[:, 0]), np.abs(cy[:, 0])) + cell
        origin = 4 * (np.spacing(np.abs(ox)) + np.spacing(np.abs(oy)))
        err = norm * (shift + off + 2.0**-22 * far + origin)
        frame = quad & np.isfinite(inv32).all(axis=1) & (err < _kernels.FRAME_TOL / 2)
    f[:, 0] = np.where(frame, c0x, _round32(box[:, 0] - ox, -np.inf))
    f[:, 1] = np.where(frame, c0y, _round32(box[:, 1] - oy, -np.inf))
    f[:, 2] = np.where(frame, inv32[:, 0], _round32(box[:, 2] - ox, np.inf))
    f[:, 3] = np.where(frame, inv32[:, 1], _round32(box[:, 3] - oy, np.inf))
    f[:, 4:6] = np.where(frame[:, None], inv32[:, 2:], 0.0)
    rows[:, 7] = np.where(frame, a, -1)
    return rows


def _round32(v: np.ndarray, towards: float) -> np.ndarray:
    """float32 of ``v``, rounded towards ``towards`` (-inf or inf) where inexact."""
    r = v.astype(np.float32)
    wrong = r < v if towards > 0 else r > v
    return np.where(wrong, np.nextafter(r, np.float32(towards)), r)


@functools.lru_cache(maxsize=8)
def _service_index(area: shapely.Geometry, tile_deg: float = 0.01) -> ZoneIndex:
    """Index the service area as tiles: whole squares inside, clipped pieces on the edge.

    Cached per area: every zone-set version of a city shares its service area.
    """
    minx, miny, maxx, maxy = shapely.bounds(area)
    ix = np.arange(np.floor(minx / tile_deg), np.ceil(maxx / tile_deg))
    iy = np.arange(np.floor(miny / tile_deg), np.ceil(maxy / tile_deg))
    gx, gy = (a.ravel() * tile_deg for a in np.meshgrid(ix, iy))
    tiles = shapely.box(gx, gy, gx + tile_deg, gy + tile_deg)
    inside = shapely.contains_properly(area, tiles)
    edge = ~inside & shapely.intersects(area, tiles)
    clipped = shapely.get_parts(shapely.intersection(tiles[edge], area))
    clipped = clipped[shapely.get_type_id(clipped) == 3]  # polygons (drop slivers' lines)
    pieces = np.concatenate([tiles[inside], clipped])
    pieces = pieces[shapely.area(pieces) > 0]
    ids = np.char.add("service-", np.arange(len(pieces)).astype(str))
    return ZoneIndex(ZoneSet.from_arrays(pieces, ids))


class ZoneIndex:
    """Spatial index over a :class:`~geofence.ZoneSet`: which zone covers a fix, which are near.

    Positions in, positions out: answers are integer positions into the zone set's
    arrays (``-1`` for none), never copies of zones. The index is immutable; to
    change zones, build a new index and swap the reference.

    Structure: a hierarchical hashed grid in lon/lat. A zone is registered, at the
    smallest level whose cells (``s0 * 4**level`` degrees) are at least 1/16 of its
    size, in each cell its bounding box overlaps; a query probes one cell per
    occupied level (usually one level: boxes and areas up to ~3 km share level 0).
    Zones of every size (2 m boxes and no-parking areas kilometres across) cost
    the same, and build is a sort. See the README's
    performance section for the measurements behind this choice.

    Edge rule: a fix exactly on a zone's edge or vertex is inside it. Where zones
    overlap, ``locate`` returns a parking box before a no-parking area, then the
    zone of smaller area, then the lower position.

    Parameters
    ----------
    zone_set : ZoneSet
    service_area : shapely geometry, optional
        The operating area (WGS-84 lon/lat); decisions for bikes outside it say
        ``outside_service_area``. Indexed as tiles of 0.01 degrees.
    cell_size_deg : float, optional
        Base cell size in degrees; defaults to the 90th percentile of zone sizes.

    Examples
    --------
    >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
    ...   "id": "A", "properties": {"kind": "parking", "fenced": True},
    ...   "geometry": {"type": "Polygon", "coordinates": [[[113.55, 22.25],
    ...     [113.55008, 22.25], [113.55008, 22.25002], [113.55, 22.25002], [113.55, 22.25]]]}}]}
    >>> ix = ZoneIndex(ZoneSet.from_geojson(fc))
    >>> ix.locate([113.55004, 113.551], [22.25001, 22.25]).tolist()
    [0, -1]
    >>> pos, dist = ix.nearest([113.5501], [22.25001], k=1, max_distance_m=50)
    >>> pos.tolist(), round(float(dist[0, 0]), 2)
    ([[0]], 2.06)
    """

    def __init__(
        self,
        zone_set: ZoneSet,
        *,
        cell_size_deg: float | None = None,
        service_area: shapely.Geometry | None = None,
    ) -> None:
        t0 = time.perf_counter()
        self.zone_set = zone_set
        self.service_area = service_area
        self.service_index = None if service_area is None else _service_index(service_area)
        n = len(zone_set)
        b = shapely.bounds(zone_set.geometry) if n else np.zeros((0, 4))
        size = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        if cell_size_deg is None:
            # level-0 cells hold nearly every box; a few boxes per cell is cheaper
            # than probing more cells (measured: bench/results/engine.json)
            cell_size_deg = _CELL_PER_ZONE * float(np.percentile(size, 90)) if n else 1e-3
        # keep cell numbers inside the 29 bits the key packs them into
        self.cell_size_deg = s0 = max(float(cell_size_deg), 1e-6)
        # internal order: zones sorted along a Z-order curve of their level-0 cell, so
        # that neighbours in space are neighbours in memory; kernels map back to
        # positions through ``_perm``
        if n:
            cx = np.floor((b[:, 0] + b[:, 2]) / (2 * s0))
            cy = np.floor((b[:, 1] + b[:, 3]) / (2 * s0))
            self._perm = np.argsort(_morton(cx - cx.min(), cy - cy.min()), kind="stable").astype(
                np.int64
            )
        else:
            self._perm = np.zeros(0, np.int64)
        perm = self._perm
        self._inv_perm = np.empty(n, np.int64)
        self._inv_perm[perm] = np.arange(n)
        geoms = zone_set.geometry[perm]
        vx, vy, self._ring_start, self._zone_ring_start = _flatten(geoms)
        self._vxy = np.column_stack([vx, vy])
        self._mx, self._my, _, _ = _flatten(zone_set.geometry_m[perm])
        self._bbox = np.ascontiguousarray(b[perm]).reshape(n, 4)
        bm = shapely.bounds(zone_set.geometry_m[perm]) if n else np.zeros((0, 4))
        self._mbox = np.ascontiguousarray(bm).reshape(n, 4)
        # locate tie-break: parking first, then smaller area, then lower position
        order = np.lexsort((np.arange(n), zone_set.area_m2, zone_set.kind == KIND_NO_PARKING))
        rank = np.empty(n, np.int32)
        rank[order] = np.arange(n, dtype=np.int32)
        self._rank = rank[perm]
        self._build_grid(size[perm], s0)
        self._grid = _kernels.Grid(
            inv_size=self._inv_size,
            levels=self._levels,
            level_min_rank=self._level_min_rank,
            level_zone_start=self._level_zone_start,
            level_zones=self._level_zones,
            table=self._table,
            shift=64 - self._bits,
            entry_zone=self._entry_zone,
            entry_rank=self._entry_rank,
            entry_box=self._entry_box,
            entry_frame=self._entry_frame,
            entry_frame_f=self._entry_frame.view(np.float32),
            cell_size=self._cell_size,
            bbox=self._bbox,
            mbox=self._mbox,
            vxy=self._vxy,
            mx=self._mx,
            my=self._my,
            ring_start=self._ring_start,
            zone_ring_start=self._zone_ring_start,
            perm=self._perm,
            inv_perm=self._inv_perm,
        )
        self._gtuple = tuple(self._grid)  # what the kernels take (see _kernels.G_*)
        g = self._grid
        self._point_args = (  # what _kernels.locate_point takes after the point
            g.levels, g.level_min_rank, g.inv_size, g.table, g.shift, g.entry_rank,
            g.entry_box, g.entry_zone, g.vxy, g.ring_start, g.zone_ring_start, g.perm,
        )  # fmt: skip
        self._point_entry: Any = None  # its compiled function (see _kernels.entry_point)
        self._all = np.ones(n, bool)
        self.build_seconds = time.perf_counter() - t0

    def _build_grid(self, size: np.ndarray, s0: float) -> None:
        n = len(size)
        level = np.zeros(n, np.int64)
        if n:
            ratio = np.log(np.maximum(size, 1e-300) / (s0 * _SPAN)) / np.log(_LEVEL_RATIO)
            level = np.clip(np.ceil(ratio), 0, _MAX_LEVEL).astype(np.int64)
        self._cell_size = s0 * float(_LEVEL_RATIO) ** np.arange(_MAX_LEVEL + 1)
        self._inv_size = 1.0 / self._cell_size
        inv = self._inv_size[level]
        bminx, bminy, bmaxx, bmaxy = self._bbox.T
        cx0 = np.floor(bminx * inv).astype(np.int64)
        cx1 = np.floor(bmaxx * inv).astype(np.int64)
        cy0 = np.floor(bminy * inv).astype(np.int64)
        cy1 = np.floor(bmaxy * inv).astype(np.int64)
        w = cx1 - cx0 + 1
        counts = w * (cy1 - cy0 + 1)
        zone = np.repeat(np.arange(n, dtype=np.int64), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        local = np.arange(len(zone), dtype=np.int64) - first
        cx = cx0[zone] + local % w[zone]
        cy = cy0[zone] + local // w[zone]
        keys = (level[zone] << 58) | ((cx + (1 << 28)) << 29) | (cy + (1 << 28))
        order = np.lexsort((self._rank[zone], keys))
        keys = keys[order]
        zone = zone[order]
        # one row per cell entry: the zone, its rank and its bounding box, contiguous
        self._entry_zone = zone.astype(np.int32)
        self._entry_rank = self._rank[zone]
        self._entry_box = np.ascontiguousarray(self._bbox[zone])
        if len(keys) >= 2**31 or len(self._vxy) >= 2**31:
            raise ValueError(
                f"{len(keys)} cell entries, {len(self._vxy)} vertices: more than an index "
                "holds (2**31 each; entry rows keep them in 32 bits)"
            )
        # bulk locate's 32-byte rows (two a cache line): each entry in the frame of its
        # cell, a box as a parallelogram's inverse frame (see _entry_frames)
        ox = cx[order] * self._cell_size[level[zone]]
        oy = cy[order] * self._cell_size[level[zone]]
        self._entry_frame = _entry_frames(
            self._vxy, self._ring_start, self._zone_ring_start, zone, ox, oy,
            self._entry_box, self._perm[zone], self._cell_size[level[zone]],
        )  # fmt: skip
        ukeys, starts = np.unique(keys, return_index=True)
        ends = np.append(starts[1:], len(keys))
        self._bits = max(4, int(np.ceil(np.log2(max(len(ukeys), 1) * 2))))
        self._table = np.empty((1 << self._bits, 2), np.int64)
        _kernels.build_table(ukeys, starts.astype(np.int64), ends, self._bits, self._table)
        # occupied levels: best rank, zone lists (for wide nearest queries)
        self._levels = np.unique(level).astype(np.int64) if n else np.zeros(0, np.int64)
        self._level_min_rank = np.array(
            [self._rank[level == lv].min() for lv in self._levels], np.int32
        )
        by_level = np.argsort(level, kind="stable")
        self._level_zones = by_level.astype(np.int32)
        self._level_zone_start = np.searchsorted(
            level[by_level], np.append(self._levels, _MAX_LEVEL + 1)
        ).astype(np.int64)

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.zone_set)

    def __repr__(self) -> str:
        return (
            f"<ZoneIndex {len(self)} zones, {int((self._table[:, 0] >= 0).sum())} cells on "
            f"{len(self._levels)} levels, built in {self.build_seconds * 1e3:.0f} ms>"
        )

    @cached_property
    def nbytes(self) -> int:
        """Bytes held by the index's own arrays (not the zone set's geometries)."""
        return sum(
            a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray) and a.dtype != object
        )

    def locate(self, lon, lat, crs: str = "wgs84") -> np.ndarray:
        """Position of the zone covering each fix, or -1.

        Parameters
        ----------
        lon, lat : array_like
            Fix coordinates in ``crs`` (``wgs84``, ``cgcs2000``, ``gcj02`` or ``bd09``).
            Non-finite coordinates give -1.

        Returns
        -------
        numpy.ndarray of int64, shaped like ``lon`` (1-D for a scalar).

        A fix on an edge or a vertex is inside. Where zones overlap, a parking box
        wins over a no-parking area, then the smaller area, then the lower position.

        Examples
        --------
        >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
        ...   "id": "A", "properties": {},
        ...   "geometry": {"type": "Polygon", "coordinates": [[[113.5, 22.2],
        ...     [113.6, 22.2], [113.6, 22.3], [113.5, 22.3], [113.5, 22.2]]]}}]}
        >>> ZoneIndex(ZoneSet.from_geojson(fc)).locate([113.55, 113.5, 113.7], [22.25, 22.2, 22.25])
        array([ 0,  0, -1])
        """
        if type(lon) is float and type(lat) is float and crs == "wgs84":
            # one point: one compiled call, no numpy function on the floats (each
            # costs ~0.3-1 us; the array path below pays ~2.5 us of them)
            ep = self._point_entry
            if ep is None:
                ep = self._point_entry = _kernels.entry_point(
                    _kernels.locate_point, (lon, lat, *self._point_args)
                )
            one = np.empty(1, np.int64)
            one[0] = ep(lon, lat, *self._point_args)
            return one
        lon, lat = self._wgs84(lon, lat, crs)
        out = np.empty(lon.shape, np.int64)
        _kernels.locate(self._gtuple, lon.ravel(), lat.ravel(), out.reshape(-1))
        return out

    def in_service_area(self, lon, lat, crs: str = "wgs84") -> np.ndarray:
        """True where a fix lies in the service area (everywhere when none was given)."""
        if self.service_index is None:
            lon, _ = self._wgs84(lon, lat, crs)
            return np.ones(lon.shape, bool)
        return self.service_index.locate(lon, lat, crs) >= 0

    def nearest(
        self,
        lon,
        lat,
        k: int = 1,
        max_distance_m: float = 50.0,
        crs: str = "wgs84",
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest zones of each fix within ``max_distance_m`` metres.

        Distances are true metric distances to the polygon (not to its bounding
        box), in EPSG:4547: 0 for a fix inside or on the edge of a zone.

        Parameters
        ----------
        lon, lat : array_like, shape (n,)
        k : int
        max_distance_m : float
            Zones farther than this are not returned (``inf`` searches everything).
        crs : str
        mask : bool array over the zones, optional
            Only zones where ``mask`` is true are candidates.

        Returns
        -------
        positions : int64 array (n, k), -1 where fewer than k zones are near
        distances : float64 array (n, k), ``inf`` with -1; rows sorted by distance,
            ties by position.

        Examples
        --------
        >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
        ...   "id": "A", "properties": {},
        ...   "geometry": {"type": "Polygon", "coordinates": [[[113.5, 22.2],
        ...     [113.5001, 22.2], [113.5001, 22.2001], [113.5, 22.2001], [113.5, 22.2]]]}}]}
        >>> pos, d = ZoneIndex(ZoneSet.from_geojson(fc)).nearest([113.5002], [22.2], k=2)
        >>> pos.tolist(), d.round(2).tolist()
        ([[0, -1]], [[10.34, inf]])
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not max_distance_m >= 0:
            raise ValueError(f"max_distance_m must be >= 0, got {max_distance_m}")
        lon, lat = self._wgs84(lon, lat, crs)
        lon = lon.ravel()
        lat = lat.ravel()
        x, y = _crs.project(lon, lat)
        if mask is None:
            mask = self._all
        elif mask.shape != (len(self),) or mask.dtype != bool:
            raise ValueError(f"mask must be a bool array of {len(self)} zones")
        out_pos = np.empty((len(lon), k), np.int64)
        out_dist = np.empty((len(lon), k), np.float64)
        _kernels.nearest(
            self._gtuple,
            lon,
            lat,
            np.ascontiguousarray(x, dtype=np.float64),
            np.ascontiguousarray(y, dtype=np.float64),
            k,
            float(max_distance_m),
            mask,
            self.zone_set.active_from,
            self.zone_set.active_to,
            np.nan,
            out_pos,
            out_dist,
        )
        return out_pos, out_dist

    def closest_m(self, pos, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signed distance and closest boundary point, from projected points to zones.

        Pairwise: point i against zone ``pos[i]``. ``x, y`` are EPSG:4547 metres (see
        :func:`geofence.crs.project`). Returns ``(distance, bx, by)``: the distance is
        negative inside, 0 on the edge, positive outside; NaN where ``pos`` is -1.
        """
        pos = np.ascontiguousarray(pos, dtype=np.int64).ravel()
        x = np.ascontiguousarray(x, dtype=np.float64).ravel()
        y = np.ascontiguousarray(y, dtype=np.float64).ravel()
        d = np.empty(len(pos), np.float64)
        bx = np.empty(len(pos), np.float64)
        by = np.empty(len(pos), np.float64)
        _kernels.closest(self._gtuple, pos, x, y, d, bx, by)
        return d, bx, by

    @staticmethod
    def _wgs84(lon, lat, crs: str) -> tuple[np.ndarray, np.ndarray]:
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        if lon.shape != lat.shape:
            raise ValueError(f"lon and lat shapes differ: {lon.shape} vs {lat.shape}")
        if crs != "wgs84":
            lon, lat = _crs.to_wgs84(lon, lat, crs)
        return np.ascontiguousarray(lon), np.ascontiguousarray(lat)
