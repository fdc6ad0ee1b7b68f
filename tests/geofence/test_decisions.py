"""Settlement decisions: p_inside against Monte Carlo, outcomes, reasons, bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Geod

import geofence
from geofence import Check, CheckError, Fix, Policy, crs, decide, decide_many
from geofence import decisions as D
from geofence.calibration import Calibration
from geofence.decisions.inputs import SIGMA_PER_R68
from geofence.decisions.probability import _frames, _poly_p, _rect_p, _rectangles
from geofence.decisions.tables import _tables

# the rules' tests take reports at face value (no floor, bias or outliers): what they
# test is the rule, not the error model (tests/geofence/test_error_model.py does that)
FACE = Calibration.face_value()

X0, Y0 = 455_000.0, 2_460_000.0  # metres, EPSG:4547, central Zhuhai
T = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
SIGMA = SIGMA_PER_R68


def rotated_box(cx, cy, w, h, angle_deg):
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return shapely.Polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts])


def lonlat(geom_m):
    return shapely.transform(geom_m, lambda c: np.column_stack(crs.unproject(c[:, 0], c[:, 1])))


def fix_at(x, y, accuracy, **kw):
    lon, lat = crs.unproject(x, y)
    return Fix(float(lon[0]), float(lat[0]), accuracy_m=accuracy, **kw)


def index_of(geoms_m, **attrs):
    n = len(geoms_m)
    attrs.setdefault("fenced", True)
    zs = geofence.ZoneSet.from_arrays(
        np.array([lonlat(g) for g in geoms_m], dtype=object),
        [f"Z{i}" for i in range(n)],
        version=7,
        **attrs,
    )
    return geofence.ZoneIndex(zs)


def monte_carlo(geom_m, x, y, sigma, n=200_000, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.normal((x, y), sigma, (n, 2))
    return float(shapely.contains_xy(geom_m, pts[:, 0], pts[:, 1]).mean())


# ---------------------------------------------------------------- p_inside
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.floats(1.5, 3.0),
    h=st.floats(4.0, 20.0),
    angle=st.floats(0, 180),
    dx=st.floats(-6, 6),
    dy=st.floats(-12, 12),
    accuracy=st.floats(0.3, 10.0),
    tol=st.sampled_from([0.0, 0.3]),
)
def test_p_inside_rectangle_matches_monte_carlo(w, h, angle, dx, dy, accuracy, tol):
    box = rotated_box(X0, Y0, w, h, angle)
    ix = index_of([box])
    d = decide(ix, Check(fixes=(fix_at(X0 + dx, Y0 + dy, accuracy),), ended_at=T), Policy(
        tolerance_m=tol, calibration=FACE), T)  # fmt: skip
    widened = rotated_box(X0, Y0, w + 2 * tol, h + 2 * tol, angle)
    # the fix went through lon/lat and back: use the position the decision used
    x, y = crs.project(d.position["lon"], d.position["lat"])
    want = monte_carlo(widened, x[0], y[0], accuracy / SIGMA)
    assert abs(d.p_inside - want) < 0.01


@st.composite
def odd_shape(draw):
    """Non-rectangular boxes: trapezoids, chamfered corners, L shapes."""
    kind = draw(st.sampled_from(["trapezoid", "chamfer", "lshape"]))
    w, h = draw(st.floats(1.5, 3.0)), draw(st.floats(4.0, 16.0))
    if kind == "trapezoid":
        t = draw(st.floats(0.2, 0.8))
        g = shapely.Polygon([(0, 0), (w, 0), (w * t, h), (0, h)])
    elif kind == "chamfer":
        c = draw(st.floats(0.2, 0.9)) * min(w, h) / 2
        g = shapely.Polygon([(0, 0), (w - c, 0), (w, c), (w, h), (0, h)])
    else:
        g = shapely.Polygon([(0, 0), (w * 3, 0), (w * 3, w), (w, w), (w, h), (0, h)])
    a = draw(st.floats(0, 180))
    return shapely.affinity.translate(shapely.affinity.rotate(g, a, origin=(0, 0)), X0, Y0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=odd_shape(),
    dx=st.floats(-5, 5),
    dy=st.floats(-5, 5),
    accuracy=st.floats(0.3, 8.0),
    tol=st.sampled_from([0.0, 0.3]),
)
def test_p_inside_other_shapes_matches_monte_carlo(shape, dx, dy, accuracy, tol):
    ix = index_of([shape])
    assert np.isnan(_tables(ix, tol).rect[0, 0])  # the numeric path
    c = shapely.centroid(shape)
    check = Check(fixes=(fix_at(c.x + dx, c.y + dy, accuracy),), ended_at=T)
    d = decide(ix, check, Policy(tolerance_m=tol, calibration=FACE), T)
    widened = shapely.buffer(shape, tol, join_style="mitre")
    # one fix is its own fused position; the decision's position is rounded to 1e-7
    # degrees (~1 cm), which moves p by more than the tolerance for a fix of 0.3 m
    x, y = crs.project(check.fixes[0].lon, check.fixes[0].lat)
    want = monte_carlo(widened, x[0], y[0], accuracy / SIGMA)
    assert abs(d.p_inside - want) < 0.01


def prepared(geom):
    """A polygon as _build_tables hands it to _poly_p: oriented, framed, flat rings.

    Returns (to_frame, vx, vy, ring_start, zone_ring_start); to_frame(x, y) maps a
    point into the polygon's frame."""
    from geofence.index import _flatten

    framed, frame = _frames(np.array([shapely.orient_polygons(geom)], dtype=object))
    ox, oy, cs, sn = frame[0]

    def to_frame(x, y):
        return (x - ox) * cs - (y - oy) * sn, (x - ox) * sn + (y - oy) * cs

    return (to_frame, *_flatten(framed))


