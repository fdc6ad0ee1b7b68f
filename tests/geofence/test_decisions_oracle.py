"""The fast paths of decisions against the plain ones: the same decisions, bit for bit.

- the nearest-box searches over the fenced-box grid against the index's own search
  (the kernel falls back to it when the grid is switched off), on the bundled
  Zhuhai zones and the decision benchmark's kind of trips;
- the single-check path of ``decide`` against ``decide_many`` (the batch path);
- the service-area map (most fixes skip the exact test) against the service index;
- the allocation-free median against ``np.median``;
- the Z-order of the batch kernel (keys, radix sort, gather and scatter) against
  deciding in the given order.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import geofence
from geofence import BeaconReading, Check, Fix, Policy, crs, decide, decide_many
from geofence import decisions as D
from geofence.decisions.bearings import _true_bearings, _true_bearings_one
from geofence.decisions.fusion import _masked_median, _sort_small
from geofence.decisions.grid import _SERVICE_CELL_DEG, _service_map
from geofence.decisions.inputs import R_SERVICE
from geofence.decisions.order import _morton_keys, _radix_order, _spatial_order
from geofence.decisions.tables import _tables
from zones.workload import make_trip_ends

ZONES = Path(__file__).resolve().parents[2] / "zones" / "data" / "zhuhai.geojson"
T = datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
FIELDS = [
    f.name for f in dataclasses.fields(D.DecisionBatch) if f.name not in ("index", "policy", "now")
]


@pytest.fixture(scope="module")
def zhuhai():
    from zones.districts import service_area

    zs = geofence.ZoneSet.from_geojson(ZONES, version=1)
    return geofence.ZoneIndex(zs, service_area=service_area())


@pytest.fixture(scope="module")
def trips():
    out = {}
    for n, (fc, seed) in enumerate((("consumer", 11), ("precise", 12))):
        w = make_trip_ends(ZONES, 3000, seed=seed, accuracy=fc, fixes_per_trip=5)
        m = w.fix_lon.shape[1]
        out[fc] = geofence.CheckBatch(
            lon=np.ascontiguousarray(w.fix_lon),
            lat=np.ascontiguousarray(w.fix_lat),
            accuracy_m=np.ascontiguousarray(w.accuracy_m),
            at=np.ascontiguousarray(np.broadcast_to(T - 2.0 * np.arange(m)[::-1], w.fix_lon.shape)),
            n_fixes=np.full(len(w), m, np.int64),
            ended_at=np.full(len(w), T),
            # a few headings and stale trails, so those rules run too
            heading_deg=np.where(np.arange(len(w)) % 7 == 0, 45.0 * (n + 1), np.nan),
            beacon_zone=np.full(len(w), -1, np.int64),
            operator="meituan" if n == 0 else "hellobike",
        )
    return out


def _with_grid(index, policy, batch, grid):
    """decide_arrays with the tables' box grid replaced by ``grid``."""
    t = _tables(index, policy.tolerance_m)
    saved = t.box_grid
    object.__setattr__(t, "box_grid", grid)
    try:
        return D.decide_arrays(index, batch, policy, T)
    finally:
        object.__setattr__(t, "box_grid", saved)


def _without_box_grid(index, policy, batch):
    """The kernel's fallback: the index's own search (no grid)."""
    g = _tables(index, policy.tolerance_m).box_grid
    lists = (g[9][0][:1], g[9][1][:0], g[9][2][:0])
    none = (0.0, 0.0, 1.0, 0, 0, g[5][:1], *(a[:0] for a in g[6:9]), lists)
    return _with_grid(index, policy, batch, none)


def _without_lists(index, policy, batch):
    """The grid's walk alone: every cell without a list of near boxes."""
    g = _tables(index, policy.tolerance_m).box_grid
    start, reach, rows = g[9]
    return _with_grid(index, policy, batch, (*g[:9], (start, np.full_like(reach, -1.0), rows)))


def _same(fast, slow):
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


@pytest.mark.parametrize("fc", ["consumer", "precise"])
@pytest.mark.parametrize(
    "policy",
    [Policy(), Policy(k_nearest=0), Policy(k_nearest=7, nearest_radius_m=1500.0, tolerance_m=2.0)],
    ids=["default", "k0", "k7-1500m"],
)
def test_box_grid_search_decides_like_the_index_search(zhuhai, trips, fc, policy):
    batch = trips[fc]
    fast = D.decide_arrays(zhuhai, batch, policy, T)
    assert _tables(zhuhai, policy.tolerance_m).box_grid[3] > 0  # the grid was used
    _same(fast, _without_box_grid(zhuhai, policy, batch))
    _same(fast, _without_lists(zhuhai, policy, batch))
    if policy.k_nearest:
        assert (fast.nearest_pos[:, 0] >= 0).mean() > 0.3  # the searches found boxes


