"""Geometry structure: from a feature's JSON ``geometry`` to ring arrays, then to
shapely geometry.

``_geometry_rings`` checks the structure (type, nesting, positions, closure, finite
numbers) with a fast path for the common list-of-number-pairs ring; ``_range_filter``
drops zones beyond lon ±180 / lat ±90 with one vectorized test; ``_build`` makes every
ring, polygon and multipolygon in a handful of vectorized shapely calls. ``_Zones``
carries the zones that passed to the geometry and datum checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from zones.validate.loading import _a_type, _is_number, _is_seq, _short
from zones.validate.report import _Collector


@dataclass
class _Zones:
    """The zones whose structure passed, ready for vectorized checks."""

    feat: list[int] = field(default_factory=list)  # feature index
    label: list[str] = field(default_factory=list)
    kind: list[str | None] = field(default_factory=list)
    parts: list[list[list[np.ndarray]]] = field(default_factory=list)
    multi: list[bool] = field(default_factory=list)


_SEQ_TYPES = frozenset({list, tuple})
_NUM_TYPES = frozenset({float, int})


def _ring_array(ring: Any) -> tuple[np.ndarray | None, str | None, str]:
    """Check one ring; return (n x 2 array, None, "") or (None, rule, detail)."""
    if not _is_seq(ring):
        return None, "bad-geometry", f"is {_a_type(ring)}, not an array of positions"
    # fast path: a list of [lon, lat] (or [lon, lat, alt]) lists of plain numbers
    fast = (
        bool(ring)
        and {type(pos) for pos in ring} <= _SEQ_TYPES
        and len({len(pos) for pos in ring} - {2, 3}) == 0
        and len({len(pos) for pos in ring}) == 1
        and {type(v) for pos in ring for v in pos} <= _NUM_TYPES
    )
    if not fast:
        for k, pos in enumerate(ring):
            if not _is_seq(pos) or not 2 <= len(pos) <= 3:
                return None, "bad-geometry", f"position {k} is {_short(pos)}, not [lon, lat]"
            for v in pos:
                if not _is_number(v):
                    return None, "bad-geometry", f"position {k} has {_a_type(v)} {_short(v)}"
        if not ring:
            return None, "too-few-positions", "has no positions; a ring needs at least 4"
        if len({len(pos) for pos in ring}) > 1:
            return None, "bad-geometry", "mixes 2- and 3-coordinate positions"
    try:
        a = np.array(ring, dtype=np.float64)[:, :2]
    except OverflowError:
        return None, "non-finite-coordinate", "has a number too large for a double"
    if not np.isfinite(a).all():
        k = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        return None, "non-finite-coordinate", f"position {k} is {ring[k]!r}"
    closed = len(a) > 1 and ring[0][0] == ring[-1][0] and ring[0][1] == ring[-1][1]
    if len(a) < 4:
        extra = "" if closed else " and is not closed"
        return None, "too-few-positions", f"has {len(a)} positions{extra}; a ring needs 4+"
    if not closed:
        return (
            None,
            "unclosed-ring",
            f"is not closed: first position {a[0].tolist()} != last {a[-1].tolist()}",
        )
    return a, None, ""


def _geometry_rings(
    geom: Any, kind: Any
) -> tuple[list[list[np.ndarray]] | None, str, list[tuple[str, str]]]:
    """Structural check of a feature's geometry.

    Returns (parts, geometry type, problems): ``parts`` is a list of polygons, each a
    list of rings (exterior first) as n x 2 arrays, or ``None`` when a problem stops
    the geometry checks; problems are (rule, message).
    """
    if geom is None:
        return None, "", [("missing-geometry", "has no geometry")]
    if not isinstance(geom, Mapping):
        return None, "", [("bad-geometry", f"geometry is {_a_type(geom)}, not an object")]
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        polys_raw = [coords]
        where = ["Polygon"]
    elif gtype == "MultiPolygon":
        if kind == "parking":
            return (
                None,
                gtype,
                [
                    (
                        "bad-geometry-type",
                        "is a parking box with a MultiPolygon geometry; a box is one Polygon",
                    )
                ],
            )
        if not _is_seq(coords):
            return None, gtype, [("bad-geometry", "MultiPolygon coordinates are not an array")]
        if not coords:
            return None, gtype, [("empty-geometry", "MultiPolygon has no polygons")]
        polys_raw = list(coords)
        where = [f"MultiPolygon part {k}" for k in range(len(polys_raw))]
    else:
        return (
            None,
            str(gtype),
            [("bad-geometry-type", f"geometry type {_short(gtype)} is not Polygon")],
        )
    parts: list[list[np.ndarray]] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for poly, w in zip(polys_raw, where, strict=True):
        if not _is_seq(poly):
            problems.append(("bad-geometry", f"{w} coordinates are not an array of rings"))
            continue
        if not poly:
            problems.append(("empty-geometry", f"{w} has no rings"))
            continue
        rings: list[np.ndarray] = []
        for r, ring in enumerate(poly):
            a, rule, detail = _ring_array(ring)
            name = f"{w} exterior ring" if r == 0 else f"{w} hole {r}"
            if a is None:
                if rule not in seen:  # one issue per rule and feature
                    seen.add(str(rule))
                    problems.append((str(rule), f"{name} {detail}"))
            else:
                rings.append(a)
        parts.append(rings)
    if problems:
        return None, gtype, problems
    return parts, gtype, []


def _range_problem(coords: np.ndarray) -> tuple[str, str] | None:
    """(rule, message) when a zone's coordinates are beyond lon ±180 / lat ±90."""
    lon, lat = coords[:, 0], coords[:, 1]
    if not ((np.abs(lon) > 180).any() or (np.abs(lat) > 90).any()):
        return None
    if (np.abs(lat) <= 180).all() and (np.abs(lon) <= 90).all():
        worst = float(lat[np.argmax(np.abs(lat))])
        return (
            "lonlat-swapped",
            f"latitude {worst:g} is beyond ±90 while the swapped pair is in range",
        )
    k = int(np.flatnonzero((np.abs(lon) > 180) | (np.abs(lat) > 90))[0])
    return (
        "lonlat-out-of-range",
        f"position ({float(lon[k]):g}, {float(lat[k]):g}) is beyond lon ±180 / lat ±90",
    )


