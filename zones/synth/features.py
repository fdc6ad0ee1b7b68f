"""Output: GeoJSON features of the boxes and no-parking areas (ids in city order,
attributes, RFC 7946 orientation), the re-check after rounding, and the compact
one-feature-per-line text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from geofence import crs as _crs
from zones.districts import DISTRICTS, district_name, load_districts
from zones.synth.boxes import _Boxes, _take
from zones.synth.geometry import _to_lonlat
from zones.synth.land import _Anchors
from zones.synth.params import _SIDES, BIKE_PITCH_M, OPERATORS


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
