"""Settlement decisions: p_inside against Monte Carlo, outcomes, reasons, bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

import geofence
from geofence import Check, CheckError, Fix, Policy, crs, decide, decide_many
from geofence import decisions as D

X0, Y0 = 455_000.0, 2_460_000.0  # metres, EPSG:4547, central Zhuhai
T = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
SIGMA = D.SIGMA_PER_R68


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
        tolerance_m=tol), T)  # fmt: skip
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
    assert np.isnan(D._tables(ix, tol).rect[0, 0])  # the numeric path
    c = shapely.centroid(shape)
    check = Check(fixes=(fix_at(c.x + dx, c.y + dy, accuracy),), ended_at=T)
    d = decide(ix, check, Policy(tolerance_m=tol), T)
    widened = shapely.buffer(shape, tol, join_style="mitre")
    x, y = crs.project(d.position["lon"], d.position["lat"])
    want = monte_carlo(widened, x[0], y[0], accuracy / SIGMA)
    assert abs(d.p_inside - want) < 0.01


@given(
    w=st.floats(1.0, 4.0),
    h=st.floats(3.0, 20.0),
    angle=st.floats(0, 180),
    dx=st.floats(-8, 8),
    dy=st.floats(-15, 15),
    s=st.floats(0.1, 7.0),
)
@settings(max_examples=200, deadline=None)
def test_closed_form_equals_numeric_integral(w, h, angle, dx, dy, s):
    """Oracle: the rectangle's closed form against the general slab integral."""
    from geofence.index import _flatten

    box = rotated_box(X0, Y0, w, h, angle)
    rect = D._rectangles(np.array([box], dtype=object))
    closed = D._rect_p(X0 + dx, Y0 + dy, s, rect, 0, 0.0)
    framed, frame = D._frames(np.array([box], dtype=object))
    vx, vy, rs, zrs = _flatten(framed)
    ox, oy, cs, sn = frame[0]
    u = (X0 + dx - ox) * cs - (Y0 + dy - oy) * sn
    v = (X0 + dx - ox) * sn + (Y0 + dy - oy) * cs
    ys, xs = np.empty(64), np.empty(64)
    numeric = D._poly_p(0, u, v, s, vx, vy, rs, zrs, D._GL_X, D._GL_W, ys, xs)
    assert abs(closed - numeric) < 1e-6


def test_rectangle_detection_tolerates_centimetre_rounding():
    box = rotated_box(X0, Y0, 2.0, 10.0, 33.0)
    rounded = shapely.transform(lonlat(box), lambda c: np.round(c, 7))
    back = shapely.transform(rounded, lambda c: np.column_stack(crs.project(c[:, 0], c[:, 1])))
    rect = D._rectangles(np.array([back], dtype=object))[0]
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
    d = decide(ix, check, Policy(**policy), T, check_id="c-1")
    return d.outcome, d.reasons, d


def test_settle_inside_a_fenced_box(street):
    out, reasons, d = outcome(street, check_at(X0, Y0, operator="meituan"))
    assert (out, reasons) == ("settle", ("inside_fenced_box",))
    assert d.zone["id"] == "Z0" and d.p_inside > 0.99 and d.distance_m < -0.5
    assert d.zone_set_version == 7 and d.policy == Policy().id and d.check_id == "c-1"
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
    with pytest.raises(geofence.PolicyError, match="fix_correlation"):
        Policy(fix_correlation=2)


def test_fused_accuracy_shrinks_less_for_correlated_fixes(street):
    check = check_at(X0 + 20, Y0 + 20, accuracy=4.0, n=4)
    alone = decide(street, check, Policy(fix_correlation=1.0), T).position["accuracy_m"]
    independent = decide(street, check, Policy(fix_correlation=0.0), T).position["accuracy_m"]
    assert alone == pytest.approx(4.0, abs=0.01)
    assert independent == pytest.approx(2.0, abs=0.01)
