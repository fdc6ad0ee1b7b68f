"""The geometry rules, vectorized over all zones at once: zero area, GEOS validity
(self-intersection and the rest), the service area (outside, partly outside, lon/lat
swapped), RFC 7946 winding, and on parking boxes their size (minimum rotated rectangle
in EPSG:4547 metres) and overlaps (STRtree candidates, then the true intersection
area). The datum checks run last when a reference layer is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from zones.validate.datum import _datum_checks
from zones.validate.report import _Collector
from zones.validate.rings import _build, _Zones
from zones.validate.rules import (
    BOX_AREA_M2,
    BOX_LENGTH_M,
    BOX_WIDTH_M,
    OVERLAP_MIN_M2,
    ZERO_AREA_M2,
)


def _m2_per_deg2(lat: np.ndarray) -> np.ndarray:
    return 111_320.0 * 110_574.0 * np.cos(np.radians(np.clip(lat, -89.9, 89.9)))


def _project(geoms: np.ndarray) -> np.ndarray:
    from geofence import crs

    def fn(c: np.ndarray) -> np.ndarray:
        x, y = crs.project(c[:, 0], c[:, 1])
        return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])

    return shapely.transform(geoms, fn)


def _first_three(rects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    coords, idx = shapely.get_coordinates(rects, return_index=True)
    n = len(rects)
    counts = np.bincount(idx, minlength=n)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    good = counts >= 4
    s = starts[good]
    return good, coords[s], coords[s + 1], coords[s + 2]


def _geometry_checks(z: _Zones, out: _Collector, *, reference: Any, service_area: Any) -> None:
    n = len(z.feat)
    geoms, polys, poly_zone, rings, ring_ext, ring_zone = _build(z)

    # zero area: a polygon part whose convex hull (or own area) is ~0 m²
    cen = shapely.get_coordinates(shapely.centroid(shapely.envelope(polys)))
    scale = _m2_per_deg2(cen[:, 1])
    hull_m2 = shapely.area(shapely.convex_hull(polys)) * scale
    valid_part = shapely.is_valid(polys)
    part_zero = (hull_m2 < ZERO_AREA_M2) | (
        valid_part & (shapely.area(polys) * scale < ZERO_AREA_M2)
    )
    zero = np.zeros(n, dtype=bool)
    zero[poly_zone[part_zero]] = True

    reasons = shapely.is_valid_reason(geoms)
    valid = np.array([r == "Valid Geometry" for r in reasons], dtype=bool) & ~zero
    for k in np.flatnonzero(zero).tolist():
        out.error(
            "zero-area",
            "has zero area (its corners are collinear or repeated)",
            feature=z.label[k],
            index=z.feat[k],
        )
    for k in np.flatnonzero(~valid & ~zero).tolist():
        reason = str(reasons[k])
        rule = "self-intersection" if "self-intersection" in reason.lower() else "invalid-geometry"
        out.error(rule, f"invalid polygon: {reason}", feature=z.label[k], index=z.feat[k])

    # service area
    if service_area is None:
        from zones.districts import service_area as _default_area

        service_area = _default_area()
    shapely.prepare(service_area)
    vk = np.flatnonzero(valid)
    inter = np.zeros(n, dtype=bool)
    covered = np.zeros(n, dtype=bool)
    if len(vk):
        inter[vk] = shapely.intersects(service_area, geoms[vk])
        covered[vk] = shapely.covers(service_area, geoms[vk])
    kind = np.array([k or "" for k in z.kind])
    outside = valid & ~inter
    swapped_zone = np.zeros(n, dtype=bool)
    if outside.any():
        ok_ = np.flatnonzero(outside)
        swapped = shapely.transform(geoms[ok_], lambda c: c[:, ::-1].copy())
        swap_in = shapely.intersects(service_area, swapped)
        for k, s in zip(ok_.tolist(), swap_in.tolist(), strict=True):
            c = shapely.centroid(geoms[k])
            if s:
                swapped_zone[k] = True
                out.error(
                    "lonlat-swapped",
                    f"lies outside the service area at ({c.x:.5f}, {c.y:.5f}) but inside it "
                    "with lon and lat swapped",
                    feature=z.label[k],
                    index=z.feat[k],
                )
            else:
                out.error(
                    "outside-service-area",
                    f"lies outside the service area, around lon {c.x:.5f} lat {c.y:.5f}",
                    feature=z.label[k],
                    index=z.feat[k],
                )
    for k in np.flatnonzero(valid & inter & ~covered & (kind == "parking")).tolist():
        out.warning(
            "partly-outside-service-area",
            "parking box crosses the service-area outline",
            feature=z.label[k],
            index=z.feat[k],
        )

    # winding (RFC 7946): exterior CCW, holes CW; only for valid zones
    # (not for zones read as lon/lat swapped: swapping reverses their rings)
    rv = (valid & ~swapped_zone)[ring_zone]
    ccw = np.zeros(len(rings), dtype=bool)
    ccw[rv] = shapely.is_ccw(rings[rv])
    bad_ext = rv & ring_ext & ~ccw
    bad_hole = rv & ~ring_ext & ccw
    for rule, mask, what in (
        ("clockwise-exterior", bad_ext, "exterior ring"),
        ("counter-clockwise-hole", bad_hole, "hole"),
    ):
        zs, counts = np.unique(ring_zone[mask], return_counts=True)
        for k, c in zip(zs.tolist(), counts.tolist(), strict=True):
            plural = f"{c} {what}s are" if c > 1 else f"its {what} is"
            direction = "clockwise" if what == "exterior ring" else "counter-clockwise"
            out.warning(rule, f"{plural} {direction}", feature=z.label[k], index=z.feat[k])

    # metric checks on parking boxes inside the service area
    pk = np.flatnonzero(valid & inter & (kind == "parking"))
    if len(pk):
        _box_checks(z, geoms, pk, out)

    if reference is not None:
        _datum_checks(z, geoms, valid, reference, out)


def _box_checks(z: _Zones, geoms: np.ndarray, pk: np.ndarray, out: _Collector) -> None:
    gm = _project(geoms[pk])
    # a ring valid in lon/lat may touch itself once projected (rounding at the
    # micrometre): repair those copies so the metric checks below cannot fail on them
    broken = ~shapely.is_valid(gm)
    if broken.any():
        gm[broken] = shapely.make_valid(gm[broken])
    area = shapely.area(gm)
    rects = shapely.oriented_envelope(gm)
    good, p0, p1, p2 = _first_three(rects)
    width = np.zeros(len(pk))
    length = np.zeros(len(pk))
    a = np.hypot(*(p1 - p0).T)
    b = np.hypot(*(p2 - p1).T)
    width[good] = np.minimum(a, b)
    length[good] = np.maximum(a, b)
    implausible = (
        (width < BOX_WIDTH_M[0])
        | (width > BOX_WIDTH_M[1])
        | (length < BOX_LENGTH_M[0])
        | (length > BOX_LENGTH_M[1])
        | (area < BOX_AREA_M2[0])
        | (area > BOX_AREA_M2[1])
    )
    for j in np.flatnonzero(implausible):
        k = int(pk[j])
        out.warning(
            "implausible-box-size",
            f"box is {width[j]:.2f} m wide, {length[j]:.2f} m long, {area[j]:.2f} m² "
            f"(plausible: width {BOX_WIDTH_M[0]}-{BOX_WIDTH_M[1]} m, length "
            f"{BOX_LENGTH_M[0]}-{BOX_LENGTH_M[1]} m, area {BOX_AREA_M2[0]}-{BOX_AREA_M2[1]} m²)",
            feature=z.label[k],
            index=z.feat[k],
        )

    # overlaps: candidate pairs from the tree, then the true intersection area
    tree = shapely.STRtree(gm)
    left, right = tree.query(gm, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return
    shared = shapely.area(shapely.intersection(gm[left], gm[right]))
    hit = shared > OVERLAP_MIN_M2
    for a_, b_, s in zip(
        left[hit].tolist(), right[hit].tolist(), shared[hit].tolist(), strict=True
    ):
        first, second = sorted((int(pk[a_]), int(pk[b_])), key=lambda k: z.feat[k])
        out.error(
            "overlapping-boxes",
            f"overlaps parking box {z.label[first]!r} (feature #{z.feat[first]}) by {s:.2f} m²",
            feature=z.label[second],
            index=z.feat[second],
        )
