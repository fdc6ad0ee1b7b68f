"""Oracle tests: ZoneIndex.locate / nearest against shapely's covers / distance."""

from __future__ import annotations

import math
import subprocess
import sys

import numba
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geofence
from geofence import _kernels, crs
from geofence.zoneset import KIND_NO_PARKING, KIND_PARKING

X0, Y0 = 455_000.0, 2_460_000.0  # metres, EPSG:4547, central Zhuhai


def rotated_box(cx, cy, w, h, angle_deg):
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return shapely.Polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts])


def to_lonlat(geom_m):
    return shapely.transform(geom_m, lambda c: np.column_stack(crs.unproject(c[:, 0], c[:, 1])))


coord = st.floats(-150, 150)


@st.composite
def zone_m(draw):
    """One zone in metres around (X0, Y0): small box, big polygon with a hole, or multi."""
    shape = draw(st.sampled_from(["box", "box", "box", "poly", "holed", "multi", "lshape"]))
    cx, cy = X0 + draw(coord), Y0 + draw(coord)
    ang = draw(st.floats(0, 180))
    if shape == "box":
        return rotated_box(cx, cy, draw(st.floats(1.5, 3)), draw(st.floats(4, 20)), ang)
    if shape == "lshape":
        b = rotated_box(cx, cy, 6, 12, ang)
        return shapely.difference(b, rotated_box(cx + 2, cy + 3, 4, 8, ang)).normalize()
    r = draw(st.floats(10, 120))
    n = draw(st.integers(3, 9))
    poly = shapely.Point(cx, cy).buffer(r, quad_segs=max(1, n // 4))
    if shape == "holed":
        return poly.difference(shapely.Point(cx, cy).buffer(r / 3, quad_segs=2))
    if shape == "multi":
        return shapely.MultiPolygon(
            [rotated_box(cx, cy, 3, 10, ang), rotated_box(cx + 30, cy + 5, 2, 8, ang)]
        )
    return poly


@st.composite
def city(draw):
    geoms_m = draw(st.lists(zone_m(), min_size=1, max_size=25))
    kinds = draw(
        st.lists(
            st.sampled_from([KIND_PARKING, KIND_NO_PARKING]),
            min_size=len(geoms_m),
            max_size=len(geoms_m),
        )
    )
    geoms = np.array([to_lonlat(g) for g in geoms_m], dtype=object)
    assert shapely.is_valid(geoms).all()
    zs = geofence.ZoneSet.from_arrays(
        geoms, [f"Z{i}" for i in range(len(geoms))], kind=kinds, fenced=True
    )
    return zs


def fixes_for(draw, zs, n):
    """Random fixes plus fixes on and next to zone vertices."""
    xy = np.column_stack(
        [X0 + np.array(draw(st.lists(coord, min_size=n, max_size=n))), np.zeros(n)]
    )
    xy[:, 1] = Y0 + np.array(draw(st.lists(coord, min_size=n, max_size=n)))
    verts = shapely.get_coordinates(zs.geometry_m)
    pick = verts[np.array(draw(st.lists(st.integers(0, len(verts) - 1), min_size=5, max_size=5)))]
    jitter = np.array(draw(st.lists(st.floats(-0.5, 0.5), min_size=10, max_size=10))).reshape(5, 2)
    xy = np.vstack([xy, pick + jitter])
    lon, lat = crs.unproject(xy[:, 0], xy[:, 1])
    return np.asarray(lon), np.asarray(lat)


def oracle_locate(zs, lon, lat):
    x, y = crs.project(lon, lat)
    pts = shapely.points(x, y)
    rank_key = [(int(zs.kind[i] == KIND_NO_PARKING), zs.area_m2[i], i) for i in range(len(zs))]
    out, ambiguous = [], []
    for p in pts:
        cov = [i for i in range(len(zs)) if shapely.covers(zs.geometry_m[i], p)]
        near_edge = any(shapely.distance(shapely.boundary(g), p) < 1e-6 for g in zs.geometry_m)
        out.append(min(cov, key=lambda i: rank_key[i]) if cov else -1)
        ambiguous.append(near_edge)
    return np.array(out), np.array(ambiguous)


# cell sizes: the default, and cells of ~2 m and ~11 m so that zones span many
# cells and several levels (a zone is visited once however many cells it spans)
cell_sizes = st.sampled_from([None, 2e-5, 1e-4])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cell=cell_sizes)
def test_locate_matches_shapely_covers(data, cell):
    zs = data.draw(city())
    lon, lat = fixes_for(data.draw, zs, 40)
    got = geofence.ZoneIndex(zs, cell_size_deg=cell).locate(lon, lat)
    want, ambiguous = oracle_locate(zs, lon, lat)
    # within a micrometre of an edge, lon/lat and projected straight edges may disagree
    assert (got == want)[~ambiguous].all(), (got, want)


def oracle_nearest(zs, lon, lat, k, max_d, mask):
    x, y = crs.project(lon, lat)
    rows = []
    for px, py in zip(x, y, strict=True):
        d = shapely.distance(zs.geometry_m, shapely.Point(px, py))
        cand = sorted((float(d[i]), i) for i in range(len(zs)) if mask[i] and d[i] <= max_d)
        rows.append(cand[:k])
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    k=st.integers(1, 4),
    max_d=st.sampled_from([0.0, 5.0, 50.0, 400.0, math.inf]),
    cell=cell_sizes,
)
def test_nearest_matches_shapely_distance(data, k, max_d, cell):
    zs = data.draw(city())
    lon, lat = fixes_for(data.draw, zs, 25)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(zs), max_size=len(zs))))
    pos, dist = geofence.ZoneIndex(zs, cell_size_deg=cell).nearest(
        lon, lat, k=k, max_distance_m=max_d, mask=mask
    )
    assert pos.shape == dist.shape == (len(lon), k)
    for row_pos, row_dist, want in zip(
        pos, dist, oracle_nearest(zs, lon, lat, k, max_d + 1e-6, mask), strict=True
    ):
        found = [(d, p) for d, p in zip(row_dist, row_pos, strict=True) if p >= 0]
        # distances agree to 1 mm; zones right at the cut-off may fall either side
        want_d = [d for d, _ in want]
        if len(found) != len(want):
            assert len(found) < len(want)
            assert all(abs(d - max_d) < 1e-6 for d in want_d[len(found) :]), (found, want)
            want_d = want_d[: len(found)]
        np.testing.assert_allclose([d for d, _ in found], want_d, atol=1e-3)
        for d, p in found:
            assert mask[p]
            assert d <= max_d
        assert (row_pos[len(found) :] == -1).all() and np.isinf(row_dist[len(found) :]).all()
        # the positions returned are the oracle's, up to ties in distance
        want_by_pos = {p: d for d, p in want}
        for d, p in found:
            if p not in want_by_pos:
                assert any(abs(d - wd) < 1e-3 for wd in want_d)