def test_most_fixes_near_boxes_have_a_list(zhuhai, trips):
    """The lists are there to be used: most trip ends fall in a cell that has one, and
    its reach holds their nearest boxes (else the walk answers: tested above)."""
    g = _tables(zhuhai, Policy().tolerance_m).box_grid
    x0, y0, cell, nx = g[:4]
    start, reach, rows = g[9]
    d = D.decide_arrays(zhuhai, trips["consumer"], Policy(), T)
    x, y = crs.project(d.lon, d.lat)
    c = np.floor((y - y0) / cell).astype(np.int64) * nx + np.floor((x - x0) / cell).astype(int)
    u = reach[c]
    assert (u >= 0).mean() > 0.6
    assert ((u >= 0) & (d.nearest_dist[:, 2] < u)).mean() > 0.6
    # rows: nearest to the cell first, one per box
    for cc in np.flatnonzero(reach >= 0)[:500]:
        seg = rows[start[cc] : start[cc + 1]]
        assert (np.diff(seg[:, 0]) >= 0).all() and seg[-1, 0] <= reach[cc]
        zone = g[7][seg[:, 1].astype(np.int64), 0]
        assert len(np.unique(zone)) == len(zone)


def _one_fix_batch(lon, lat, *, accuracy_m=3.0, at=T, ended_at=T, operator="meituan"):
    """Checks of one fix each at (lon, lat); ``ended_at`` a number or one per check."""
    n = len(lon)
    col = np.asarray
    return geofence.CheckBatch(
        lon=col(lon, np.float64).reshape(n, 1),
        lat=col(lat, np.float64).reshape(n, 1),
        accuracy_m=np.full((n, 1), accuracy_m),
        at=np.full((n, 1), at),
        n_fixes=np.ones(n, np.int64),
        ended_at=np.ascontiguousarray(np.broadcast_to(np.asarray(ended_at, np.float64), n)),
        heading_deg=np.full(n, np.nan),
        beacon_zone=np.full(n, -1, np.int64),
        operator=operator,
    )


@pytest.mark.parametrize("when", ["windows", "before", "after", "-inf", "+inf"])
def test_box_grid_search_meets_time_windows_like_the_index_search(zhuhai, when):
    """Boxes with a time window (flagged in the grid's rows: only they read it) near
    the fixes, at times in and out of their windows, and at +-inf, where even the
    boxes without one are inactive (+inf) or active (-inf)."""
    zs = zhuhai.zone_set
    fenced = zs.fenced & (zs.kind == geofence.KIND_PARKING)
    windowed = np.flatnonzero(fenced & (np.isfinite(zs.active_from) | np.isfinite(zs.active_to)))
    assert len(windowed) > 20
    rng = np.random.default_rng(7)
    x, y = shapely.get_coordinates(shapely.centroid(zs.geometry_m[windowed])).T
    n = 3000
    pick = rng.integers(0, len(windowed), n)
    lon, lat = crs.unproject(x[pick] + rng.normal(0, 40, n), y[pick] + rng.normal(0, 40, n))
    lo = np.where(np.isfinite(zs.active_from[windowed]), zs.active_from[windowed], T)[pick]
    hi = np.where(np.isfinite(zs.active_to[windowed]), zs.active_to[windowed], T)[pick]
    ended = {
        "windows": np.where(np.arange(n) % 2 == 0, lo, hi) + rng.choice([-1.0, 0.0, 1.0], n),
        "before": np.full(n, np.nanmin(zs.active_from[windowed]) - 1.0),
        "after": np.full(n, np.nanmax(zs.active_to[np.isfinite(zs.active_to)]) + 1.0),
        "-inf": np.full(n, -np.inf),
        "+inf": np.full(n, np.inf),
    }[when]
    batch = _one_fix_batch(lon, lat, accuracy_m=5.0, at=np.nan, ended_at=ended, operator=None)
    # 6 boxes: the walk (the lists hold 4); 3: the lists
    for policy in (Policy(k_nearest=6, nearest_radius_m=200.0), Policy(k_nearest=3)):
        fast = D.decide_arrays(zhuhai, batch, policy, T)
        _same(fast, _without_box_grid(zhuhai, policy, batch))
        _same(fast, _without_lists(zhuhai, policy, batch))
    found = fast.nearest_pos[fast.nearest_pos >= 0]
    if when == "+inf":
        assert len(found) == 0  # no box is active at +inf
    else:
        assert len(found) > 0
    if when == "windows":
        assert np.isin(found, windowed).any()  # boxes with a window were returned


