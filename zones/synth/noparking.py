"""No-parking areas: the named precincts, plazas at hubs and major road junctions,
clipped to land and kept apart, in priority order.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from zones.synth.geometry import _greedy, _rect_ring, _to_xy
from zones.synth.land import _Anchors, _Land, _snap_inside
from zones.synth.params import ANCHORS, MARGIN_M, PRECINCTS


def _fit(land: _Land, g: shapely.Geometry) -> tuple[str, shapely.Geometry] | None:
    """Clip a no-parking shape to the (shrunk) district holding its centroid, or None."""
    c = shapely.centroid(g)
    code = str(land.label(np.array([c.x]), np.array([c.y]))[0])
    if not code:
        return None
    inner = land.inner[code]
    if inner.contains(g):
        return code, g
    clipped = shapely.intersection(g, inner, grid_size=0.01)
    parts = [p for p in shapely.get_parts(clipped) if p.geom_type == "Polygon"]
    parts = [p for p in parts if p.area >= 400.0]
    if not parts or sum(p.area for p in parts) < 0.6 * g.area:
        return None
    g = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    if not inner.contains(g):  # clipping is exact only up to the grid
        g = shapely.buffer(g, -0.05, quad_segs=1, join_style="mitre")
        if g.is_empty or not inner.contains(g):
            return None
    return code, g


def _no_parking(
    rng: np.random.Generator, land: _Land, anc: _Anchors, n_target: int
) -> list[tuple[str, str, shapely.Geometry]]:
    """(district code, name, metric geometry) of the no-parking areas, in priority order."""
    placed: list[tuple[str, str, shapely.Geometry]] = []
    # 1. named precincts: snapped onto land; nudged aside when two would collide
    for name, lon, lat, length, width, rot, style in PRECINCTS:
        if len(placed) >= n_target:
            break
        x, y = _to_xy(np.array([lon]), np.array([lat]))
        x1, y1 = float(x[0]), float(y[0])
        code = land.label(x, y)[0] or _nearest_district(land, x1, y1)
        depth = 0.5 * math.hypot(length, width) + MARGIN_M
        shape_rng = np.random.default_rng(rng.integers(2**63))
        step_m = max(length, width) + 30.0
        tries = [(0.0, 0.0)] + [
            (k * step_m * math.cos(j * math.pi / 4), k * step_m * math.sin(j * math.pi / 4))
            for k in (1, 2, 3)
            for j in range(8)
        ]
        for dx, dy in tries:
            x0, y0 = _snap_inside(land.outline[code], x1 + dx, y1 + dy, depth)
            sub = np.random.default_rng(shape_rng.integers(2**63))
            g = _np_shape(sub, x0, y0, length, width, math.radians(rot), style)
            fit = _fit(land, g)
            if fit is None or any(shapely.dwithin(fit[1], q, 5.0) for _, _, q in placed):
                continue
            placed.append((fit[0], name, fit[1]))
            break

    cand: list[tuple[str, shapely.Geometry]] = []
    # 2. plazas at named hubs and at some random neighbourhoods
    n_named = len(ANCHORS)
    n_plaza = max(4, n_target // 8)
    pick = np.concatenate(
        [np.arange(n_named), rng.choice(np.arange(n_named, len(anc.name)), n_plaza, False)]
    )[:n_plaza]
    for i in pick:
        ang = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(0.3, 1.0) * anc.radius[i]
        x0 = anc.x[i] + dist * math.cos(ang)
        y0 = anc.y[i] + dist * math.sin(ang)
        r = rng.random()
        style = "hole" if r < 0.12 else ("multi" if r < 0.25 else "rect")
        length = rng.uniform(60.0, 200.0)
        width = length * rng.uniform(0.5, 0.9)
        base = anc.name[i]
        label = base if base.endswith("广场") else f"{base}广场"
        cand.append((label, _np_shape(rng, x0, y0, length, width, float(anc.theta[i]), style)))
    # 3. major road junctions: grid intersections near anchors (more than needed)
    m = 3 * n_target
    ji = rng.choice(len(anc.name), m, p=anc.weight / anc.weight.sum())
    j_ang = rng.uniform(0, 2 * math.pi, m)
    j_dist = rng.uniform(0.0, 1.5, m) * anc.radius[ji]
    px, py = j_dist * np.cos(j_ang), j_dist * np.sin(j_ang)
    c, s = np.cos(anc.theta[ji]), np.sin(anc.theta[ji])
    u = px * c + py * s
    v = -px * s + py * c
    u = np.round((u - anc.ou[ji]) / anc.su[ji]) * anc.su[ji] + anc.ou[ji]
    v = np.round((v - anc.ov[ji]) / anc.sv[ji]) * anc.sv[ji] + anc.ov[ji]
    jx = anc.x[ji] + u * c - v * s
    jy = anc.y[ji] + u * s + v * c
    side = rng.uniform(50.0, 110.0, m)
    aspect = np.where(rng.random(m) < 0.4, rng.uniform(1.0, 1.35, m), 1.0)
    j_rot = anc.theta[ji] + np.where(rng.random(m) < 0.2, rng.uniform(-0.3, 0.3, m), 0.0)
    rings = _rect_ring(jx, jy, side * aspect, side, j_rot)
    for k in range(m):
        cand.append((f"{anc.name[ji[k]]}路口", shapely.Polygon(rings[k])))

    # clip to land; the named precincts first, then drop overlaps in priority order
    out = list(placed)
    for name, g in cand:
        fit = _fit(land, g)
        if fit is not None:
            out.append((fit[0], name, fit[1]))
    if not out:
        return []
    keep = _greedy(np.array([g for _, _, g in out], dtype=object), len(placed), 5.0)
    return [out[k] for k in np.flatnonzero(keep)[:n_target]]


def _nearest_district(land: _Land, x: float, y: float) -> str:
    p = shapely.Point(x, y)
    return min(land.code, key=lambda c: shapely.distance(land.outline[c], p))


def _np_shape(
    rng: np.random.Generator,
    x0: float,
    y0: float,
    length: float,
    width: float,
    rot: float,
    style: str,
) -> shapely.Geometry:
    one = np.array([1.0])

    def rect(cx: float, cy: float, ln: float, wd: float) -> shapely.Polygon:
        ring = _rect_ring(np.array([cx]), np.array([cy]), one * ln, one * wd, one * rot)[0]
        return shapely.Polygon(ring)

    if style == "hole":
        outer = rect(x0, y0, length, width)
        f = rng.uniform(0.3, 0.5)
        hole = rect(x0, y0, length * f, width * f)
        return shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    if style == "multi":
        road = rng.uniform(16.0, 30.0)
        part_w = (width - road) / 2
        c, s = math.cos(rot), math.sin(rot)
        off = road / 2 + part_w / 2
        a = rect(x0 - off * s, y0 + off * c, length, part_w)
        b = rect(x0 + off * s, y0 - off * c, length * rng.uniform(0.6, 1.0), part_w)
        return shapely.MultiPolygon([a, b])
    return rect(x0, y0, length, width)
