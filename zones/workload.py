"""Trip-end workloads with ground truth, for the benchmarks and the settlement decisions.

``make_trip_ends(zone_set, n, seed=...)`` places ``n`` true bike positions relative to
the zone set's boxes, by truth class:

=================== =========================================================
``inside``          uniformly inside a fenced parking box (``truth_zone`` = it)
``beside``          0-2 m outside the nearest box, a fenced one (``truth_zone``)
``near``            2-15 m outside the nearest box, a fenced one (``truth_zone``)
``far``             15-300 m from any box, on land (``truth_zone`` = ``""``)
``inside_unfenced`` uniformly inside an unfenced parking box (``truth_zone``)
``no_parking``      inside a no-parking area, off every box (``truth_zone``)
=================== =========================================================

and observes each through ``fixes_per_trip`` GPS fixes: the true position plus an
isotropic 2-D Gaussian whose 68 % radius is the trip's ``accuracy_m`` (per-axis sigma
= accuracy / sqrt(-2 ln 0.32) = accuracy / 1.5096), drawn uniformly per trip from
3-10 m ("consumer" phones) or 0.3-1 m ("precise", a Beidou high-precision lock), then
reported in WGS-84, GCJ-02 or BD-09. True positions are placed in EPSG:4547 metres;
every class keeps at least 5 mm from its defining edge, so the truth survives the
projection round trip. The noise is drawn in local east/north metres (WGS-84 radii of
curvature at the true point). Everything is vectorized (1,000,000 trips in a few
seconds); the same seed gives the same arrays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from geofence import crs as _crs
from zones.districts import load_districts, service_area

__all__ = [
    "ACCURACY_PRESETS",
    "CLASSES",
    "DEFAULT_MIX",
    "SIGMA_PER_ACCURACY",
    "TripEnds",
    "make_trip_ends",
    "parse_accuracy",
]

CLASSES = ("inside", "beside", "near", "far", "inside_unfenced", "no_parking")
DEFAULT_MIX: dict[str, float] = {
    "inside": 0.45,
    "beside": 0.15,
    "near": 0.15,
    "far": 0.12,
    "inside_unfenced": 0.10,
    "no_parking": 0.03,
}
ACCURACY_PRESETS: dict[str, tuple[float, float]] = {
    "consumer": (3.0, 10.0),  # consumer phone GPS
    "precise": (0.3, 1.0),  # Beidou high-precision lock
}
#: accuracy_m (68 % radius of an isotropic 2-D Gaussian) / per-axis sigma
SIGMA_PER_ACCURACY = math.sqrt(-2.0 * math.log(1.0 - 0.68))  # 1.5096

_WGS84_A = 6378137.0
_WGS84_E2 = 0.00669437999014
_EPS_M = 0.005  # keep this far from the edge that defines a class
_RANGES = {"beside": (0.0, 2.0), "near": (2.0, 15.0), "far": (15.0, 300.0)}


@dataclass(frozen=True, eq=False)
class TripEnds:
    """A trip-end workload: true positions, their truth, and the observed fixes."""

    true_lon: np.ndarray  # (n,) WGS-84
    true_lat: np.ndarray  # (n,)
    truth: np.ndarray  # (n,) str, one of CLASSES
    truth_zone: np.ndarray  # (n,) str, zone id or ""
    fix_lon: np.ndarray  # (n, fixes_per_trip), in `crs`
    fix_lat: np.ndarray  # (n, fixes_per_trip)
    accuracy_m: np.ndarray  # (n, fixes_per_trip), the 68 % radius reported with each fix
    crs: str

    def __len__(self) -> int:
        return int(self.true_lon.shape[0])

    def save_npz(self, path: str | Path) -> Path:
        """Write all arrays to one ``.npz`` (no pickles); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "crs"}
        with path.open("wb") as fh:
            np.savez(fh, crs=np.array(self.crs), **arrays)
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> TripEnds:
        with np.load(Path(path), allow_pickle=False) as data:
            kw: dict[str, Any] = {
                f.name: np.array(data[f.name]) for f in fields(cls) if f.name != "crs"
            }
            kw["crs"] = str(data["crs"])
        return cls(**kw)