def _range_filter(z: _Zones, out: _Collector | None) -> _Zones:
    """Drop zones with coordinates out of range (vectorized test), reporting them."""
    counts = [sum(len(r) for p in parts for r in p) for parts in z.parts]
    coords = np.concatenate([r for parts in z.parts for p in parts for r in p])
    bad = (np.abs(coords[:, 0]) > 180) | (np.abs(coords[:, 1]) > 90)
    if not bad.any():
        return z
    zone_of = np.repeat(np.arange(len(counts)), counts)
    drop = set(np.unique(zone_of[bad]).tolist())
    starts = np.r_[0, np.cumsum(counts)]
    kept = _Zones()
    for k in range(len(z.parts)):
        if k in drop:
            problem = _range_problem(coords[starts[k] : starts[k + 1]])
            if out is not None and problem is not None:
                out.error(problem[0], problem[1], feature=z.label[k], index=z.feat[k])
            continue
        kept.feat.append(z.feat[k])
        kept.label.append(z.label[k])
        kept.kind.append(z.kind[k])
        kept.parts.append(z.parts[k])
        kept.multi.append(z.multi[k])
    return kept


def _build(z: _Zones) -> tuple[np.ndarray, ...]:
    """Vectorized shapely construction.

    Returns (geometry per zone, polygons, zone of each polygon, rings, ring is exterior,
    zone of each ring).
    """
    ring_arrays: list[np.ndarray] = []
    ring_poly: list[int] = []
    ring_ext: list[bool] = []
    poly_zone: list[int] = []
    for zi, parts in enumerate(z.parts):
        for rings in parts:
            p = len(poly_zone)
            poly_zone.append(zi)
            for r, a in enumerate(rings):
                ring_arrays.append(a)
                ring_poly.append(p)
                ring_ext.append(r == 0)
    lengths = np.fromiter((len(a) for a in ring_arrays), dtype=np.int64, count=len(ring_arrays))
    coords = np.concatenate(ring_arrays)
    rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(ring_arrays)), lengths))
    polys = shapely.polygons(rings, indices=np.asarray(ring_poly, dtype=np.int64))
    pz = np.asarray(poly_zone, dtype=np.int64)
    multi = np.asarray(z.multi, dtype=bool)
    geoms = np.empty(len(z.parts), dtype=object)
    # single-polygon zones (one polygon each, in order)
    single = ~multi[pz]
    geoms[pz[single]] = polys[single]
    if multi.any():
        sel = multi[pz]
        zones_m = np.flatnonzero(multi)
        remap = np.full(len(multi), -1, dtype=np.int64)
        remap[zones_m] = np.arange(len(zones_m))
        geoms[zones_m] = shapely.multipolygons(polys[sel], indices=remap[pz[sel]])
    ring_zone = pz[np.asarray(ring_poly, dtype=np.int64)]
    return geoms, polys, pz, rings, np.asarray(ring_ext, dtype=bool), ring_zone