def poly_p(geom, x, y, s):
    to_frame, vx, vy, rs, zrs = prepared(geom)
    return _poly_p(0, *to_frame(x, y), s, vx, vy, rs, zrs)


def slab_integral(geom, x, y, s, nodes=40):
    """Oracle: P(N((x, y), s^2 I) in geom) the slow, obvious way, orientation-blind.

    Slabs along y between the vertex heights and y + j s / 32 (within 9 s); in each,
    Gauss-Legendre in y of the Gaussian's y-density times the even-odd sum of
    erf-differences over the rings' crossings of that line. (Slabs of s / 4 with 20
    nodes were off by up to 8.5e-6 for a fix a few hundredths of s from a vertex.)"""
    rings = [np.asarray(geom.exterior.coords)] + [np.asarray(r.coords) for r in geom.interiors]
    a = np.concatenate([r[:-1] for r in rings])
    b = np.concatenate([r[1:] for r in rings])
    lo, hi = max(y - 9 * s, a[:, 1].min()), min(y + 9 * s, a[:, 1].max())
    if hi <= lo:
        return 0.0
    cuts = np.concatenate(([lo, hi], a[:, 1], y + s / 32 * np.arange(-288, 289)))
    cuts = np.unique(cuts[(cuts >= lo) & (cuts <= hi)])
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    mid, half = (cuts[1:] + cuts[:-1]) / 2, (cuts[1:] - cuts[:-1]) / 2
    yy = (mid[:, None] + half[:, None] * gx).ravel()  # every node of every slab
    w = (half[:, None] * gw).ravel()
    crosses = (a[None, :, 1] > yy[:, None]) != (b[None, :, 1] > yy[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = a[:, 0] + (yy[:, None] - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    xc = np.sort(np.where(crosses, xc, np.inf), axis=1)  # crossings first, in order
    from scipy.special import erf

    e = np.where(np.isfinite(xc), erf((xc - x) / (s * math.sqrt(2))), 0.0)
    along = (e[:, 1::2] - e[:, 0:-1:2]).sum(axis=1) / 2  # inside between pairs
    density = np.exp(-0.5 * ((yy - y) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    return float((w * density * along).sum())


@given(
    w=st.floats(1.0, 4.0),
    h=st.floats(3.0, 20.0),
    angle=st.floats(0, 180),
    dx=st.floats(-8, 8),
    dy=st.floats(-15, 15),
    s=st.floats(0.1, 7.0),
)
@settings(max_examples=200, deadline=None)
def test_closed_form_equals_the_polygon_formula(w, h, angle, dx, dy, s):
    """Oracle: the rectangle's closed form against the general polygon formula."""
    box = rotated_box(X0, Y0, w, h, angle)
    rect = _rectangles(np.array([box], dtype=object))
    closed = _rect_p(X0 + dx, Y0 + dy, s, rect, 0, 0.0)
    assert abs(closed - poly_p(box, X0 + dx, Y0 + dy, s)) < 1e-9


@st.composite
def polygon(draw):
    """Convex, star-shaped (concave) and holed polygons of 1-20 m, any orientation."""
    kind = draw(st.sampled_from(["convex", "star", "holed"]))
    n = draw(st.integers(3 if kind == "convex" else 5, 12))
    size = draw(st.floats(1.0, 20.0))
    turn = np.sort(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n, unique=True)))
    radii = draw(st.lists(st.floats(0.3, 1.0), min_size=n, max_size=n))
    ang = 2 * np.pi * turn
    pts = np.column_stack((np.cos(ang), np.sin(ang))) * size * np.asarray(radii)[:, None]
    g = shapely.Polygon(pts)
    if kind == "convex":
        g = shapely.convex_hull(shapely.MultiPoint(pts))
    elif kind == "holed":
        hole = shapely.Polygon(
            [(-0.2, -0.1), (0.15, -0.12), (0.1, 0.2)] if draw(st.booleans()) else
            [(-0.2, -0.2), (-0.2, 0.2), (0.2, 0.2), (0.2, -0.2)]
        )  # fmt: skip
        hole = shapely.affinity.scale(hole, size, size, origin=(0, 0))
        g = shapely.Polygon(g.exterior.coords, [hole.exterior.coords])
    assume(g.geom_type == "Polygon" and g.is_valid and g.area > 0.05 * size * size)
    if draw(st.booleans()):  # the other orientation
        g = shapely.Polygon(g.exterior.coords[::-1], [r.coords[::-1] for r in g.interiors])
    return shapely.affinity.translate(g, X0, Y0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    g=polygon(),
    fx=st.floats(-1.5, 1.5),
    fy=st.floats(-1.5, 1.5),
    s=st.floats(0.05, 10.0),
)
def test_polygon_p_equals_slab_integral(g, fx, fy, s):
    """Oracle: the signed-triangle formula against a fine slab integration."""
    x0, y0, x1, y1 = g.bounds
    x = (x0 + x1) / 2 + fx * (x1 - x0 + 4 * s) / 2
    y = (y0 + y1) / 2 + fy * (y1 - y0 + 4 * s) / 2
    assert abs(poly_p(g, x, y, s) - slab_integral(g, x, y, s)) <= 1e-7


@pytest.mark.parametrize("s", [0.01, 0.5, 3.0])
def test_polygon_p_edge_cases(s):
    concave = shapely.Polygon(
        [(0, 0), (6, 0), (6, 2), (2, 2), (2, 6), (0, 6)], [[(0.5, 0.5), (1, 0.5), (1, 1)]]
    )
    g = shapely.affinity.translate(concave, X0, Y0)
    vx, vy = shapely.get_coordinates(g).T
    points = (
        [(a, b) for a, b in zip(vx, vy, strict=True)]  # on a vertex (the reflex one too)
        + [(X0 + 3, Y0), (X0 + 6, Y0 + 1), (X0 + 4, Y0 + 2)]  # on an edge
        + [(X0 - 3, Y0), (X0 + 9, Y0 + 2), (X0 + 4, Y0 + 4)]  # outside, on an edge's line
        + [(X0 + 0.75, Y0 + 0.6)]  # in the hole
    )
    for x, y in points:
        assert abs(poly_p(g, x, y, s) - slab_integral(g, x, y, s)) <= 1e-7, (x, y)
    # a zero-length edge (a repeated vertex) changes nothing
    twice = shapely.Polygon([(X0, Y0), (X0 + 6, Y0), (X0 + 6, Y0), (X0 + 6, Y0 + 2), (X0, Y0 + 3)])
    for x, y in [(X0 + 6, Y0), (X0 + 3, Y0 + 1), (X0 + 8, Y0 - 1)]:
        assert abs(poly_p(twice, x, y, s) - slab_integral(twice, x, y, s)) <= 1e-7
    # far: exactly 0, and never negative nearer in
    assert poly_p(g, X0 + 6 + 8.01 * s, Y0, s) == 0.0
    for k in (4.0, 6.0, 7.9):
        p = poly_p(g, X0 + 6 + k * s, Y0 + 1, s)
        assert 0.0 <= p < 1e-3


def test_rectangle_detection_tolerates_centimetre_rounding():
    box = rotated_box(X0, Y0, 2.0, 10.0, 33.0)
    rounded = shapely.transform(lonlat(box), lambda c: np.round(c, 7))
    back = shapely.transform(rounded, lambda c: np.column_stack(crs.project(c[:, 0], c[:, 1])))
    rect = _rectangles(np.array([back], dtype=object))[0]
    assert np.isfinite(rect).all()
    assert abs(rect[4] - 5.0) < 0.02 and abs(rect[5] - 1.0) < 0.02


# ---------------------------------------------------------------- outcomes
@pytest.fixture(scope="module")
def street():
    """A fenced box, an unfenced box, a no-parking square, and boxes with rules."""
    geoms = [
        rotated_box(X0, Y0, 2.0, 10.0, 0),  # 0 fenced
        rotated_box(X0 + 40, Y0, 2.0, 10.0, 0),  # 1 unfenced
        shapely.box(X0 + 100, Y0 - 30, X0 + 160, Y0 + 30),  # 2 no parking
        rotated_box(X0 - 40, Y0, 2.0, 10.0, 0),  # 3 fenced, inactive
        rotated_box(X0 - 80, Y0, 2.0, 10.0, 0),  # 4 fenced, hellobike only
        rotated_box(X0 - 120, Y0, 2.0, 10.0, 0),  # 5 fenced, bikes across (heading 90)
    ]
    ix = index_of(
        geoms,
        kind=[0, 0, 1, 0, 0, 0],
        fenced=[True, False, False, True, True, True],
        active_from=[-np.inf, -np.inf, -np.inf, T + 86400, -np.inf, -np.inf],
        heading_deg=[np.nan, np.nan, np.nan, np.nan, np.nan, 90.0],
        operators=[(), (), (), (), ("hellobike",), ()],
        beacons=[("BCN-0",), (), (), (), (), ()],
    )
    return ix


def check_at(x, y, accuracy=0.5, n=3, **kw):
    return Check(fixes=tuple(fix_at(x, y, accuracy) for _ in range(n)), ended_at=T, **kw)


def outcome(ix, check, **policy):
    d = decide(ix, check, Policy(calibration=FACE, **policy), T, check_id="c-1")
    return d.outcome, d.reasons, d


def test_settle_inside_a_fenced_box(street):
    out, reasons, d = outcome(street, check_at(X0, Y0, operator="meituan"))
    assert (out, reasons) == ("settle", ("inside_fenced_box",))
    assert d.zone["id"] == "Z0" and d.p_inside > 0.99 and d.distance_m < -0.5
    assert d.zone_set_version == 7 and d.policy == Policy(calibration=FACE).id
    assert d.check_id == "c-1"
    assert d.nearest == ()


def test_near_edge_is_flagged_when_settling_close_to_the_line(street):
    out, reasons, _ = outcome(street, check_at(X0 + 0.9, Y0, accuracy=0.3))
    assert out == "settle" and "near_edge" in reasons


def test_reject_far_away_with_nearest_boxes_and_bearing(street):
    out, reasons, d = outcome(street, check_at(X0 + 20, Y0 + 20, accuracy=3))
    assert (out, reasons) == ("reject", ("outside_all_boxes",))
    first = d.nearest[0]
    assert first["zone_id"] == "Z0"
    # the box's nearest corner is (X0 + 1, Y0 + 5): to the south-west
    want_d = math.hypot(19, 15)
    assert abs(first["distance_m"] - want_d) < 0.05
    lon0, lat0 = crs.unproject(X0 + 20, Y0 + 20)
    lon1, lat1 = crs.unproject(X0 + 1, Y0 + 5)
    az, _, _ = Geod(ellps="WGS84").inv(lon0[0], lat0[0], lon1[0], lat1[0])
    assert abs((first["bearing_deg"] - az % 360 + 180) % 360 - 180) < 0.2
    # only boxes this check could settle in: not the inactive one, not hellobike's
    assert {n["zone_id"] for n in d.nearest} <= {"Z0", "Z5"}


def test_review_when_the_evidence_cannot_decide(street):
    out, reasons, d = outcome(street, check_at(X0 + 1.5, Y0, accuracy=0.6))
    assert (out, reasons) == ("review", ("near_edge",))
    assert 0.05 < d.p_inside < 0.7


def test_review_when_the_fix_is_too_coarse_for_the_box(street):
    # a 4 m fix at the centre of a 2 m box: even there p stays below settle_p
    out, reasons, _ = outcome(street, check_at(X0, Y0, accuracy=4.0))
    assert (out, reasons) == ("review", ("accuracy_too_poor",))
    # and a poor fix in a box is never a confident reject
    for acc in (8.0, 12.0, 14.0):
        assert outcome(street, check_at(X0, Y0, accuracy=acc))[0] == "review"


def test_review_when_accuracy_is_too_poor(street):
    out, reasons, _ = outcome(street, check_at(X0, Y0, accuracy=30))
    assert (out, reasons) == ("review", ("accuracy_too_poor",))


def test_no_parking_area_rejects(street):
    out, reasons, d = outcome(street, check_at(X0 + 130, Y0, accuracy=3))
    assert (out, reasons) == ("reject", ("in_no_parking_zone",))
    assert d.zone["kind"] == "no_parking"


def test_unfenced_box_rejects(street):
    out, reasons, d = outcome(street, check_at(X0 + 40, Y0, accuracy=0.5))
    assert (out, reasons) == ("reject", ("inside_unfenced_box",))
    assert d.zone["id"] == "Z1" and d.zone["fenced"] is False


def test_inactive_box_rejects(street):
    out, reasons, _ = outcome(street, check_at(X0 - 40, Y0))
    assert (out, reasons) == ("reject", ("zone_inactive",))
    # a coarser fix: no box where it may settle is within reach, so still a reject,
    # and the reason is the box it most likely stands in
    out, reasons, _ = outcome(street, check_at(X0 - 40, Y0, accuracy=3.0))
    assert (out, reasons) == ("reject", ("zone_inactive",))


def test_operator_allow_list(street):
    assert outcome(street, check_at(X0 - 80, Y0, operator="meituan"))[:2] == (
        "reject",
        ("operator_not_allowed",),
    )
    assert outcome(street, check_at(X0 - 80, Y0, operator="hellobike"))[0] == "settle"


def test_heading_rule_compares_orientations(street):
    assert outcome(street, check_at(X0 - 120, Y0, heading_deg=100.0))[0] == "settle"
    assert outcome(street, check_at(X0 - 120, Y0, heading_deg=275.0))[0] == "settle"
    assert outcome(street, check_at(X0 - 120, Y0, heading_deg=10.0))[:2] == (
        "reject",
        ("heading_mismatch",),
    )
    assert outcome(street, check_at(X0 - 120, Y0))[0] == "settle"  # heading unknown


def test_beacon_is_strong_evidence(street):
    weak = check_at(X0 + 2.5, Y0, accuracy=4.0)
    assert outcome(street, weak)[0] == "review"
    heard = Check(fixes=weak.fixes, ended_at=T, beacons=(D.BeaconReading("BCN-0", -60.0),))
    out, reasons, d = outcome(street, heard)
    assert out == "settle" and "beacon_match" in reasons and d.p_inside >= 0.99
    faint = Check(fixes=weak.fixes, ended_at=T, beacons=(D.BeaconReading("BCN-0", -95.0),))
    assert outcome(street, faint)[0] == "review"


def test_stale_fixes_cannot_settle(street):
    old = Check(fixes=(fix_at(X0, Y0, 0.5, at=T - 3600),), ended_at=T)
    assert outcome(street, old)[:2] == ("review", ("stale_fix",))
    fresh = Check(fixes=(fix_at(X0, Y0, 0.5, at=T - 10),), ended_at=T)
    assert outcome(street, fresh)[0] == "settle"


def test_outside_service_area():
    box = rotated_box(X0, Y0, 2.0, 10.0, 0)
    zs = geofence.ZoneSet.from_arrays(np.array([lonlat(box)]), ["A"], fenced=True)
    area = lonlat(shapely.box(X0 - 500, Y0 - 500, X0 + 500, Y0 + 500))
    ix = geofence.ZoneIndex(zs, service_area=area)
    assert outcome(ix, check_at(X0, Y0))[0] == "settle"
    assert outcome(ix, check_at(X0 + 900, Y0, accuracy=3))[:2] == (
        "reject",
        ("outside_service_area",),
    )


def test_an_outlier_fix_is_dropped(street):
    good = [fix_at(X0, Y0 + 0.3 * i, 0.5) for i in range(4)]
    check = Check(fixes=(*good, fix_at(X0 + 300, Y0, 0.5)), ended_at=T)
    out, _, d = outcome(street, check)
    assert out == "settle" and d.distance_m < 0


def test_gcj02_fixes_decide_like_wgs84(street):
    wgs = check_at(X0, Y0)
    lon, lat = crs.from_wgs84(wgs.fixes[0].lon, wgs.fixes[0].lat, "gcj02")
    gcj = Check(fixes=(Fix(float(lon[0]), float(lat[0]), 0.5, crs="gcj02"),), ended_at=T)
    a, b = decide(street, wgs, Policy(), T), decide(street, gcj, Policy(), T)
    assert (a.outcome, a.zone, a.reasons) == (b.outcome, b.zone, b.reasons)
    assert abs(a.p_inside - b.p_inside) < 1e-3


def test_decide_many_equals_decide_and_replays(street):
    checks = [
        check_at(X0 + dx, Y0 + dy, accuracy=acc, operator=op)
        for dx, dy, acc, op in [
            (0, 0, 0.5, "meituan"),
            (1, 0, 2.0, "meituan"),
            (25, 5, 3.0, "hellobike"),
            (-80, 0, 0.5, "hellobike"),
            (130, 0, 5.0, None),
        ]
    ]
    many = decide_many(street, checks, Policy(), T, [f"c{i}" for i in range(5)])
    one = [decide(street, c, Policy(), T, f"c{i}") for i, c in enumerate(checks)]
    assert many == one
    # replay: the recorded body, parsed again, gives the same decision
    replayed = [
        decide(
            street, Check.from_mapping(c.to_mapping(), operator=c.operator), Policy(), T, f"c{i}"
        )
        for i, c in enumerate(checks)
    ]
    assert replayed == one
    assert [d.to_dict() for d in replayed] == [d.to_dict() for d in one]


# ---------------------------------------------------------------- bad input
def body(**over):
    b = {
        "trip_id": "t1",
        "bike_id": "b1",
        "vehicle_type": "bike",
        "ended_at": "2026-11-26T12:00:00+08:00",
        "fixes": [{"lon": 113.55, "lat": 22.25, "accuracy_m": 3.0}],
    }
    b.update(over)
    return b


@pytest.mark.parametrize(
    ("over", "field", "rule"),
    [
        ({"fixes": []}, "fixes", "empty"),
        ({"fixes": [{"lon": 113.5, "lat": 22.2}] * 51}, "fixes", "too_many"),
        ({"fixes": [{"lon": float("nan"), "lat": 22.2}]}, "fixes[0].lon", "finite"),
        ({"fixes": [{"lon": 113.5, "lat": 95.0}]}, "fixes[0].lat", "range"),
        ({"fixes": [{"lon": 113.5, "lat": 22.2, "accuracy_m": 0}]}, "fixes[0].accuracy_m", "range"),
        ({"fixes": [{"lon": 113.5, "lat": 22.2, "crs": "mars"}]}, "fixes[0].crs", "enum"),
        ({"fixes": [{"lon": "113.5", "lat": 22.2}]}, "fixes[0].lon", "type"),
        ({"fixes": "here"}, "fixes", "type"),
        ({"ended_at": "yesterday"}, "ended_at", "format"),
        ({"ended_at": "2026-11-26T12:00:00"}, "ended_at", "format"),
        ({"vehicle_type": "scooter"}, "vehicle_type", "enum"),
        ({"heading_deg": 400}, "heading_deg", "range"),
        ({"beacons": [{"id": "", "rssi": -60}]}, "beacons[0].id", "type"),
    ],
)
def test_bad_checks_name_the_field(over, field, rule):
    with pytest.raises(CheckError) as err:
        Check.from_mapping(body(**over))
    assert (err.value.field, err.value.rule) == (field, rule)
    assert field in str(err.value)


def test_a_trail_spread_over_kilometres_is_refused(street):
    spread = Check(fixes=(fix_at(X0, Y0, 3), fix_at(X0 + 5000, Y0, 3)), ended_at=T)
    with pytest.raises(CheckError, match="spreads over") as err:
        decide(street, spread, Policy(), T)
    assert err.value.rule == "spread"
    with pytest.raises(CheckError) as err:
        decide_many(street, [check_at(X0, Y0), spread], Policy(), T)
    assert err.value.check_index == 1


def test_policy_validation_and_stable_id():
    assert Policy().id == Policy().id and Policy().id.startswith("pol-")
    assert Policy(settle_p=0.9).id != Policy().id
    with pytest.raises(geofence.PolicyError, match="settle_p"):
        Policy(settle_p=1.5)
    with pytest.raises(geofence.PolicyError, match="student_nu") as err:
        Policy(student_nu=0)
    assert err.value.field == "student_nu"