# ---------------------------------------------------------------- exact edges
# Dyadic coordinates: every midpoint below is exactly representable, so "on the
# edge" is exact and the oracle is shapely's covers on the lon/lat geometry.
U = 2.0**-14  # ~ 6.8 m of longitude


def dyadic_box(i, j, w=1, h=1):
    x0, y0 = 113.5 + i * U, 22.25 + j * U
    return shapely.box(x0, y0, x0 + w * U, y0 + h * U)


@pytest.fixture(scope="module")
def touching():
    """Two boxes sharing an edge, a big no-parking area under both, a holed area."""
    geoms = [
        dyadic_box(0, 0),
        dyadic_box(1, 0, 2, 1),
        dyadic_box(-4, -4, 12, 12),
        shapely.Polygon(dyadic_box(20, 0, 8, 8).exterior, [dyadic_box(22, 2, 4, 4).exterior]),
    ]
    zs = geofence.ZoneSet.from_arrays(
        np.array(geoms, dtype=object),
        ["a", "b", "np", "holed"],
        kind=[KIND_PARKING, KIND_PARKING, KIND_NO_PARKING, KIND_PARKING],
    )
    return zs, geofence.ZoneIndex(zs)


def test_vertices_and_edges_count_as_inside(touching):
    zs, ix = touching
    box_a = zs.geometry[0]
    xs, ys = shapely.get_coordinates(box_a).T
    mid_x = (xs[:-1] + xs[1:]) / 2
    mid_y = (ys[:-1] + ys[1:]) / 2
    lon = np.concatenate([xs, mid_x])
    lat = np.concatenate([ys, mid_y])
    assert shapely.covers(box_a, shapely.points(lon, lat)).all()
    got = ix.locate(lon, lat)
    # on a's boundary: a (1 unit²) is smaller than b (2 units²) and beats the no-parking area
    assert (got == 0).all()


