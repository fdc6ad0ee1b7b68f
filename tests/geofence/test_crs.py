"""Tests of geofence.crs: WGS-84 / CGCS2000 / GCJ-02 / BD-09 and the EPSG:4547 projection."""

from __future__ import annotations

import doctest
import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence import _tmerc, crs
from geofence.crs import (
    CRS_NAMES,
    PROJECTED_CRS,
    bd09_to_gcj02,
    bd09_to_wgs84,
    check_crs,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    project,
    to_wgs84,
    unproject,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geofence.errors import CRSError, GeofenceError

# Zhuhai, the service area (a little beyond the city's land in every direction).
ZH_LON = (113.0, 114.4)
ZH_LAT = (21.7, 22.6)
# The out-of-China rule's box, and that box less 0.05 deg (round trips of points
# that a conversion moves across the box's edge cannot work, by the rule's design).
CN_LON = (72.004, 137.8347)
CN_LAT = (0.8293, 55.8271)
CN_IN_LON = (72.054, 137.7847)
CN_IN_LAT = (0.8793, 55.7771)

CONVERSIONS = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
    wgs84_to_bd09,
    bd09_to_wgs84,
]
INVERSES = {gcj02_to_wgs84, bd09_to_gcj02, bd09_to_wgs84}

MM = 1e-3  # metres
DEG_1MM = 1e-8  # degrees of latitude in a little more than 1 mm

# Published reference pairs. WGS-84 -> GCJ-02, (lon, lat) -> (lon, lat): the test
# table of googollee/eviltransform (python/test.py), digits as published.
WGS_GCJ_PAIRS = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
    # wandergis/coordtransform (test/app.js): wgs84togcj02(116.404, 39.915).
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
]
# wandergis/coordtransform: gcj02tobd09(116.404, 39.915) and the closed-form
# bd09togcj02(116.404, 39.915), which is up to ~0.2 m off the exact inverse.
GCJ_BD_PAIR = ((116.404, 39.915), (116.41036949371029, 39.92133699351021))
BD_GCJ_CLOSED_FORM = ((116.404, 39.915), (116.39762729119315, 39.90865673957631))

ABROAD = {
    "Tokyo": (139.6917, 35.6895),
    "London": (-0.1276, 51.5072),
    "New York": (-74.006, 40.7128),
    "Sydney": (151.2093, -33.8688),
    "Null Island": (0.0, 0.0),
    "Singapore": (103.8198, 0.3521),  # south of the box
    "Yakutsk": (129.7, 62.03),  # north of the box
}


def metres(lon1, lat1, lon2, lat2):
    """Distance in metres between nearby points (local equirectangular; < 0.5 % error)."""
    r = 6_371_008.8
    mean_lat = np.radians((np.asarray(lat1) + np.asarray(lat2)) / 2.0)
    dx = np.radians(np.asarray(lon2) - np.asarray(lon1)) * np.cos(mean_lat) * r
    dy = np.radians(np.asarray(lat2) - np.asarray(lat1)) * r
    return np.hypot(dx, dy)


def grid(lon_range, lat_range, n=200):
    lon, lat = np.meshgrid(np.linspace(*lon_range, n), np.linspace(*lat_range, n))
    return lon.ravel(), lat.ravel()


def random_points(lon_range, lat_range, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(*lon_range, n), rng.uniform(*lat_range, n)


zh_lon = st.floats(*ZH_LON, allow_nan=False)
zh_lat = st.floats(*ZH_LAT, allow_nan=False)
cn_lon = st.floats(*CN_LON, allow_nan=False)
cn_lat = st.floats(*CN_LAT, allow_nan=False)


# --------------------------------------------------------------------------- names, constants


def test_public_names_and_constants():
    # __all__ is exactly the package's public bindings (its submodules aside); which names
    # those are is pinned by this file's import of each of them, not retyped here
    public = {n for n in vars(crs) if not n.startswith("_")}
    public -= {n for n in public if inspect.ismodule(getattr(crs, n))}
    assert sorted(crs.__all__) == sorted(public)
    assert CRS_NAMES == ("wgs84", "cgcs2000", "gcj02", "bd09")
    assert PROJECTED_CRS == "EPSG:4547"
    # The published GCJ-02 (Krasovsky) and BD-09 constants.
    assert crs.formulas._A == 6378245.0
    assert crs.formulas._EE == 0.00669342162296594323
    assert crs.formulas._X_PI == math.pi * 3000.0 / 180.0
    assert (crs.formulas._BD_DLON, crs.formulas._BD_DLAT) == (0.0065, 0.006)
    assert (crs.datum._MIN_LON, crs.datum._MAX_LON, crs.datum._MIN_LAT, crs.datum._MAX_LAT) == (
        72.004,
        137.8347,
        0.8293,
        55.8271,
    )


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [(n, n) for n in CRS_NAMES] + [("WGS84", "wgs84"), (" Gcj02 ", "gcj02"), ("BD09", "bd09")],
)
def test_check_crs_normalises(given_name, expected):
    assert check_crs(given_name) == expected


