"""The city's land (district outlines in metres, shrunk by the margin, the larger
parts' cores) and the anchors boxes cluster around: the named places snapped onto
land and the random neighbourhoods, each with its local street grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import shapely

from zones.districts import DISTRICTS, load_districts
from zones.synth.geometry import _project_geom, _to_xy
from zones.synth.params import _RANDOM_PREFIX, _RANDOM_SUFFIX, ANCHORS, MARGIN_M


@dataclass
class _Anchors:
    name: list[str]
    x: np.ndarray
    y: np.ndarray
    district: np.ndarray  # short code
    weight: np.ndarray  # expected share of candidate boxes
    radius: np.ndarray  # metres (Gaussian sigma of box positions)
    theta: np.ndarray  # street-grid orientation, radians (x axis of the local grid)
    su: np.ndarray  # street spacing along the grid's u axis (metres)
    sv: np.ndarray
    ou: np.ndarray  # grid offsets
    ov: np.ndarray
    half_street: np.ndarray  # street half width (kerb offset from the centre line)


@dataclass
class _Land:
    code: list[str]
    outline: dict[str, shapely.Geometry]  # metric, full district
    inner: dict[str, shapely.Geometry]  # metric, shrunk by the margin (prepared)
    core: dict[str, shapely.Geometry]  # metric, parts >= 3 km2, shrunk by 150 m

    def label(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.full(np.shape(x), "", dtype="<U2")
        for c in self.code:
            out[(out == "") & shapely.contains_xy(self.outline[c], x, y)] = c
        return out


@cache
def _land() -> _Land:
    outline, inner, core = {}, {}, {}
    for code, geom in load_districts().items():
        g = _project_geom(geom)
        outline[code] = g
        inner[code] = shapely.buffer(g, -MARGIN_M, quad_segs=2)
        parts = [p for p in shapely.get_parts(g) if p.area >= 3e6]
        core[code] = shapely.buffer(shapely.MultiPolygon(parts), -150.0, quad_segs=2)
        for d in (outline, inner, core):
            shapely.prepare(d[code])
    return _Land(list(DISTRICTS), outline, inner, core)


@cache
def _shrunk(geom: shapely.Geometry, depth: float) -> shapely.Geometry:
    return shapely.buffer(geom, -depth, quad_segs=2)


def _snap_inside(geom: shapely.Geometry, x: float, y: float, depth: float) -> tuple[float, float]:
    """Move a point that is not at least ``depth`` inside ``geom`` to the nearest such point."""
    deep = _shrunk(geom, depth)
    p = shapely.Point(x, y)
    if deep.contains(p):
        return x, y
    q = shapely.shortest_line(p, deep).coords[-1]
    # step a little further in, so the point is strictly inside
    dx, dy = q[0] - x, q[1] - y
    d = math.hypot(dx, dy) or 1.0
    return q[0] + dx / d * 20.0, q[1] + dy / d * 20.0


# --------------------------------------------------------------------------- anchors


def _anchors(rng: np.random.Generator, land: _Land, n_random: int) -> _Anchors:
    names: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    ds: list[str] = []
    ws: list[float] = []
    rs: list[float] = []
    for name, lon, lat, code, w, r in ANCHORS:
        x, y = _to_xy(np.array([lon]), np.array([lat]))
        x0, y0 = _snap_inside(land.outline[code], float(x[0]), float(y[0]), 150.0)
        names.append(name)
        xs.append(x0)
        ys.append(y0)
        ds.append(code)
        ws.append(w)
        rs.append(r)
    named_x, named_y, named_d = np.array(xs), np.array(ys), np.array(ds)
    named_w = np.array(ws)
    n_named = len(names)

    # Random neighbourhoods: district shares, most near a town centre, some anywhere
    # on the larger land parts.
    shares = {"XZ": 0.60, "DM": 0.18, "JW": 0.22}
    counts = rng.multinomial(n_random, [shares[c] for c in land.code])
    for code, k in zip(land.code, counts, strict=True):
        if k == 0:
            continue
        got_x: list[np.ndarray] = []
        got_y: list[np.ndarray] = []
        have = 0
        sel = np.flatnonzero(named_d == code)
        p = named_w[sel] / named_w[sel].sum()
        core = land.core[code]
        minx, miny, maxx, maxy = core.bounds
        while have < k:
            m = 4 * (k - have) + 16
            near = rng.random(m) < 0.7
            pick = sel[rng.choice(len(sel), size=m, p=p)]
            sigma = rng.uniform(1000.0, 2500.0, m)
            cx = np.where(near, named_x[pick] + rng.normal(0, 1, m) * sigma, 0.0)
            cy = np.where(near, named_y[pick] + rng.normal(0, 1, m) * sigma, 0.0)
            cx = np.where(near, cx, rng.uniform(minx, maxx, m))
            cy = np.where(near, cy, rng.uniform(miny, maxy, m))
            ok = shapely.contains_xy(core, cx, cy)
            got_x.append(cx[ok])
            got_y.append(cy[ok])
            have += int(ok.sum())
        rx = np.concatenate(got_x)[:k]
        ry = np.concatenate(got_y)[:k]
        pre = rng.integers(0, len(_RANDOM_PREFIX), k)
        suf = rng.integers(0, len(_RANDOM_SUFFIX), k)
        for i in range(k):
            names.append(_RANDOM_PREFIX[pre[i]] + _RANDOM_SUFFIX[suf[i]])
            xs.append(float(rx[i]))
            ys.append(float(ry[i]))
            ds.append(code)
        ws.extend(rng.lognormal(0.0, 0.5, k))
        rs.extend(rng.uniform(120.0, 350.0, k))

    n = len(names)
    weight = np.array(ws)
    # Named hubs carry about 45 % of the boxes, random neighbourhoods the rest.
    weight[:n_named] *= 0.45 / weight[:n_named].sum()
    weight[n_named:] *= 0.55 / max(weight[n_named:].sum(), 1e-9)
    su = rng.uniform(70.0, 200.0, n)
    sv = rng.uniform(70.0, 200.0, n)
    return _Anchors(
        name=names,
        x=np.array(xs),
        y=np.array(ys),
        district=np.array(ds),
        weight=weight,
        radius=np.array(rs),
        theta=rng.uniform(0.0, math.pi / 2, n),
        su=su,
        sv=sv,
        ou=rng.uniform(0.0, 1.0, n) * su,
        ov=rng.uniform(0.0, 1.0, n) * sv,
        half_street=rng.uniform(4.0, 14.0, n),
    )