def test_shared_edge_goes_to_smaller_box(touching):
    _zs, ix = touching
    x = 113.5 + U
    lat = 22.25 + U * np.array([0.0, 0.25, 0.5, 1.0])
    assert (ix.locate(np.full(4, x), lat) == 0).all()
    # just right of the shared edge: only b (and the no-parking area under it)
    assert (ix.locate(np.full(4, x + U / 4), lat) == 1).all()


def test_parking_beats_no_parking_then_area(touching):
    _zs, ix = touching
    assert ix.locate([113.5 + U / 2], [22.25 + U / 2]).tolist() == [0]
    assert ix.locate([113.5 + 5 * U], [22.25 + 5 * U]).tolist() == [2]  # only the area


def test_holes(touching):
    _zs, ix = touching
    inside_hole = [113.5 + 24 * U, 22.25 + 4 * U]
    hole_edge = [113.5 + 22 * U, 22.25 + 3 * U]
    ring = [113.5 + 21 * U, 22.25 + 1 * U]
    got = ix.locate(
        [inside_hole[0], hole_edge[0], ring[0]], [inside_hole[1], hole_edge[1], ring[1]]
    )
    assert got.tolist() == [-1, 3, 3]
    pos, dist = ix.nearest([inside_hole[0]], [inside_hole[1]], k=1, max_distance_m=100)
    assert pos[0, 0] == 3 and dist[0, 0] > 0


def test_far_outside_and_non_finite(touching):
    _, ix = touching
    got = ix.locate([120.0, np.nan, 113.5, np.inf], [30.0, 22.25, np.nan, 22.25])
    assert got.tolist() == [-1, -1, -1, -1]
    pos, dist = ix.nearest([120.0, np.nan], [30.0, 22.25], k=2)
    assert (pos == -1).all() and np.isinf(dist).all()


def test_crs_argument(touching):
    _zs, ix = touching
    lon = np.array([113.5 + U / 2, 113.5 + 5 * U, 113.6])
    lat = np.array([22.25 + U / 2, 22.25 + 5 * U, 22.3])
    want = ix.locate(lon, lat)
    for name in ("gcj02", "bd09"):
        glon, glat = crs.from_wgs84(lon, lat, name)
        np.testing.assert_array_equal(ix.locate(glon, glat, crs=name), want)
        p1, d1 = ix.nearest(glon, glat, k=2, crs=name)
        p0, d0 = ix.nearest(lon, lat, k=2)
        np.testing.assert_array_equal(p1, p0)
        np.testing.assert_allclose(d1, d0, atol=1e-3)
    with pytest.raises(geofence.CRSError):
        ix.locate(lon, lat, crs="mars")