@pytest.mark.parametrize("bad", ["epsg:4326", "wgs-84", "", "mars", None, 4326, b"wgs84"])
def test_check_crs_rejects_unknown_names(bad):
    with pytest.raises(CRSError) as info:
        check_crs(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert all(name in message for name in CRS_NAMES)
    assert isinstance(info.value, GeofenceError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("func", [to_wgs84, from_wgs84])
def test_unknown_crs_raises(func):
    with pytest.raises(CRSError, match=r"'utm'.*wgs84, cgcs2000, gcj02, bd09"):
        func(113.5, 22.2, "utm")


def test_docstring_examples_run():
    modules = (crs, crs.names, crs.formulas, crs.datum, crs.projection)
    results = [doctest.testmod(m, optionflags=doctest.ELLIPSIS) for m in modules]
    assert sum(r.attempted for r in results) >= 14
    assert sum(r.failed for r in results) == 0


# --------------------------------------------------------------------------- reference values


@pytest.mark.parametrize(("wgs", "gcj"), WGS_GCJ_PAIRS)
def test_wgs84_to_gcj02_matches_published_pairs(wgs, gcj):
    lon, lat = wgs84_to_gcj02(*wgs)
    assert lon[0] == pytest.approx(gcj[0], abs=1e-12)
    assert lat[0] == pytest.approx(gcj[1], abs=1e-12)
    # The vectorised path agrees too.
    lon2, lat2 = wgs84_to_gcj02([wgs[0]] * 3, [wgs[1]] * 3)
    np.testing.assert_allclose(lon2, gcj[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lat2, gcj[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("wgs", "gcj"), WGS_GCJ_PAIRS)
def test_gcj02_to_wgs84_inverts_published_pairs(wgs, gcj):
    lon, lat = gcj02_to_wgs84(*gcj)
    assert metres(lon[0], lat[0], *wgs) < MM


def test_gcj02_to_bd09_matches_published_pair():
    (gcj_lon, gcj_lat), (bd_lon, bd_lat) = GCJ_BD_PAIR
    lon, lat = gcj02_to_bd09([gcj_lon, gcj_lon], [gcj_lat, gcj_lat])
    np.testing.assert_allclose(lon, bd_lon, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lat, bd_lat, rtol=0, atol=1e-12)
    lon, lat = gcj02_to_bd09(gcj_lon, gcj_lat)
    assert (lon[0], lat[0]) == pytest.approx((bd_lon, bd_lat), abs=1e-12)


def test_bd09_to_gcj02_refines_the_closed_form():
    (bd_lon, bd_lat), (cf_lon, cf_lat) = BD_GCJ_CLOSED_FORM
    lon, lat = bd09_to_gcj02(bd_lon, bd_lat)
    # Within the closed form's known error, and an exact inverse where it is not.
    assert metres(lon[0], lat[0], cf_lon, cf_lat) < 0.25
    back = gcj02_to_bd09(lon, lat)
    assert metres(back[0][0], back[1][0], bd_lon, bd_lat) < MM / 10
    back_cf = gcj02_to_bd09(cf_lon, cf_lat)
    assert metres(back_cf[0][0], back_cf[1][0], bd_lon, bd_lat) > MM


def test_zhuhai_offset_is_570_to_640_m():
    lon, lat = grid(ZH_LON, ZH_LAT)
    glon, glat = wgs84_to_gcj02(lon, lat)
    offset = metres(lon, lat, glon, glat)
    assert offset.min() > 300.0
    assert offset.max() < 700.0
    assert 550.0 < offset.min() and offset.max() < 660.0  # measured 570-638 m
    # East and south: about +0.005 deg lon, -0.003 deg lat.
    assert np.all((glon - lon > 0.004) & (glon - lon < 0.006))
    assert np.all((glat - lat < -0.002) & (glat - lat > -0.0035))


def test_to_and_from_wgs84_dispatch():
    lon, lat = 113.5, 22.2
    assert np.array_equal(np.stack(to_wgs84(lon, lat, "wgs84")), [[lon], [lat]])
    assert np.array_equal(np.stack(to_wgs84(lon, lat, "CGCS2000")), [[lon], [lat]])
    assert np.array_equal(np.stack(from_wgs84(lon, lat, "cgcs2000")), [[lon], [lat]])
    assert np.array_equal(
        np.stack(from_wgs84(lon, lat, "gcj02")), np.stack(wgs84_to_gcj02(lon, lat))
    )
    assert np.array_equal(np.stack(from_wgs84(lon, lat, "bd09")), np.stack(wgs84_to_bd09(lon, lat)))
    g = wgs84_to_gcj02(lon, lat)
    assert np.array_equal(np.stack(to_wgs84(*g, "gcj02")), np.stack(gcj02_to_wgs84(*g)))
    b = wgs84_to_bd09(lon, lat)
    assert np.array_equal(np.stack(to_wgs84(*b, "bd09")), np.stack(bd09_to_wgs84(*b)))
    assert np.array_equal(
        np.stack(wgs84_to_bd09(lon, lat)), np.stack(gcj02_to_bd09(*wgs84_to_gcj02(lon, lat)))
    )


# --------------------------------------------------------------------------- round trips


def _assert_round_trip(lon, lat, forward, inverse, limit_m=MM):
    flon, flat = forward(lon, lat)
    blon, blat = inverse(flon, flat)
    error = metres(lon, lat, blon, blat)
    assert error.max() < limit_m, f"max round-trip error {error.max():.3g} m"


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [
        (wgs84_to_gcj02, gcj02_to_wgs84),
        (gcj02_to_wgs84, wgs84_to_gcj02),
        (gcj02_to_bd09, bd09_to_gcj02),
        (bd09_to_gcj02, gcj02_to_bd09),
        (wgs84_to_bd09, bd09_to_wgs84),
        (bd09_to_wgs84, wgs84_to_bd09),
    ],
)
def test_round_trips_below_1_mm_over_zhuhai_and_china(forward, inverse):
    _assert_round_trip(*grid(ZH_LON, ZH_LAT), forward, inverse)
    # Whole box, one array larger than a chunk; and the non-smooth line lon = 105.
    _assert_round_trip(*random_points(CN_IN_LON, CN_IN_LAT, 50_000, seed=1), forward, inverse)
    lat = np.linspace(1.0, 55.0, 500)
    _assert_round_trip(np.full_like(lat, 105.0), lat, forward, inverse)


@pytest.mark.parametrize("name", ["gcj02", "bd09", "wgs84", "cgcs2000"])
@settings(max_examples=100, deadline=None)
@given(lon=zh_lon, lat=zh_lat)
def test_round_trip_property_via_dispatch(name, lon, lat):
    # from_wgs84 then to_wgs84 gives back the WGS-84 point to < 1 mm (scalar path) ...
    back = to_wgs84(*from_wgs84(lon, lat, name), name)
    assert metres(lon, lat, back[0][0], back[1][0]) < MM
    # ... and gcj02 -> wgs84 -> gcj02 the other way round.
    there = to_wgs84(lon, lat, name)
    again = from_wgs84(*there, name)
    assert metres(lon, lat, again[0][0], again[1][0]) < MM


def test_inverse_iteration_constants_bound_the_contraction():
    # The stopping rule trusts ||J - I||_inf <= the contraction constants; check them
    # with finite differences over the whole box (away from the sqrt kink at lon 105).
    lon, lat = random_points(CN_LON, CN_LAT, 100_000, seed=2)
    lon = lon[np.abs(lon - 105.0) > 1e-3]
    lat = lat[: lon.size]
    h = 1e-6

    def jacobian_minus_identity_norm(func):
        x0, y0 = func(lon, lat)
        xl, yl = func(lon + h, lat)
        xb, yb = func(lon, lat + h)
        j11, j21 = (xl - x0) / h - 1.0, (yl - y0) / h
        j12, j22 = (xb - x0) / h, (yb - y0) / h - 1.0
        return np.maximum(np.abs(j11) + np.abs(j12), np.abs(j21) + np.abs(j22)).max()

    assert jacobian_minus_identity_norm(wgs84_to_gcj02) < crs.formulas._GCJ_CONTRACTION
    assert jacobian_minus_identity_norm(gcj02_to_bd09) < crs.formulas._BD_CONTRACTION


# --------------------------------------------------------------------------- monotonicity


def test_gcj02_is_monotonic_over_zhuhai():
    lon, lat = np.meshgrid(np.linspace(*ZH_LON, 1401), np.linspace(*ZH_LAT, 91))
    glon, _ = wgs84_to_gcj02(lon, lat)
    assert np.all(np.diff(glon, axis=1) > 0)  # east stays east
    lon_t, lat_t = np.meshgrid(np.linspace(*ZH_LON, 141), np.linspace(*ZH_LAT, 901))
    _, glat_t = wgs84_to_gcj02(lon_t, lat_t)
    assert np.all(np.diff(glat_t, axis=0) > 0)  # north stays north


@settings(max_examples=200, deadline=None)
@given(lon=zh_lon, lat=zh_lat, step=st.floats(1e-7, 0.05))
def test_gcj02_and_bd09_preserve_order(lon, lat, step):
    for func in (wgs84_to_gcj02, wgs84_to_bd09):
        x, y = func([lon, lon + step, lon], [lat, lat, lat + step])
        assert x[1] > x[0]
        assert y[2] > y[0]


# --------------------------------------------------------------------------- out of China


def test_out_of_china_rule_and_bounds():
    lon = [113.5, 139.6917, -0.1276, 72.004, 137.8347, 100.0, 100.0, 72.0039, 137.8348]
    lat = [22.2, 35.6895, 51.5072, 30.0, 30.0, 0.8293, 55.8271, 30.0, 30.0]
    expected = [False, True, True, False, False, False, False, True, True]
    assert out_of_china(lon, lat).tolist() == expected
    assert out_of_china(lon, lat).dtype == np.bool_
    assert out_of_china(139.69, 35.69).shape == (1,)


@pytest.mark.parametrize("place", sorted(ABROAD))
@pytest.mark.parametrize("func", CONVERSIONS)
def test_points_outside_china_are_unchanged(func, place):
    lon, lat = ABROAD[place]
    x, y = func(lon, lat)  # scalar path
    assert (x[0], y[0]) == (lon, lat)
    x, y = func([lon, lon], [lat, lat])  # vector path
    assert x.tolist() == [lon, lon]
    assert y.tolist() == [lat, lat]


@pytest.mark.parametrize("name", CRS_NAMES)
def test_dispatch_outside_china_is_identity(name):
    lon = np.array([v[0] for v in ABROAD.values()])
    lat = np.array([v[1] for v in ABROAD.values()])
    for func in (to_wgs84, from_wgs84):
        x, y = func(lon, lat, name)
        assert np.array_equal(x, lon)
        assert np.array_equal(y, lat)


@pytest.mark.parametrize("func", CONVERSIONS)
def test_mixed_inside_and_outside_in_one_array(func):
    # Larger than a chunk, so both the all-inside and the masked branch run.
    zh_lon, zh_lat = random_points(ZH_LON, ZH_LAT, 40_000, seed=3)
    lon = zh_lon.copy()
    lat = zh_lat.copy()
    lon[::7] = 139.6917  # Tokyo
    lat[::7] = 35.6895
    x, y = func(lon, lat)
    outside = np.zeros(lon.size, dtype=bool)
    outside[::7] = True
    assert np.array_equal(x[outside], lon[outside])
    assert np.array_equal(y[outside], lat[outside])
    ref_x, ref_y = func(lon[~outside], lat[~outside])
    # Inverses iterate per chunk, so other chunk contents may add an iteration.
    tol = 1e-9 if func in INVERSES else 0.0
    np.testing.assert_allclose(x[~outside], ref_x, rtol=0, atol=tol)
    np.testing.assert_allclose(y[~outside], ref_y, rtol=0, atol=tol)
    assert np.all(metres(lon[~outside], lat[~outside], x[~outside], y[~outside]) > 300.0)


# --------------------------------------------------------------------------- scalar vs vector


@pytest.mark.parametrize("func", CONVERSIONS)
@settings(max_examples=50, deadline=None)
@given(points=st.lists(st.tuples(cn_lon, cn_lat), min_size=2, max_size=20))
def test_scalar_and_vector_paths_agree(func, points):
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    x, y = func(lon, lat)
    tol = 2e-9 if func in INVERSES else 1e-12  # inverses: each stops within 1e-9 deg
    for i, (plon, plat) in enumerate(points):
        sx, sy = func(plon, plat)
        assert abs(sx[0] - x[i]) <= tol
        assert abs(sy[0] - y[i]) <= tol


# --------------------------------------------------------------------------- shapes, dtypes, input


@pytest.mark.parametrize("func", [*CONVERSIONS, project, unproject])
def test_shapes_and_dtypes(func):
    args = (113.5, 22.2) if func is not unproject else (448441.0, 2456031.0)
    x, y = func(*args)
    assert x.shape == y.shape == (1,)
    assert x.dtype == y.dtype == np.float64
    for shape in [(0,), (3,), (2, 3), (1, 1)]:
        a = np.full(shape, args[0], dtype=np.float32)
        b = np.full(shape, args[1])
        x, y = func(a, b)
        assert x.shape == y.shape == shape
        assert x.dtype == y.dtype == np.float64
    x, y = func([int(args[0])] * 4, args[1])  # ints, broadcast scalar
    assert x.shape == y.shape == (4,)
    assert np.all(x == x[0])


@pytest.mark.parametrize("func", [*CONVERSIONS, project, unproject])
def test_results_are_new_arrays_and_inputs_untouched(func):
    lon = np.array([113.5, 113.6, 139.69])
    lat = np.array([22.2, 22.3, 35.69])
    keep = (lon.copy(), lat.copy())
    x, y = func(lon, lat)
    assert not np.shares_memory(x, lon)
    assert not np.shares_memory(y, lat)
    assert np.array_equal(lon, keep[0])
    assert np.array_equal(lat, keep[1])


@pytest.mark.parametrize("name", CRS_NAMES)
def test_identity_conversions_copy(name):
    lon = np.array([113.5, 113.6])
    lat = np.array([22.2, 22.3])
    x, _ = to_wgs84(lon, lat, name)
    x[0] = 0.0
    assert lon[0] == 113.5


def test_non_contiguous_input():
    pts = np.array([[113.5, 22.2], [113.6, 22.3], [113.7, 22.4]])
    x, y = wgs84_to_gcj02(pts[:, 0], pts[:, 1])
    ref = wgs84_to_gcj02(pts[:, 0].copy(), pts[:, 1].copy())
    assert np.array_equal(x, ref[0])
    assert np.array_equal(y, ref[1])


@pytest.mark.parametrize("func", [*CONVERSIONS, project, unproject, out_of_china])
@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        ("113.5", 22.2),
        (["a", "b"], [1.0, 2.0]),
        (None, 22.2),
        (113.5 + 1j, 22.2),
        (True, 22.2),
        ([113.5, None], [22.2, 22.3]),
        ([113.5, 113.6], [22.2, 22.3, 22.4]),
        (np.zeros((2, 3)), np.zeros((3, 2))),
    ],
)
def test_unusable_coordinates_raise(func, lon, lat):
    with pytest.raises(CRSError):
        func(lon, lat)


def test_unusable_coordinates_raise_through_dispatch():
    with pytest.raises(CRSError, match="lon and lat have incompatible shapes"):
        to_wgs84([1.0, 2.0], [1.0, 2.0, 3.0], "wgs84")
    with pytest.raises(CRSError, match="numeric"):
        from_wgs84(["x"], [1.0], "gcj02")


# --------------------------------------------------------------------------- NaN and inf


@pytest.mark.parametrize("func", CONVERSIONS)
def test_nan_propagates(func):
    # Scalar path: a NaN in either coordinate of a point in the box gives (nan, nan).
    for lon, lat in [(math.nan, 22.2), (113.5, math.nan), (math.nan, math.nan)]:
        x, y = func(lon, lat)
        assert np.isnan(x[0])
        assert np.isnan(y[0])
    # Vector path: NaNs stay NaN and do not disturb the other points (nor stop the
    # inverse iterations early).
    lon, lat = random_points(ZH_LON, ZH_LAT, 1000, seed=4)
    lon[::3] = np.nan
    lat[1::5] = np.nan
    bad = np.isnan(lon) | np.isnan(lat)
    x, y = func(lon, lat)
    assert np.all(np.isnan(x[bad]))
    assert np.all(np.isnan(y[bad]))
    assert np.all(np.isfinite(x[~bad]))
    ref_x, ref_y = func(lon[~bad], lat[~bad])
    tol = 1e-9 if func in INVERSES else 0.0
    np.testing.assert_allclose(x[~bad], ref_x, rtol=0, atol=tol)
    np.testing.assert_allclose(y[~bad], ref_y, rtol=0, atol=tol)


def test_nan_in_inverse_does_not_stop_iteration():
    glon, glat = wgs84_to_gcj02(*grid(ZH_LON, ZH_LAT, 50))
    wlon, wlat = grid(ZH_LON, ZH_LAT, 50)
    glon[0] = np.nan
    x, y = gcj02_to_wgs84(glon, glat)
    assert np.isnan(x[0])
    assert metres(wlon[1:], wlat[1:], x[1:], y[1:]).max() < MM


def test_nan_and_inf_semantics_documented():
    assert out_of_china(math.nan, 22.2).tolist() == [False]  # NaN is "in" China ...
    x, y = to_wgs84([math.nan, math.inf, 113.5], [22.2, 22.2, -math.inf], "gcj02")
    assert np.isnan(x[0]) and np.isnan(y[0])  # ... so the formula turns it into NaN
    assert (x[1], y[1]) == (math.inf, 22.2)  # infinities are outside: unchanged
    assert (x[2], y[2]) == (113.5, -math.inf)
    x, y = to_wgs84([math.nan], [22.2], "wgs84")
    assert np.isnan(x[0]) and y[0] == 22.2


@pytest.mark.parametrize("func", [project, unproject])
def test_projection_nan_and_inf(func):
    x, y = func([math.nan, 1.0], [1.0, math.nan])
    assert np.all(np.isnan(x)) and np.all(np.isnan(y))
    x, y = func(math.nan, 22.2)
    assert np.isnan(x[0]) and np.isnan(y[0])
    x, y = func(math.inf, 22.2)
    assert not np.isfinite(x[0])


# --------------------------------------------------------------------------- projection


def test_project_known_value():
    x, y = project(113.5, 22.2)
    assert x[0] == pytest.approx(448441.1648, abs=1e-3)
    assert y[0] == pytest.approx(2456031.8064, abs=1e-3)
    # The central meridian maps to the false easting.
    x, _ = project(114.0, [21.8, 22.4])
    np.testing.assert_allclose(x, 500000.0, rtol=0, atol=1e-6)


def test_project_paths_agree():
    # Python floats, NumPy scalars, 0-d / 1-element arrays and longer arrays.
    expected = project(113.5, 22.2)
    for lon, lat in [
        (np.float64(113.5), np.float64(22.2)),
        (np.array(113.5), np.array(22.2)),
        (np.array([113.5]), np.array([22.2])),
        (np.float32(113.5).item(), 22.2),
    ]:
        got = project(lon, lat)
        assert got[0].tolist() == expected[0].tolist()
        assert got[1].tolist() == expected[1].tolist()
    x, y = project([113.5, 113.6], [22.2, 22.3])
    assert x[0] == expected[0][0]
    assert y[0] == expected[1][0]
    x, y = project(np.array([[113.5]]), np.array([[22.2]]))
    assert x.shape == (1, 1)
    assert x[0, 0] == expected[0][0]


def test_project_round_trip_below_1_mm():
    lon, lat = grid(ZH_LON, ZH_LAT)
    x, y = project(lon, lat)
    blon, blat = unproject(x, y)
    assert metres(lon, lat, blon, blat).max() < MM
    bx, by = project(blon, blat)
    assert np.hypot(bx - x, by - y).max() < MM


@settings(max_examples=100, deadline=None)
@given(lon=zh_lon, lat=zh_lat)
def test_project_round_trip_property(lon, lat):
    x, y = project(lon, lat)
    blon, blat = unproject(x, y)
    assert metres(lon, lat, blon[0], blat[0]) < MM


def test_projected_distances_are_metres():
    # 0.001 deg of latitude near 22.2 N is about 110.7 m on the ellipsoid.
    x, y = project([113.5, 113.5], [22.2, 22.201])
    assert math.hypot(x[1] - x[0], y[1] - y[0]) == pytest.approx(110.75, abs=0.1)


def test_transformer_is_cached():
    assert crs.projection._transformer(False) is crs.projection._transformer(False)
    assert crs.projection._transformer(True) is crs.projection._transformer(True)
    assert crs.projection._transformer(False) is not crs.projection._transformer(True)


# ------------------------------------------------- the vectorized series (geofence._tmerc)
def _proj(lon, lat):
    """PROJ's own answer (the transformer `project` used before the series)."""
    x, y = crs.projection._transformer(False).transform(
        np.asarray(lon, float), np.asarray(lat, float)
    )
    return np.asarray(x), np.asarray(y)


def test_project_matches_proj_over_its_domain():
    rng = np.random.default_rng(20261126)
    lon = np.concatenate([rng.uniform(99.0, 129.0, 200_000), rng.uniform(*ZH_LON, 100_000)])
    lat = np.concatenate([rng.uniform(-85.0, 85.0, 200_000), rng.uniform(*ZH_LAT, 100_000)])
    # the edges of the domain, the central meridian and the equator
    lon = np.concatenate([lon, [99.0, 129.0, 114.0, 114.0, 114.0, 113.5, 99.0, 129.0]])
    lat = np.concatenate([lat, [85.0, -85.0, 0.0, 85.0, -85.0, 0.0, 0.0, 22.2]])
    x, y = project(lon, lat)
    px, py = _proj(lon, lat)
    assert np.abs(x - px).max() < 2e-8  # metres: 20 nm
    assert np.abs(y - py).max() < 2e-8


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(114.0 - _tmerc.MAX_DLON, 114.0 + _tmerc.MAX_DLON),
    lat=st.floats(-_tmerc.MAX_ABS_LAT, _tmerc.MAX_ABS_LAT),
)
def test_project_matches_proj_property(lon, lat):
    x, y = project(lon, lat)
    px, py = _proj([lon], [lat])
    assert abs(x[0] - px[0]) < 2e-8 and abs(y[0] - py[0]) < 2e-8