def test_box_grid_search_measures_boxes_with_holes_like_the_index_search():
    """A fenced box of two rings (measured by the index's rings, not the grid's copy
    of one-ring boxes) among plain ones: the same decisions either way."""

    def box(fid, x0, y0, w, h, hole=None):
        ring = [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h], [x0, y0]]
        rings = [ring]
        if hole is not None:
            hx, hy, hw, hh = hole
            rings.append([[hx, hy], [hx, hy + hh], [hx + hw, hy + hh], [hx + hw, hy], [hx, hy]])
        return {
            "type": "Feature",
            "id": fid,
            "properties": {"kind": "parking", "fenced": True},
            "geometry": {"type": "Polygon", "coordinates": rings},
        }

    x0, y0 = 113.55, 22.25
    feats = [box("ring", x0, y0, 0.0004, 0.0003, hole=(x0 + 0.0001, y0 + 0.0001, 0.0002, 0.0001))]
    feats += [box(f"b{j}", x0 + 0.0002 * (j % 5), y0 + 0.0005 + 0.0001 * (j // 5), 4e-5, 2e-5)
              for j in range(20)]  # fmt: skip
    index = geofence.ZoneIndex(
        geofence.ZoneSet.from_geojson({"type": "FeatureCollection", "features": feats})
    )
    rng = np.random.default_rng(3)
    n = 2000
    lon = x0 + rng.uniform(-0.0005, 0.0012, n)
    lat = y0 + rng.uniform(-0.0005, 0.0012, n)
    batch = _one_fix_batch(lon, lat, at=np.nan, operator=None)
    policy = Policy(k_nearest=4, nearest_radius_m=100.0)
    fast = D.decide_arrays(index, batch, policy, T)
    grid = _tables(index, policy.tolerance_m).box_grid
    assert grid[3] > 0 and (grid[7][:, 3] < 0).any()  # the grid, with a box of two rings
    _same(fast, _without_box_grid(index, policy, batch))
    _same(fast, _without_lists(index, policy, batch))
    ring = int(np.flatnonzero(index.zone_set.ids == "ring")[0])
    assert (fast.nearest_pos == ring).any() and (fast.zone == ring).any()


def test_lists_leave_to_the_walk_what_lies_beyond_their_reach():
    """A street of boxes closed to the operator, and boxes open to it a few hundred
    metres away: the cells' lists (reach: their 4 nearest boxes of any kind) do not
    hold the open boxes, so the search must fall back to the walk for the nearest
    ones, and the answers are the index search's."""

    def box(fid, lon, lat, operators):
        ring = [[lon, lat], [lon + 2e-5, lat], [lon + 2e-5, lat + 4e-5], [lon, lat + 4e-5]]
        return {
            "type": "Feature",
            "id": fid,
            "properties": {"kind": "parking", "fenced": True, "operators": operators},
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        }

    x0, y0 = 113.55, 22.25
    feats = [box(f"closed{j}", x0 + 1e-4 * j, y0, ["other"]) for j in range(40)]
    feats += [box(f"open{j}", x0 + 1e-3 * j, y0 + 0.003 + 5e-4 * (j % 3), []) for j in range(8)]
    index = geofence.ZoneIndex(
        geofence.ZoneSet.from_geojson({"type": "FeatureCollection", "features": feats})
    )
    rng = np.random.default_rng(4)
    n = 1500
    batch = _one_fix_batch(
        x0 + rng.uniform(-2e-4, 4.2e-3, n), y0 + rng.uniform(-3e-4, 3e-4, n), at=np.nan
    )
    policy = Policy(k_nearest=3, nearest_radius_m=800.0)
    fast = D.decide_arrays(index, batch, policy, T)
    grid = _tables(index, policy.tolerance_m).box_grid
    assert (grid[9][1] >= 0).any()  # the cells have lists
    _same(fast, _without_box_grid(index, policy, batch))
    _same(fast, _without_lists(index, policy, batch))
    opened = np.flatnonzero(np.char.startswith(index.zone_set.ids.astype(str), "open"))
    assert np.isin(fast.nearest_pos[:, 0], opened).mean() > 0.9  # found beyond the lists


def _varied_checks(index):
    """Checks that exercise every input of the single path: CRSs, beacons, headings,
    missing accuracy and time, stale trails, operators."""
    zs = index.zone_set
    rng = np.random.default_rng(5)
    fenced = np.flatnonzero(zs.fenced & (zs.kind == geofence.KIND_PARKING))
    with_beacon = [p for p in fenced.tolist() if len(zs.beacons[p])]
    x, y = shapely.get_coordinates(shapely.centroid(zs.geometry_m)).T
    checks = []
    for i in range(300):
        p = int(rng.choice(fenced))
        if with_beacon and i % 5 == 0:
            p = with_beacon[i % len(with_beacon)]
        acc = float(rng.choice([0.5, 2.0, 5.0, 12.0, 30.0]))
        off = rng.normal(0, acc / 1.5 + 3.0 * (i % 3), 2)
        lon, lat = crs.unproject(x[p] + off[0], y[p] + off[1])
        fixes = []
        for j in range(1 + i % 4):
            name = ("wgs84", "gcj02", "bd09", "cgcs2000")[(i + j) % 4] if i % 2 else "wgs84"
            flon, flat = crs.from_wgs84(float(lon[0]), float(lat[0]), name)
            fixes.append(
                Fix(
                    float(flon[0]) + rng.normal(0, 2e-6),
                    float(flat[0]) + rng.normal(0, 2e-6),
                    accuracy_m=None if (i + j) % 6 == 0 else acc,
                    at=None if (i + j) % 5 == 0 else T - (3600.0 if i % 11 == 0 else 2.0 * j),
                    crs=name,
                )
            )
        beacons = ()
        if i % 5 == 0 and len(zs.beacons[p]):
            beacons = (BeaconReading(zs.beacons[p][0], -60.0), BeaconReading("nobody", -40.0))
        checks.append(
            Check(
                fixes=tuple(fixes),
                ended_at=T,
                heading_deg=None if i % 3 else float(rng.uniform(0, 360)),
                beacons=beacons,
                operator=(None, "meituan", "hellobike", "qingju")[i % 4],
            )
        )
    return checks


@pytest.mark.parametrize("policy", [Policy(), Policy(k_nearest=0), Policy(tolerance_m=1.0)])
def test_single_check_path_equals_the_batch_path(zhuhai, policy):
    checks = _varied_checks(zhuhai)
    many = decide_many(zhuhai, checks, policy, T, [f"c{i}" for i in range(len(checks))])
    one = [decide(zhuhai, c, policy, T, f"c{i}") for i, c in enumerate(checks)]
    assert one == many
    assert {d.outcome for d in one} == {"settle", "reject", "review"}
    # the cached zone mappings are copies: changing one changes no other decision
    settled = next(d for d in one if d.zone is not None)
    settled.zone["id"] = "changed"  # type: ignore[index]
    assert decide(zhuhai, checks[one.index(settled)], policy, T).zone["id"] != "changed"


@st.composite
def _trail(draw, index):
    """A check near a fenced box of the index: 1-8 fixes scattered by their claimed
    accuracy (some repeated, stale, without time, accuracy or quality, in another CRS),
    any heading, operator, device class and road stud."""
    zs = index.zone_set
    fenced = np.flatnonzero(zs.fenced & (zs.kind == geofence.KIND_PARKING))
    p = int(fenced[draw(st.integers(0, len(fenced) - 1))])
    cx, cy = shapely.get_coordinates(shapely.centroid(zs.geometry_m[p]))[0]
    ox = draw(st.floats(-40.0, 40.0))
    oy = draw(st.floats(-40.0, 40.0))
    fixes = []
    for _ in range(draw(st.integers(1, 8))):
        acc = draw(st.none() | st.sampled_from([0.3, 0.8, 2.0, 5.0, 15.0, 40.0]))
        dx, dy = draw(st.floats(-3, 3)), draw(st.floats(-3, 3))
        s = 1.0 if acc is None else acc / 1.5
        lon, lat = crs.unproject(cx + ox + dx * s, cy + oy + dy * s)
        name = draw(st.sampled_from(["wgs84", "wgs84", "cgcs2000", "gcj02"]))
        flon, flat = crs.from_wgs84(float(lon[0]), float(lat[0]), name)
        fix = Fix(
            float(flon[0]),
            float(flat[0]),
            accuracy_m=acc,
            at=draw(st.none() | st.sampled_from([T, T - 2.0, T - 30.0, T - 600.0, T + 5.0])),
            crs=name,
            quality=draw(st.none() | st.sampled_from(D.QUALITIES)),
        )
        fixes.append(fix)
        if draw(st.integers(0, 5)) == 0:
            fixes.append(fix)  # a cached fix sent again
    beacons = ()
    if len(zs.beacons[p]) and draw(st.booleans()):
        beacons = (BeaconReading(zs.beacons[p][0], draw(st.sampled_from([-90.0, -60.0]))),)
    return Check(
        fixes=tuple(fixes),
        ended_at=T,
        heading_deg=draw(st.none() | st.floats(0.0, 359.9)),
        beacons=beacons,
        operator=draw(st.sampled_from([None, "meituan", "hellobike"])),
        device_class=draw(st.none() | st.sampled_from(["phone", "lock-v2"])),
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_single_entry_point_answers_what_the_batch_path_answers(zhuhai, data):
    """The one compiled call of ``decide`` (its projection and bearings in the C
    library's functions) against ``decide_many`` (numpy's vectorized ones): equal
    decisions, field by field, or the same error."""
    check = data.draw(_trail(zhuhai))
    policy = data.draw(st.sampled_from([Policy(), Policy(k_nearest=0), Policy(k_nearest=5)]))
    try:
        many = decide_many(zhuhai, [check], policy, T, ["c"])[0]
    except geofence.CheckError as exc:
        with pytest.raises(geofence.CheckError) as one:
            decide(zhuhai, check, policy, T, "c")
        assert str(one.value) == str(exc)
        return
    assert decide(zhuhai, check, policy, T, "c") == many


def test_single_entry_point_far_from_the_meridian_goes_through_pyproj(zhuhai):
    """A trail beyond the projection's fast domain (|lon - 114| > 15): the batch path."""
    check = Check(fixes=(Fix(80.0, 22.2, accuracy_m=3.0),), ended_at=T)
    one = decide(zhuhai, check, Policy(), T)
    assert one == decide_many(zhuhai, [check], Policy(), T)[0]
    assert one.outcome == "reject" and "outside_service_area" in one.reasons


def test_borrowed_arguments_read_back_as_given():
    """``borrow`` flattens a nested tuple once; the compiled ``_unborrow`` rebuilds it:
    arrays of any dtype, shape, strides and writeability, and numbers, as given."""
    from geofence.decisions._jit import _jit, _unborrow, borrow

    ro = np.arange(6.0).reshape(2, 3)
    ro.setflags(write=False)
    kept = (ro, (np.arange(10, dtype=np.int8)[::3], 7, True, 0.25), np.zeros((0, 2)), 3.5)

    @_jit
    def back(tref, layout, scalars):
        a, (b, n, flag, x), c, y = _unborrow(tref, layout, scalars)
        return a[1, 2], b.sum(), b.shape[0], n, flag, x, c.shape[0], c.shape[1], y

    got = back(*borrow(kept))
    assert got == (5.0, 0 + 3 + 6 + 9, 4, 7, True, 0.25, 0, 2, 3.5)
    with pytest.raises(TypeError, match="cannot borrow a str"):
        borrow((ro, "x"))


def test_true_bearings_of_a_batch_equal_one_at_a_time_and_the_plain_formula():
    """The batch's vectorized bearings (numpy's arctan2, tan, arctan) against the same
    arithmetic one offset at a time (the single path: the same bits) and against the
    plain formula with the math module (to 1e-9 degrees)."""
    rng = np.random.default_rng(9)
    n, k = 4000, 3
    lon = rng.uniform(100.0, 128.0, n)
    lat = rng.uniform(-80.0, 80.0, n)
    dx = rng.normal(0.0, 50.0, (n, k))
    dy = rng.normal(0.0, 50.0, (n, k))
    dx[:, 0] = np.where(np.arange(n) % 5 == 0, 0.0, dx[:, 0])  # due north and south
    dy[:, 1] = np.where(np.arange(n) % 7 == 0, 0.0, dy[:, 1])  # due east and west
    pos = np.where(rng.random((n, k)) < 0.2, -1, 1)
    got = dx.copy()
    _true_bearings(lon, lat, got, dy, pos)
    assert np.isnan(got[pos < 0]).all() and not np.isnan(got[pos >= 0]).any()
    assert (got[pos >= 0] >= 0.0).all() and (got[pos >= 0] < 360.0).all()
    for i in range(0, n, 3):
        row = _true_bearings_one(float(lon[i]), float(lat[i]), dx[i], dy[i])
        for c in range(k):
            if pos[i, c] < 0:
                continue
            one = row[c]
            assert one == got[i, c]
            g = math.degrees(
                math.atan(math.tan(math.radians(lon[i] - 114.0)) * math.sin(math.radians(lat[i])))
            )
            plain = (math.degrees(math.atan2(dx[i, c], dy[i, c])) + g) % 360.0
            assert abs((one - plain + 180.0) % 360.0 - 180.0) < 1e-9


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        # no -0.0: the trail offsets are never negative zeros (x - x is +0.0)
        (st.floats(-1e4, 1e4) | st.sampled_from([0.0, 1.5])).map(lambda v: v + 0.0),
        min_size=1,
        max_size=80,
    )
)
def test_masked_median_equals_numpy(values):
    v = np.array(values)
    keep = np.ones(len(v), np.bool_)
    keep[::3] = len(v) < 3  # drop some (never all)
    want = np.float64(np.median(v[keep])).tobytes()
    for spare in (0, 8):  # up to 8 kept values: the insertion sort, the sorting network
        got = _masked_median(v, keep, len(v), np.empty(len(v) + spare))
        assert np.float64(got).tobytes() == want


@settings(deadline=None)  # the first example compiles the kernel
@given(st.lists(st.integers(0, 2**62), min_size=0, max_size=300) | st.lists(st.integers(0, 5)))
def test_radix_order_equals_a_stable_argsort(keys):
    k = np.array(keys, np.int64)
    np.testing.assert_array_equal(_radix_order(k), np.argsort(k, kind="stable"))


@settings(deadline=None)  # the first example compiles the kernel
@given(
    st.lists(
        st.tuples(
            st.floats(-1e7, 1e7) | st.sampled_from([np.nan, np.inf]),
            st.floats(-1e7, 1e7) | st.sampled_from([np.nan, -np.inf]),
        ),
        min_size=1,
        max_size=100,
    )
)
def test_morton_keys_interleave_the_cell_bits(points):
    """Bit 2k of a key is bit k of the cell column, bit 2k + 1 of the row; points that
    are not finite come last."""
    x, y = (np.array(c, np.float64) for c in zip(*points, strict=True))
    keys = np.empty(len(x), np.int64)
    _morton_keys(x, y, 64.0, keys)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.any():
        a = np.minimum((x - x[finite].min()) / 64.0, 2147483647.0)
        b = np.minimum((y - y[finite].min()) / 64.0, 2147483647.0)
        for i in np.flatnonzero(finite):
            want = 0
            for bit in range(31):
                want |= ((int(a[i]) >> bit) & 1) << (2 * bit)
                want |= ((int(b[i]) >> bit) & 1) << (2 * bit + 1)
            assert keys[i] == want
    assert (keys[~finite] > keys[finite].max(initial=-1)).all()


def test_spatial_order_does_not_change_decisions(zhuhai, trips, monkeypatch):
    """The batch kernel decides in Z-order (gathered inputs, scattered outputs): the
    same arrays as deciding the checks in the given order."""
    b = trips["consumer"]
    ordered = D.decide_arrays(zhuhai, b, Policy(), T)
    assert _spatial_order(*crs.project(ordered.lon, ordered.lat)) is not None
    monkeypatch.setattr("geofence.decisions.order._SPATIAL_ORDER_MIN", len(b) + 1)
    plain = D.decide_arrays(zhuhai, b, Policy(), T)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(ordered, f), getattr(plain, f), err_msg=f)


