"""Metric geometry helpers: projection to and from EPSG:4547, box outlines (rectangles
and the odd shapes), and the greedy keep-apart pass shared by boxes and no-parking
areas.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely import STRtree

from geofence import crs as _crs


def _project_geom(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda c: np.column_stack(_crs.project(c[:, 0], c[:, 1])))


def _to_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _crs.project(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _crs.unproject(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.round(np.asarray(lon, dtype=float), 7), np.round(np.asarray(lat, dtype=float), 7)


def _rect_ring(cx, cy, length, width, angle) -> np.ndarray:
    """Rectangles as rings (n, 5, 2): length along ``angle`` (radians from +x)."""
    u = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    v = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    return _place(u[None, :] * length[:, None], v[None, :] * width[:, None], cx, cy, angle)


def _place(lu, lv, cx, cy, angle) -> np.ndarray:
    """Local (along, across) coordinates (n, k) -> metric rings (n, k, 2)."""
    c = np.cos(angle)[:, None]
    s = np.sin(angle)[:, None]
    x = cx[:, None] + lu * c - lv * s
    y = cy[:, None] + lu * s + lv * c
    return np.stack([x, y], axis=-1)


def _box_shapes(
    rng: np.random.Generator, n: int, length: np.ndarray, width: np.ndarray, share: float
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Local outlines of ``n`` boxes: shape code per box and groups (idx, lu, lv).

    Codes: 0 rectangle, 1 trapezoid, 2 chamfered corner, 3 L-shape (a notch at one end).
    Every outline spans exactly ``length`` x ``width`` and is counter-clockwise.
    """
    odd = rng.random(n) < share
    code = np.where(odd, rng.integers(1, 4, n), 0)
    a = rng.uniform(0.0, 1.0, (n, 2))
    hl = length / 2
    hw = width / 2
    groups = []
    idx = np.flatnonzero(code == 0)
    lu = np.array([-1, 1, 1, -1, -1.0])[None, :] * hl[idx, None]
    lv = np.array([-1, -1, 1, 1, -1.0])[None, :] * hw[idx, None]
    groups.append((idx, lu, lv))
    # trapezoid: the kerb-side edge is full length, the far edge shortened at both ends
    idx = np.flatnonzero(code == 1)
    c = np.minimum((0.4 + 0.6 * a[idx, 0]) * width[idx], 0.25 * length[idx])
    h, w = hl[idx], hw[idx]
    lu = np.stack([-h, h, h - c, -h + c, -h], axis=1)
    lv = np.stack([-w, -w, w, w, -w], axis=1)
    groups.append((idx, lu, lv))
    # chamfered corner (a tree pit or a kerb ramp cut off one corner)
    idx = np.flatnonzero(code == 2)
    h, w = hl[idx], hw[idx]
    c1 = (0.3 + 0.4 * a[idx, 0]) * width[idx]
    c2 = (0.3 + 0.7 * a[idx, 1]) * width[idx]
    lu = np.stack([-h, h, h, h - c2, -h, -h], axis=1)
    lv = np.stack([-w, -w, w - c1, w, w, -w], axis=1)
    groups.append((idx, lu, lv))
    # L-shape: a notch at one end of the far side
    idx = np.flatnonzero(code == 3)
    h, w = hl[idx], hw[idx]
    na = (0.2 + 0.2 * a[idx, 0]) * length[idx]
    nb = (0.35 + 0.15 * a[idx, 1]) * width[idx]
    lu = np.stack([-h, h, h, h - na, h - na, -h, -h], axis=1)
    lv = np.stack([-w, -w, w - nb, w - nb, w, w, -w], axis=1)
    groups.append((idx, lu, lv))
    return code, groups


def _polygons(groups: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """Rings (idx, (m, k, 2)) grouped by vertex count -> an object array of n Polygons."""
    out = np.empty(n, dtype=object)
    for idx, rings in groups:
        if len(idx):
            out[idx] = shapely.polygons(rings)
    return out


def _greedy(geoms: np.ndarray, priority_fixed: int, gap: float) -> np.ndarray:
    """Keep geometries in array order, skipping any within ``gap`` of one kept earlier.

    The first ``priority_fixed`` geometries are already accepted (they never conflict).
    """
    n = len(geoms)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    tree = STRtree(geoms)
    a, b = tree.query(geoms, predicate="dwithin", distance=gap)
    m = a > b  # conflicts with an earlier geometry
    a, b = a[m], b[m]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    starts = np.searchsorted(a, np.arange(n + 1))
    keep[:priority_fixed] = True
    for i in range(priority_fixed, n):
        nb = b[starts[i] : starts[i + 1]]
        if not keep[nb].any():
            keep[i] = True
    return keep