def test_shapes_and_bad_arguments(touching):
    _, ix = touching
    assert ix.locate(113.5, 22.25).shape == (1,)
    with pytest.raises(ValueError, match="shapes differ"):
        ix.locate([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="k must be"):
        ix.nearest([113.5], [22.25], k=0)
    with pytest.raises(ValueError, match="mask"):
        ix.nearest([113.5], [22.25], mask=np.ones(3, bool))


def test_closest_point_and_signed_distance(touching):
    zs, ix = touching
    lon = np.array([113.5 + U / 2, 113.5 + U, 113.5 + 3.5 * U])
    lat = np.full(3, 22.25 + U / 2)
    x, y = crs.project(lon, lat)
    d, bx, by = ix.closest_m(np.array([0, 0, 0]), x, y)
    boundary = shapely.boundary(zs.geometry_m[0])
    want = shapely.distance(boundary, shapely.points(x, y))
    assert d[0] < 0 and abs(d[1]) < 1e-6 and d[2] > 0
    np.testing.assert_allclose(np.abs(d), want, atol=1e-6)
    # the closest point lies on the boundary, at that distance
    assert (shapely.distance(boundary, shapely.points(bx, by)) < 1e-6).all()
    np.testing.assert_allclose(np.hypot(bx - x, by - y), want, atol=1e-6)
    assert np.isnan(ix.closest_m(np.array([-1]), x[:1], y[:1])[0][0])


def test_empty_zone_set():
    zs = geofence.ZoneSet.from_geojson({"type": "FeatureCollection", "features": []})
    ix = geofence.ZoneIndex(zs)
    assert ix.locate([113.5], [22.2]).tolist() == [-1]
    pos, _ = ix.nearest([113.5], [22.2], k=3, max_distance_m=math.inf)
    assert (pos == -1).all()


def test_compiled_kernels_are_exercised(touching):
    _, ix = touching
    ix.locate([113.5], [22.25])
    ix.nearest([113.5], [22.25])
    assert _kernels.locate.signatures and _kernels.nearest.signatures


def test_engine_imports_no_web_or_database_code():
    code = (
        "import sys, geofence\n"
        "bad = {'fastapi', 'starlette', 'pydantic', 'sqlalchemy', 'uvicorn', 'httpx'}\n"
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_nearest_finds_a_zone_spanning_many_cells_first_met_near_its_corner():
    """A big area whose lower-left corner lies rings away, but whose upper-right corner
    is 1.4 m from the fix, beats a small box 2 m away (the search stops after a few
    rings). Forty more big areas far away make the search go by cells, not by zones."""
    big = shapely.box(X0 - 100, Y0 - 100, X0 - 1, Y0 - 1)
    small = shapely.box(X0 + 2, Y0 - 1, X0 + 4, Y0 + 1)
    far = [shapely.box(X0 + 1000 + 150 * i, Y0, X0 + 1099 + 150 * i, Y0 + 99) for i in range(40)]
    geoms = np.array([to_lonlat(g) for g in [big, small, *far]], dtype=object)
    kinds = [KIND_NO_PARKING, KIND_PARKING] + [KIND_NO_PARKING] * len(far)
    zs = geofence.ZoneSet.from_arrays(
        geoms, [f"Z{i}" for i in range(len(geoms))], kind=kinds, fenced=True
    )
    lon, lat = crs.unproject(np.array([X0]), np.array([Y0]))
    for cell in (None, 2e-5, 1e-4):
        ix = geofence.ZoneIndex(zs, cell_size_deg=cell)
        for max_d in (20.0, 60.0):
            pos, dist = ix.nearest(lon, lat, k=1, max_distance_m=max_d)
            assert pos[0, 0] == 0, (cell, max_d)
            assert dist[0, 0] == pytest.approx(math.sqrt(2), abs=1e-3)


@numba.njit(cache=True)
def _brute_locate(vxy, ring_start, zone_ring_start, rank, perm, lon, lat, out):
    """The obvious slow path: every zone's exact even-odd test, the best rank wins."""
    for i in range(lon.shape[0]):
        best, best_rank = -1, np.iinfo(np.int32).max
        for z in range(rank.shape[0]):
            if rank[z] < best_rank and _kernels.point_in_zone(
                z, lon[i], lat[i], vxy, ring_start, zone_ring_start
            ):
                best, best_rank = perm[z], rank[z]
        out[i] = best


@st.composite
def quads_and_fixes(draw):
    """Rotated boxes (parallelograms in lon/lat), some with one corner pulled out of
    shape, and fixes on their corners, on their edges and a hair's breadth off them."""
    geoms_m = []
    for _ in range(draw(st.integers(1, 12))):
        box = rotated_box(
            X0 + draw(coord), Y0 + draw(coord), draw(st.floats(0.5, 4)),
            draw(st.floats(2, 30)), draw(st.floats(0, 180)),
        )  # fmt: skip
        pull = draw(st.sampled_from([0.0, 0.0, 1e-9, 1e-4, 0.3]))
        c = shapely.get_coordinates(box)[:4]
        c[2] += pull
        geoms_m.append(shapely.Polygon(c))
    geoms = np.array([to_lonlat(g) for g in geoms_m], dtype=object)
    zs = geofence.ZoneSet.from_arrays(
        geoms, [f"Z{i}" for i in range(len(geoms))], kind=KIND_PARKING, fenced=True
    )
    corners = shapely.get_coordinates(zs.geometry)
    pts = [corners]
    for _ in range(draw(st.integers(5, 30))):
        z = draw(st.integers(0, len(zs) - 1))
        c = shapely.get_coordinates(zs.geometry[z])
        k = draw(st.integers(0, 3))
        a, b = c[k], c[k + 1]
        t = draw(st.floats(0, 1))
        normal = np.array([a[1] - b[1], b[0] - a[0]]) / np.hypot(*(b - a))
        off = draw(st.sampled_from([0.0, 1e-13, -1e-13, 1e-10, -1e-10, 1e-7, -1e-7, 3e-6]))
        pts.append((a + t * (b - a) + off * normal)[None, :])
    xy = np.vstack(pts)
    return zs, np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=quads_and_fixes(), cell=cell_sizes)
def test_bulk_locate_frames_match_the_exact_test(data, cell):
    """Bulk locate decides most boxes from float32 frames (index._entry_frames) and asks
    the exact test near their edges: its answers equal the exact test's everywhere."""
    zs, lon, lat = data
    ix = geofence.ZoneIndex(zs, cell_size_deg=cell)
    g = ix._grid
    want = np.empty(len(lon), np.int64)
    _brute_locate(g.vxy, g.ring_start, g.zone_ring_start, ix._rank, g.perm, lon, lat, want)
    assert ix.locate(lon, lat).tolist() == want.tolist()


def test_boxes_use_frames_and_distorted_quads_do_not():
    boxes = [rotated_box(X0 + 10 * i, Y0, 2, 10, 17 * i) for i in range(5)]
    bent = shapely.Polygon([(X0 - 50, Y0), (X0 - 45, Y0), (X0 - 44, Y0 + 9), (X0 - 50, Y0 + 8)])
    holed = shapely.Point(X0, Y0 + 100).buffer(20).difference(shapely.Point(X0, Y0 + 100).buffer(5))
    geoms = np.array([to_lonlat(g) for g in [*boxes, bent, holed]], dtype=object)
    zs = geofence.ZoneSet.from_arrays(geoms, [f"Z{i}" for i in range(7)], fenced=True)
    ix = geofence.ZoneIndex(zs)
    framed = ix._entry_frame[:, 7] >= 0
    assert sorted(set(ix._entry_frame[framed, 6].tolist())) == [0, 1, 2, 3, 4]
    assert {5, 6} <= set(ix._entry_frame[~framed, 6].tolist())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cell=cell_sizes)