@settings(deadline=None)  # the first example compiles the kernel
@given(
    st.lists(
        st.floats(allow_nan=False) | st.sampled_from([0.0, 1.5, np.inf, -np.inf]),
        max_size=200,
    )
)
def test_sort_small_equals_numpy_sort(values):
    """Insertion sort up to 64 values, heapsort beyond (no allocation)."""
    a = np.array(values, np.float64)
    want = np.sort(a)
    _sort_small(a, len(a))
    np.testing.assert_array_equal(a, want)


@settings(deadline=None)  # the first example compiles the kernel
@given(
    st.lists(
        st.floats(-1e4, 1e4) | st.sampled_from([np.nan, np.inf, -np.inf]), min_size=0, max_size=12
    )
)
def test_masked_median_of_non_finite_values_is_numpys(values):
    """No value or a NaN: NaN; infinities sort as numbers ((-inf + inf) / 2 is NaN)."""
    v = np.array(values, np.float64)
    keep = np.ones(len(v), np.bool_)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the median of nothing
        want = np.median(v)
    got = _masked_median(v, keep, len(v), np.empty(len(v) + 8))
    assert (np.isnan(got) and np.isnan(want)) or got == want


def _assert_service_test_exact(index, lon, lat):
    d = D.decide_arrays(index, _one_fix_batch(lon, lat), Policy(), T)
    assert d.lon.tobytes() == np.asarray(lon, np.float64).tobytes()  # one fix: itself
    outside = (d.reasons & R_SERVICE) != 0
    np.testing.assert_array_equal(outside, ~index.in_service_area(d.lon, d.lat))