def test_project_gives_the_same_bits_alone_or_in_any_batch():
    rng = np.random.default_rng(7)
    lon = rng.uniform(*ZH_LON, 3000)
    lat = rng.uniform(*ZH_LAT, 3000)
    x, y = project(lon, lat)
    for i in range(0, 3000, 7):
        for a, b in (
            (float(lon[i]), float(lat[i])),  # the scalar path
            (lon[i : i + 1], lat[i : i + 1]),
            (np.float64(lon[i]), np.float64(lat[i])),
        ):
            xi, yi = project(a, b)
            assert (xi[0], yi[0]) == (x[i], y[i])
    # strided, reversed, and as part of another batch
    xs, ys = project(np.repeat(lon, 2)[::2], np.repeat(lat, 2)[::2])
    assert np.array_equal(xs, x) and np.array_equal(ys, y)
    xr, yr = project(lon[::-1], lat[::-1])
    assert np.array_equal(xr[::-1], x) and np.array_equal(yr[::-1], y)
    xm, ym = project(np.r_[lon[:100], 200.0, lon[100:]], np.r_[lat[:100], 22.0, lat[100:]])
    assert np.array_equal(np.delete(xm, 100), x) and np.array_equal(np.delete(ym, 100), y)


def test_project_outside_the_series_domain_is_projs():
    lon = np.array([113.5, 98.9, 129.5, 200.0, 113.5, 113.5, 113.5, math.inf, 113.5])
    lat = np.array([22.2, 22.2, 22.2, 22.0, 85.5, -89.0, 95.0, 22.2, math.nan])
    x, y = project(lon, lat)
    px, py = _proj(lon, lat)
    assert np.array_equal(x[1:], px[1:], equal_nan=True)
    assert np.array_equal(y[1:], py[1:], equal_nan=True)
    assert x[6] == math.inf and np.isnan(x[8])
    assert _tmerc.in_domain(lon, lat).tolist() == [True] + [False] * 8
    one = [_tmerc.in_domain_one(a, b) for a, b in zip(lon.tolist(), lat.tolist(), strict=True)]
    assert one == [True] + [False] * 8
    for a, b in zip(lon[1:].tolist(), lat[1:].tolist(), strict=True):  # scalar path, one by one
        xi, yi = project(a, b)
        pa, pb = _proj([a], [b])
        assert np.array_equal(xi, pa, equal_nan=True) and np.array_equal(yi, pb, equal_nan=True)