def parse_accuracy(accuracy: str | tuple[float, float]) -> tuple[float, float]:
    """``"consumer"`` | ``"precise"`` | ``"LO-HI"`` | ``(lo, hi)`` -> (lo, hi) metres."""
    if isinstance(accuracy, str):
        key = accuracy.strip().lower()
        if key in ACCURACY_PRESETS:
            return ACCURACY_PRESETS[key]
        lo_s, sep, hi_s = key.partition("-")
        try:
            lo, hi = float(lo_s), float(hi_s)
        except ValueError:
            lo = hi = math.nan
        if not sep or math.isnan(lo) or math.isnan(hi):
            raise ValueError(
                f"unknown accuracy {accuracy!r}; use consumer (3-10 m), precise (0.3-1 m) "
                "or a range such as 2-5"
            )
    else:
        lo, hi = (float(v) for v in accuracy)
    if not (0.0 < lo <= hi < 1000.0) or not math.isfinite(hi):
        raise ValueError(f"accuracy range must satisfy 0 < lo <= hi < 1000 m, got {lo}-{hi}")
    return lo, hi


# --------------------------------------------------------------------------- zones


@dataclass
class _Zones:
    ids: np.ndarray  # str
    kind: np.ndarray  # str
    fenced: np.ndarray  # bool
    geom: np.ndarray  # metric geometries
    land: shapely.Geometry  # metric service area (prepared)
    cx: np.ndarray  # metric centroids
    cy: np.ndarray