def test_service_map_decides_like_the_service_index(zhuhai):
    """Fixes in the map's inside and outside cells skip the exact test: on cell and tile
    sides and corners, along the coast and at random, the answer is the index's."""
    x0, y0, inv, nx, ny, state = _service_map(zhuhai.service_index)
    assert {0, 1, 2} <= set(np.unique(state).tolist())  # every kind of cell occurs
    rng = np.random.default_rng(3)
    cell = 1.0 / inv
    # corners and sides of the cells (the index's 0.01-degree tiles among them)
    a = rng.integers(0, nx, 4000)
    b = rng.integers(0, ny, 4000)
    frac = rng.choice([0.0, 1e-12, 5e-5, 1e-4, 0.5, 1 - 1e-4, 1 - 1e-12], (2, 4000))
    lon = x0 + (a + frac[0]) * cell
    lat = y0 + (b + frac[1]) * cell
    # points along the coast (in edge cells) and at random over the map and beyond
    edge = np.flatnonzero(state == 2)
    e = rng.choice(edge, 4000)
    lon = np.concatenate([lon, x0 + (e % nx + rng.random(4000)) * cell])
    lat = np.concatenate([lat, y0 + (e // nx + rng.random(4000)) * cell])
    lon = np.concatenate([lon, rng.uniform(x0 - 0.1, x0 + (nx + 5) * cell, 8000)])
    lat = np.concatenate([lat, rng.uniform(y0 - 0.1, y0 + (ny + 5) * cell, 8000)])
    _assert_service_test_exact(zhuhai, lon, lat)


@settings(max_examples=50, deadline=None)
@given(st.floats(113.0, 114.7), st.floats(21.6, 22.7))
def test_service_map_near_tile_corners(zhuhai, lon, lat):
    """A fix, and the nearest tile corner of the service index and its neighbours 1 ulp away."""
    corner = [(round(lon, 2), round(lat, 2))]
    xs = [np.nextafter(corner[0][0], s) for s in (-np.inf, np.inf)] + [corner[0][0], lon]
    ys = [np.nextafter(corner[0][1], s) for s in (-np.inf, np.inf)] + [corner[0][1], lat]
    _assert_service_test_exact(zhuhai, [x for x in xs for _ in ys], [y for _ in xs for y in ys])


def test_coarse_service_map_decides_like_the_service_index(zhuhai, monkeypatch):
    """A service area too large for the finest cells gets coarser ones, off the index's
    tile lines (none inside one tile piece: edge or outside): the answers stay the index's."""
    monkeypatch.setattr("geofence.decisions.grid._SERVICE_MAP_CELLS", 5000)
    _service_map.cache_clear()
    try:
        x0, y0, inv, nx, ny, state = _service_map(zhuhai.service_index)
        assert 1.0 / inv > _SERVICE_CELL_DEG and nx * ny < 6000
        assert {0, 2} <= set(np.unique(state).tolist())
        rng = np.random.default_rng(4)
        lon = rng.uniform(x0 - 0.1, x0 + (nx + 5) / inv, 20_000)
        lat = rng.uniform(y0 - 0.1, y0 + (ny + 5) / inv, 20_000)
        _assert_service_test_exact(zhuhai, lon, lat)
    finally:
        _service_map.cache_clear()