def test_locate_of_one_point_equals_the_bulk_path(data, cell):
    """The single-point entry point (Python floats, one compiled call) answers what
    the bulk kernel answers for the same point in an array, vertices and edges
    included; non-finite points and other CRSs too."""
    zs = data.draw(city())
    lon, lat = fixes_for(data.draw, zs, 40)
    verts = shapely.get_coordinates(zs.geometry)  # exactly on vertices, in lon/lat
    lon = np.concatenate([lon, verts[:, 0], [np.nan, np.inf, 113.5]])
    lat = np.concatenate([lat, verts[:, 1], [22.2, 22.2, np.nan]])
    ix = geofence.ZoneIndex(zs, cell_size_deg=cell)
    bulk = ix.locate(lon, lat)
    one = [ix.locate(float(a), float(b)) for a, b in zip(lon, lat, strict=True)]
    assert all(o.shape == (1,) and o.dtype == np.int64 for o in one)
    assert [int(o[0]) for o in one] == bulk.tolist()
    # numpy scalars and other CRSs take the array path: the same answers
    assert ix.locate(lon[0], lat[0])[0] == bulk[0]
    g_lon, g_lat = crs.from_wgs84(lon[:5], lat[:5], "gcj02")
    pairs = zip(g_lon.tolist(), g_lat.tolist(), strict=True)
    one_g = [ix.locate(a, b, crs="gcj02")[0] for a, b in pairs]
    assert ix.locate(g_lon, g_lat, crs="gcj02").tolist() == [int(o) for o in one_g]