def _load(fc_or_path: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(fc_or_path, Mapping):
        return fc_or_path
    with Path(fc_or_path).open(encoding="utf-8") as fh:
        data: Mapping[str, Any] = json.load(fh)
    return data


def _metric(geoms: np.ndarray) -> np.ndarray:
    def fn(c: np.ndarray) -> np.ndarray:
        return np.column_stack(_crs.project(c[:, 0], c[:, 1]))

    return shapely.transform(geoms, fn)


def _zones(fc: Mapping[str, Any]) -> _Zones:
    feats = [f for f in fc.get("features", []) if f.get("geometry")]
    ids = np.array([str(f.get("id", "")) for f in feats], dtype=str)
    props = [f.get("properties") or {} for f in feats]
    kind = np.array([str(p.get("kind", "")) for p in props], dtype=str)
    fenced = np.array([p.get("fenced") is True for p in props], dtype=bool) & (kind == "parking")
    geom = shapely.from_geojson(np.array([json.dumps(f["geometry"]) for f in feats], dtype=object))
    geom = _metric(np.asarray(geom, dtype=object))
    # land: inside the city outline and inside one of its districts (the two outlines
    # differ by about 1 km², and every position must get a district)
    districts = shapely.union_all(list(load_districts().values()))
    land = _metric(np.array([shapely.intersection(service_area(), districts)], dtype=object))[0]
    shapely.prepare(land)
    shapely.prepare(geom)
    c = shapely.centroid(geom)
    return _Zones(
        ids=ids,
        kind=kind,
        fenced=fenced,
        geom=geom,
        land=land,
        cx=shapely.get_x(c),
        cy=shapely.get_y(c),
    )


# --------------------------------------------------------------------------- sampling


def _inside(rng: np.random.Generator, geom: np.ndarray, m: int) -> tuple[np.ndarray, ...]:
    """``m`` points uniformly inside polygons chosen uniformly from ``geom``.

    Returns (x, y, index into geom). Points keep at least 5 mm inside the boundary.
    """
    rect = shapely.minimum_rotated_rectangle(geom)
    corners = shapely.get_coordinates(shapely.get_exterior_ring(rect)).reshape(len(geom), -1, 2)
    inner = shapely.buffer(geom, -_EPS_M, quad_segs=1, join_style="mitre")
    shapely.prepare(inner)
    out_x = np.empty(m)
    out_y = np.empty(m)
    out_i = np.empty(m, dtype=np.int64)
    todo = np.arange(m)
    pick = rng.integers(0, len(geom), m)
    for _ in range(200):
        if not len(todo):
            break
        b = pick[todo]
        c0, c1, c3 = corners[b, 0], corners[b, 1], corners[b, 3]
        u = rng.random(len(todo))[:, None]
        v = rng.random(len(todo))[:, None]
        p = c0 + u * (c1 - c0) + v * (c3 - c0)
        ok = shapely.contains_xy(inner[b], p[:, 0], p[:, 1])
        done = todo[ok]
        out_x[done], out_y[done], out_i[done] = p[ok, 0], p[ok, 1], b[ok]
        todo = todo[~ok]
    if len(todo):
        raise RuntimeError("could not sample points inside the zones (degenerate geometry?)")
    return out_x, out_y, out_i


@dataclass
class _Edges:
    x0: np.ndarray
    y0: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    length: np.ndarray
    cum: np.ndarray  # cumulative length at the end of each edge
    start: np.ndarray  # per geometry: cumulative length before its first edge
    perimeter: np.ndarray
    last: np.ndarray  # per geometry: index of its last edge
    outward: np.ndarray  # per edge: +1 if (dy, -dx) points outward (CCW ring), else -1


def _edges(geom: np.ndarray) -> _Edges:
    """The exterior edges of polygons (the first part of a multi-polygon)."""
    first = shapely.get_geometry(geom, 0)
    first = np.where(shapely.get_type_id(geom) == 3, geom, first)
    ring = shapely.get_exterior_ring(first)
    xy, idx = shapely.get_coordinates(ring, return_index=True)
    same = idx[1:] == idx[:-1]
    x0, y0 = xy[:-1][same, 0], xy[:-1][same, 1]
    dx, dy = (xy[1:] - xy[:-1])[same].T
    owner = idx[:-1][same]
    length = np.hypot(dx, dy)
    cum = np.cumsum(length)
    n = len(geom)
    counts = np.bincount(owner, minlength=n)
    last = np.cumsum(counts) - 1
    perimeter = np.bincount(owner, weights=length, minlength=n)
    start = np.cumsum(perimeter) - perimeter
    outward = np.where(shapely.is_ccw(ring), 1.0, -1.0)[owner]
    return _Edges(x0, y0, dx, dy, length, cum, start, perimeter, last, outward)


def _beside_points(
    rng: np.random.Generator, e: _Edges, b: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points at distance ``d`` along the outward normal of a random boundary point of b."""
    s = e.start[b] + rng.random(len(b)) * e.perimeter[b]
    k = np.minimum(np.searchsorted(e.cum, s, side="right"), e.last[b])
    t = np.clip((s - (e.cum[k] - e.length[k])) / np.maximum(e.length[k], 1e-12), 0.0, 1.0)
    nx = e.dy[k] / np.maximum(e.length[k], 1e-12) * e.outward[k]
    ny = -e.dx[k] / np.maximum(e.length[k], 1e-12) * e.outward[k]
    x = e.x0[k] + t * e.dx[k] + nx * d
    y = e.y0[k] + t * e.dy[k] + ny * d
    return x, y


def _outside(
    rng: np.random.Generator,
    z: _Zones,
    cls: str,
    m: int,
    pool: np.ndarray,
    edges: _Edges,
    park_tree: STRtree,
    park_pos: np.ndarray,
    np_tree: STRtree | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``m`` points of an outside class: (x, y, position of the truth zone or -1)."""
    lo, hi = _RANGES[cls]
    out_x = np.empty(m)
    out_y = np.empty(m)
    out_z = np.full(m, -1, dtype=np.int64)
    have = 0
    for _ in range(100):
        need = m - have
        if need <= 0:
            break
        k = int(need * 1.2) + 16  # acceptance is ~90 %
        src = pool[rng.integers(0, len(pool), k)]
        if cls == "far":
            ang = rng.uniform(0.0, 2 * math.pi, k)
            d = rng.uniform(lo, hi, k)
            x = z.cx[src] + d * np.cos(ang)
            y = z.cy[src] + d * np.sin(ang)
        else:
            d = rng.uniform(max(lo, _EPS_M), hi, k)
            x, y = _beside_points(rng, edges, np.searchsorted(park_pos, src), d)
        pts = shapely.points(x, y)
        ok = shapely.contains_xy(z.land, x, y)
        near = np.full(k, -1, dtype=np.int64)
        if cls == "far":
            # no box within lo; the source box (so the nearest one) within hi
            hit, _ = park_tree.query(pts, predicate="dwithin", distance=lo + _EPS_M)
            ok[hit] = False
            ok &= shapely.distance(z.geom[src], pts) < hi - _EPS_M
        else:
            # the nearest box within hi (a dwithin query and exact distances: much
            # faster than STRtree.query_nearest for these short ranges)
            i, j = park_tree.query(pts, predicate="dwithin", distance=hi)
            dist = shapely.distance(park_tree.geometries[j], pts[i])
            order = np.lexsort((j, dist, i))
            i, j, dist = i[order], j[order], dist[order]
            first = np.ones(len(i), dtype=bool)
            first[1:] = i[1:] != i[:-1]
            dmin = np.full(k, np.inf)
            near[i[first]] = park_pos[j[first]]
            dmin[i[first]] = dist[first]
            ok &= (dmin > lo + _EPS_M) & (dmin < hi - _EPS_M) & (near >= 0)
            ok &= z.fenced[np.maximum(near, 0)]
        if np_tree is not None:
            hit, _ = np_tree.query(pts, predicate="intersects")
            ok[hit] = False
        sel = np.flatnonzero(ok)[:need]
        out_x[have : have + len(sel)] = x[sel]
        out_y[have : have + len(sel)] = y[sel]
        out_z[have : have + len(sel)] = near[sel]
        have += len(sel)
    if have < m:
        raise RuntimeError(f"could not place {m} {cls!r} trip ends (only {have})")
    return out_x, out_y, out_z


def _counts(mix: Mapping[str, float], n: int) -> dict[str, int]:
    """Exact class counts for ``n`` by the largest-remainder method (deterministic)."""
    total = sum(mix.values())
    raw = {c: n * w / total for c, w in mix.items()}
    counts = {c: math.floor(v) for c, v in raw.items()}
    rest = n - sum(counts.values())
    for c in sorted(raw, key=lambda c: (-(raw[c] - counts[c]), CLASSES.index(c)))[:rest]:
        counts[c] += 1
    return counts


def make_trip_ends(
    fc_or_path: Mapping[str, Any] | str | Path,
    n: int,
    *,
    seed: int,
    accuracy: str | tuple[float, float] = "consumer",
    crs: str = "wgs84",
    fixes_per_trip: int = 5,
    mix: Mapping[str, float] | None = None,
) -> TripEnds:
    """``n`` trip ends with ground truth, observed through GPS noise (see the module doc)."""
    lo, hi = parse_accuracy(accuracy)
    crs = _crs.check_crs(crs)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if fixes_per_trip < 1:
        raise ValueError(f"fixes_per_trip must be >= 1, got {fixes_per_trip}")
    z = _zones(_load(fc_or_path))
    parking = z.kind == "parking"
    pools = {
        "inside": np.flatnonzero(z.fenced),
        "beside": np.flatnonzero(z.fenced),
        "near": np.flatnonzero(z.fenced),
        "far": np.flatnonzero(parking),
        "inside_unfenced": np.flatnonzero(parking & ~z.fenced),
        "no_parking": np.flatnonzero(z.kind == "no_parking"),
    }
    if mix is None:
        weights = {c: w for c, w in DEFAULT_MIX.items() if len(pools[c])}
    else:
        unknown = sorted(set(mix) - set(CLASSES))
        if unknown:
            raise ValueError(f"unknown truth classes {unknown}; known: {', '.join(CLASSES)}")
        weights = {c: float(w) for c, w in mix.items() if w}
        if any(w < 0 or not math.isfinite(w) for w in weights.values()):
            raise ValueError("mix weights must be finite and >= 0")
        empty = [c for c in weights if not len(pools[c])]
        if empty:
            raise ValueError(f"the zone set has no zones for truth classes {empty}")
    if n and not weights:
        raise ValueError("the zone set has no parking boxes to build trip ends around")
    counts = _counts(weights, n) if n else {}

    rng = np.random.default_rng(seed)
    x = np.empty(n)
    y = np.empty(n)
    zone = np.full(n, -1, dtype=np.int64)
    truth = np.empty(n, dtype="<U15")
    at = 0
    park_pos = np.flatnonzero(parking)
    park_tree = STRtree(z.geom[park_pos]) if len(park_pos) else None
    np_pos = pools["no_parking"]
    np_tree = STRtree(z.geom[np_pos]) if len(np_pos) else None
    edges = _edges(z.geom[park_pos]) if len(park_pos) else None
    for cls in CLASSES:
        m = counts.get(cls, 0)
        if not m:
            continue
        pool = pools[cls]
        if cls in ("inside", "inside_unfenced", "no_parking"):
            px, py, i = _inside(rng, z.geom[pool], m)
            pz = pool[i]
        else:
            assert park_tree is not None and edges is not None
            px, py, pz = _outside(rng, z, cls, m, pool, edges, park_tree, park_pos, np_tree)
        x[at : at + m], y[at : at + m], zone[at : at + m] = px, py, pz
        truth[at : at + m] = cls
        at += m
    order = rng.permutation(n)  # interleave the classes
    x, y, zone, truth = x[order], y[order], zone[order], truth[order]

    true_lon, true_lat = _crs.unproject(x, y)
    acc = rng.uniform(lo, hi, n)
    sigma = acc / SIGMA_PER_ACCURACY
    noise = rng.standard_normal((2, n, fixes_per_trip)) * sigma[None, :, None]
    # east/north metres -> degrees with the WGS-84 radii of curvature at the true point
    # (exact to ~(noise / 6400 km)^2: far cheaper than projecting every fix)
    lat_r = np.radians(np.asarray(true_lat, dtype=np.float64))
    w = np.sqrt(1.0 - _WGS84_E2 * np.sin(lat_r) ** 2)
    m_lat = _WGS84_A * (1.0 - _WGS84_E2) / w**3  # metres per radian of latitude
    m_lon = _WGS84_A / w * np.cos(lat_r)  # metres per radian of longitude
    flon = np.asarray(true_lon)[:, None] + np.degrees(noise[0] / m_lon[:, None])
    flat = np.asarray(true_lat)[:, None] + np.degrees(noise[1] / m_lat[:, None])
    flon, flat = _crs.from_wgs84(flon.ravel(), flat.ravel(), crs)
    shape = (n, fixes_per_trip)
    truth_zone = np.where(zone >= 0, z.ids[np.maximum(zone, 0)] if len(z.ids) else "", "")
    return TripEnds(
        true_lon=np.asarray(true_lon, dtype=np.float64),
        true_lat=np.asarray(true_lat, dtype=np.float64),
        truth=truth,
        truth_zone=np.asarray(truth_zone, dtype=str),
        fix_lon=np.asarray(flon, dtype=np.float64).reshape(shape),
        fix_lat=np.asarray(flat, dtype=np.float64).reshape(shape),
        accuracy_m=np.repeat(acc[:, None], fixes_per_trip, axis=1),
        crs=crs,
    )
