"""Hot spots of rejected trip ends, and the boxes that would serve them.

Where riders keep ending trips outside every box, the city may want to paint one.
:func:`cluster` groups trip-end positions metrically (EPSG:4547 metres, a grid-hash
DBSCAN written with numpy); :func:`propose` turns each cluster into a suggested
2 m x 10 m parking box: at the cluster's centroid, oriented like the boxes nearby
(the street's direction) or, with none within reach, along the cluster's principal
axis, moved sideways off any box it would overlap; :func:`draft` writes the
suggestions as a GeoJSON zone-set draft (kind ``parking``, ``fenced`` false, ids
``ZH-SUG-0001`` …) that ``geofence zones validate`` accepts on its own.

The clustering
--------------
DBSCAN with ``eps = radius_m`` and ``min_samples = min_count``: a position with at
least ``min_count`` positions (itself included) within ``radius_m`` is a core;
cores within ``radius_m`` of each other share a cluster; other positions within
``radius_m`` of a core join that core's cluster (the first found), the rest are
noise. To bound the work in dense places, positions are first snapped to a grid of
``radius_m / 8`` (at most 2.5 m; a trip end's GPS error is larger than that) and
the occupied cells are clustered with their counts as weights; the centroid is the
mean of the unsnapped positions. Neighbour pairs are found by hashing cells of
``radius_m`` and comparing each with its 3 x 3 neighbourhood, in bounded chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.polygon import orient

from geofence import crs as gcrs

__all__ = [
    "BOX_LENGTH_M",
    "BOX_WIDTH_M",
    "Suggestion",
    "cluster",
    "draft",
    "propose",
]

#: the suggested box: a standard painted bike box
BOX_WIDTH_M = 2.0
BOX_LENGTH_M = 10.0
#: bikes per suggested box (0.6 m per bike along a 10 m box)
BOX_CAPACITY = 16
#: parking boxes within this distance set the suggested orientation
ORIENTATION_RADIUS_M = 50.0
#: sideways shifts tried when a suggested box overlaps an existing one (metres)
_SHIFTS_M = (0.0, 2.5, -2.5, 5.0, -5.0, 7.5, -7.5, 10.0, -10.0)
_PAIR_CHUNK = 2_000_000  # neighbour candidates examined at once
_NOISE = -1


# ---------------------------------------------------------------------------- clustering
def _pairs(x: np.ndarray, y: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair ``(i, j)`` (``i != j``) of points within ``radius`` metres."""
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cx = np.floor(x / radius).astype(np.int64)
    cy = np.floor(y / radius).astype(np.int64)
    cx -= cx.min() - 1  # keep neighbours' cell numbers >= 0
    cy -= cy.min() - 1
    width = int(cy.max()) + 2
    key = cx * width + cy
    order = np.argsort(key, kind="stable")
    skey = key[order]
    r2 = radius * radius
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            nkey = key + dx * width + dy
            lo = np.searchsorted(skey, nkey, side="left")
            hi = np.searchsorted(skey, nkey, side="right")
            cnt = hi - lo
            # chunks of points whose candidate lists add up to at most _PAIR_CHUNK
            ends = np.cumsum(cnt)
            start = 0
            while start < n:
                base = ends[start - 1] if start else 0
                stop = int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right"))
                stop = max(stop, start + 1)
                idx = np.arange(start, stop)
                c = cnt[idx]
                if c.sum():
                    i = np.repeat(idx, c)
                    offs = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
                    j = order[np.repeat(lo[idx], c) + offs]
                    d2 = (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2
                    keep = (d2 <= r2) & (i != j)
                    out_i.append(i[keep])
                    out_j.append(j[keep])
                start = stop
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the graph on ``n`` nodes with edges ``(a, b)``:
    the smallest node of each component, per node (min-label propagation with
    pointer jumping)."""
    label = np.arange(n)
    if len(a) == 0:
        return label
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        new = label.copy()
        np.minimum.at(new, la, low)
        np.minimum.at(new, lb, low)
        while True:  # pointer jumping: follow labels to their roots
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, label):
            return label
        label = new


def cluster(
    x: np.ndarray,
    y: np.ndarray,
    radius_m: float,
    min_count: int,
    *,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """DBSCAN labels of points in metres: ``0, 1, …`` per cluster, ``-1`` for noise.

    ``weight`` counts each point that many times (snapped duplicates). Clusters are
    numbered by decreasing total weight (then by their lowest point).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    n = len(x)
    if not radius_m > 0:
        raise ValueError(f"radius_m must be > 0, got {radius_m}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    labels = np.full(n, _NOISE, np.int64)
    if n == 0:
        return labels
    i, j = _pairs(x, y, radius_m)
    near = w.copy()
    np.add.at(near, i, w[j])
    core = near >= min_count
    if not core.any():
        return labels
    cc = core[i] & core[j]
    root = _components(n, i[cc], j[cc])
    labels[core] = root[core]
    # border points: the cluster of a core neighbour
    border = ~core[i] & core[j]
    bi, bj = i[border], j[border]
    first = np.unique(bi, return_index=True)
    labels[first[0]] = root[bj[first[1]]]
    # renumber: heaviest cluster first
    found = labels >= 0
    roots, inverse = np.unique(labels[found], return_inverse=True)
    total = np.bincount(inverse, weights=w[found])
    rank = np.empty(len(roots), np.int64)
    rank[np.lexsort((roots, -total))] = np.arange(len(roots))
    labels[found] = rank[inverse]
    return labels


def cluster_positions(x: np.ndarray, y: np.ndarray, radius_m: float, min_count: int) -> np.ndarray:
    """:func:`cluster` on positions snapped to a ``radius_m / 8`` grid (at most 2.5 m),
    each occupied cell weighted by its count; labels per input position."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(x) == 0:
        return np.zeros(0, np.int64)
    q = min(radius_m / 8.0, 2.5)
    gx = np.floor(x / q).astype(np.int64)
    gy = np.floor(y / q).astype(np.int64)
    cells, inverse, counts = np.unique(
        np.column_stack([gx, gy]), axis=0, return_inverse=True, return_counts=True
    )
    inverse = inverse.ravel()
    # cell centres weighted by their counts (mean positions would drift with the data)
    labels = cluster(
        (cells[:, 0] + 0.5) * q, (cells[:, 1] + 0.5) * q, radius_m, min_count, weight=counts
    )
    return labels[inverse]


# ---------------------------------------------------------------------------- suggestions
@dataclass(frozen=True)
class Suggestion:
    """One proposed box for one hot spot."""

    id: str
    lon: float  # the cluster's centroid, WGS-84
    lat: float
    count: int  # rejected trip ends in the cluster
    spread_m: float  # RMS distance of its trip ends from the centroid
    orientation_deg: float  # bearing of the box's long axis, [0, 180), clockwise from north
    orientation_source: str  # nearby_boxes | cluster_shape
    expected_per_day: float  # trips a day that would have settled in the box
    district: str  # Chinese name (zones.districts)
    box: shapely.Polygon  # WGS-84: the box to paint, or the unfenced box to fence
    action: str = "paint"  # paint (a new box) | fence (the unfenced box it stands in)
    shift_m: float = 0.0  # sideways move off an existing box
    nearest_box: str | None = None
    nearest_box_m: float | None = None
    operators: dict[str, int] = field(default_factory=dict)

    def properties(self) -> dict[str, Any]:
        return {
            "kind": "parking",
            "fenced": self.action == "fence",
            "district": self.district,
            "name": f"建议车位 {self.id}",
            "capacity": BOX_CAPACITY,
            "operators": [],
            "heading_deg": None,
            "beacons": [],
            "active_from": None,
            "active_to": None,
            "suggestion": {
                "action": self.action,
                "centroid": [round(self.lon, 7), round(self.lat, 7)],
                "rejected_trip_ends": self.count,
                "spread_m": round(self.spread_m, 2),
                "orientation_deg": round(self.orientation_deg, 1),
                "orientation_source": self.orientation_source,
                "expected_settled_per_day": round(self.expected_per_day, 2),
                "shift_m": self.shift_m,
                "nearest_box": self.nearest_box,
                "nearest_box_m": None
                if self.nearest_box_m is None
                else round(self.nearest_box_m, 2),
                "operators": dict(self.operators),
            },
        }

    def feature(self) -> dict[str, Any]:
        coords = [[round(float(a), 7), round(float(b), 7)] for a, b in self.box.exterior.coords]
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": {"type": "Polygon", "coordinates": [coords]},
            "properties": self.properties(),
        }


def _long_axis_deg(geom_m: shapely.Geometry) -> float:
    """Bearing (clockwise from grid north, [0, 180)) of a shape's long axis in metres."""
    rect = shapely.oriented_envelope(geom_m)
    c = np.asarray(rect.exterior.coords) if isinstance(rect, shapely.Polygon) else None
    if c is None or len(c) < 4:
        return 0.0
    e1, e2 = c[1] - c[0], c[2] - c[1]
    e = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    return math.degrees(math.atan2(e[0], e[1])) % 180.0


def _principal_axis_deg(x: np.ndarray, y: np.ndarray) -> float:
    """Bearing of the points' principal axis (the covariance's largest eigenvector)."""
    if len(x) < 2:
        return 0.0
    cov = np.cov(np.vstack([x, y]))
    vals, vecs = np.linalg.eigh(cov)
    v = vecs[:, int(np.argmax(vals))]
    return math.degrees(math.atan2(v[0], v[1])) % 180.0


def _rectangle(cx: float, cy: float, bearing_deg: float, shift_m: float) -> shapely.Polygon:
    """A BOX_WIDTH_M x BOX_LENGTH_M rectangle in metres, long axis along ``bearing_deg``,
    centred ``shift_m`` to the right of (cx, cy); counter-clockwise."""
    t = math.radians(bearing_deg)
    ux, uy = math.sin(t), math.cos(t)  # along the long axis
    vx, vy = uy, -ux  # to its right
    cx, cy = cx + vx * shift_m, cy + vy * shift_m
    hl, hw = BOX_LENGTH_M / 2, BOX_WIDTH_M / 2
    pts = [
        (cx - ux * hl - vx * hw, cy - uy * hl - vy * hw),
        (cx + ux * hl - vx * hw, cy + uy * hl - vy * hw),
        (cx + ux * hl + vx * hw, cy + uy * hl + vy * hw),
        (cx - ux * hl + vx * hw, cy - uy * hl + vy * hw),
    ]
    return orient(shapely.Polygon(pts), 1.0)


def _to_wgs84(poly_m: shapely.Polygon) -> shapely.Polygon:
    c = np.asarray(poly_m.exterior.coords)
    lon, lat = gcrs.unproject(c[:, 0], c[:, 1])
    return orient(shapely.Polygon(np.column_stack([lon, lat])), 1.0)


def propose(
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    radius_m: float = 15.0,
    min_count: int = 10,
    days: float = 7.0,
    index: Any = None,
    operators: Sequence[str] | None = None,
    id_prefix: str = "ZH-SUG-",
) -> list[Suggestion]:
    """Suggested boxes for the clusters of rejected trip ends at ``lon``, ``lat`` (WGS-84).

    ``days``: the length of the window the positions come from (for trips a day).
    ``index``: the active :class:`geofence.ZoneIndex`, for the orientation of nearby
    boxes and to keep the suggestions off existing boxes and no-parking areas (without
    it: the cluster's principal axis, no overlap check). ``operators``: the operator of
    each position (counted per suggestion). Suggestions are ordered by count,
    largest first, and never overlap each other; a cluster whose centroid lies
    outside the city's districts gets none.
    """
    from zones.districts import district_name, district_of

    lon = np.asarray(lon, dtype=np.float64).ravel()
    lat = np.asarray(lat, dtype=np.float64).ravel()
    if len(lon) == 0:
        return []
    x, y = gcrs.project(lon, lat)
    labels = cluster_positions(x, y, radius_m, min_count)
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    if n_clusters == 0:
        return []
    zs = index.zone_set if index is not None else None
    parking = None
    if zs is not None:
        from geofence import KIND_NO_PARKING, KIND_PARKING

        parking = np.asarray(zs.kind == KIND_PARKING, dtype=bool).copy()
        no_parking = np.asarray(zs.kind == KIND_NO_PARKING, dtype=bool).copy()
    out: list[Suggestion] = []
    placed: list[shapely.Polygon] = []
    days = max(float(days), 1e-9)
    for k in range(n_clusters):
        sel = labels == k
        px, py = x[sel], y[sel]
        cx, cy = float(px.mean()), float(py.mean())
        clon, clat = gcrs.unproject(np.array([cx]), np.array([cy]))
        code = str(district_of(clon, clat)[0])
        if not code:
            continue
        spread = float(np.sqrt(np.mean((px - cx) ** 2 + (py - cy) ** 2)))
        source = "cluster_shape"
        bearing = _principal_axis_deg(px, py)
        near_id: str | None = None
        near_d: float | None = None
        blockers: list[shapely.Geometry] = []
        if zs is not None and parking is not None:
            loc = int(index.locate(clon, clat)[0])
            if loc >= 0 and parking[loc] and not zs.fenced[loc]:
                # riders already park in this painted box: fence it rather than paint one
                out.append(
                    Suggestion(
                        id=f"{id_prefix}{len(out) + 1:04d}",
                        lon=float(clon[0]),
                        lat=float(clat[0]),
                        count=int(sel.sum()),
                        spread_m=spread,
                        orientation_deg=_long_axis_deg(zs.geometry_m[loc]),
                        orientation_source="existing_box",
                        expected_per_day=int(sel.sum()) / days,
                        district=district_name(code),
                        box=zs.geometry[loc],
                        action="fence",
                        nearest_box=str(zs.ids[loc]),
                        nearest_box_m=0.0,
                        operators=_operators(operators, sel),
                    )
                )
                continue
            pos, dist = index.nearest(
                clon, clat, k=1, max_distance_m=ORIENTATION_RADIUS_M, mask=parking
            )
            if pos[0, 0] >= 0:
                p = int(pos[0, 0])
                near_id, near_d = str(zs.ids[p]), float(dist[0, 0])
                bearing = _long_axis_deg(zs.geometry_m[p])
                source = "nearby_boxes"
            reach = BOX_LENGTH_M / 2 + max(abs(s) for s in _SHIFTS_M) + BOX_WIDTH_M
            pos, _ = index.nearest(clon, clat, k=32, max_distance_m=reach)
            for p in pos[0]:
                if p >= 0 and (parking[p] or no_parking[p]):
                    blockers.append(zs.geometry_m[int(p)])
        box_m = None
        shift = 0.0
        for s in _SHIFTS_M:
            cand = _rectangle(cx, cy, bearing, s)
            hits = [g for g in blockers + placed if shapely.intersection(cand, g).area > 0.0]
            if not hits:
                box_m, shift = cand, s
                break
        if box_m is None:  # no free place near the centroid: the city must look at it
            continue
        box = _to_wgs84(box_m)
        if not shapely.intersects(box, _service_area()):
            continue
        placed.append(box_m)
        out.append(
            Suggestion(
                id=f"{id_prefix}{len(out) + 1:04d}",
                lon=float(clon[0]),
                lat=float(clat[0]),
                count=int(sel.sum()),
                spread_m=spread,
                orientation_deg=bearing,
                orientation_source=source,
                expected_per_day=int(sel.sum()) / days,
                district=district_name(code),
                box=box,
                shift_m=shift,
                nearest_box=near_id,
                nearest_box_m=near_d,
                operators=_operators(operators, sel),
            )
        )
    return out


def _operators(operators: Sequence[str] | None, sel: np.ndarray) -> dict[str, int]:
    """Trip ends per operator among the selected positions, most first."""
    if operators is None:
        return {}
    names, counts = np.unique(np.asarray(operators, dtype=str)[sel], return_counts=True)
    order = np.lexsort((names, -counts))
    return {str(names[i]): int(counts[i]) for i in order}


def _service_area() -> shapely.Geometry:
    from zones.districts import service_area

    return service_area()


def draft(
    suggestions: Sequence[Suggestion], *, source: str = "geofence zones suggest", **meta: Any
) -> dict[str, Any]:
    """The new boxes among the suggestions as a GeoJSON zone-set draft (a
    FeatureCollection); suggestions to fence an existing box are listed in its
    ``zone_set.fence`` metadata instead (they are not new zones)."""
    fence = [
        {"zone_id": s.nearest_box, "rejected_trip_ends": s.count, "suggestion": s.id}
        for s in suggestions
        if s.action == "fence"
    ]
    return {
        "type": "FeatureCollection",
        "zone_set": {
            "name": "zhuhai-suggested-boxes",
            "source": source,
            "draft": True,
            **meta,
            "fence": fence,
        },
        "features": [s.feature() for s in suggestions if s.action == "paint"],
    }
