"""Trip-end workloads: the truth classes hold, the noise has the stated statistics."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import STRtree

from geofence import crs
from zones.districts import district_of
from zones.synth import DEFAULT_PATH, synth_zhuhai
from zones.workload import (
    CLASSES,
    DEFAULT_MIX,
    SIGMA_PER_ACCURACY,
    TripEnds,
    make_trip_ends,
    parse_accuracy,
)

N = 20000
FIXES = 5


@pytest.fixture(scope="module")
def bundled() -> dict:
    return json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))


@functools.cache
def _small() -> dict:
    return synth_zhuhai(seed=5, n_parking=1500, n_fenced=1000, n_no_parking=40)


@pytest.fixture(scope="module")
def small() -> dict:
    return _small()


@pytest.fixture(scope="module")
def trips(bundled: dict) -> TripEnds:
    return make_trip_ends(bundled, N, seed=42, fixes_per_trip=FIXES)


class Zones:
    def __init__(self, fc: dict) -> None:
        feats = fc["features"]
        self.ids = np.array([f["id"] for f in feats])
        self.pos = {zid: i for i, zid in enumerate(self.ids.tolist())}
        self.kind = np.array([f["properties"]["kind"] for f in feats])
        self.fenced = np.array([f["properties"]["fenced"] for f in feats])
        geom = shapely.from_geojson(
            np.array([json.dumps(f["geometry"]) for f in feats], dtype=object)
        )
        self.metric = shapely.transform(
            geom, lambda c: np.column_stack(crs.project(c[:, 0], c[:, 1]))
        )
        self.park = np.flatnonzero(self.kind == "parking")
        self.park_tree = STRtree(self.metric[self.park])
        self.np_tree = STRtree(self.metric[self.kind == "no_parking"])

    def nearest_box(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (i, j), d = self.park_tree.query_nearest(pts, return_distance=True, all_matches=False)
        pos = np.full(len(pts), -1)
        dist = np.full(len(pts), np.inf)
        pos[i] = self.park[j]
        dist[i] = d
        return pos, dist


def _check_truth(fc: dict, t: TripEnds) -> None:
    z = Zones(fc)
    x, y = crs.project(t.true_lon, t.true_lat)
    pts = shapely.points(x, y)
    zone = np.array([z.pos.get(i, -1) for i in t.truth_zone.tolist()])
    has_zone = t.truth != "far"
    assert (zone[has_zone] >= 0).all() and (t.truth_zone[~has_zone] == "").all()
    _, dist = z.nearest_box(pts)
    in_np = np.zeros(len(t), dtype=bool)
    in_np[z.np_tree.query(pts, predicate="intersects")[0]] = True
    on_land = district_of(t.true_lon, t.true_lat) != ""
    own = np.full(len(t), np.inf)
    own[has_zone] = shapely.distance(z.metric[zone[has_zone]], pts[has_zone])

    for cls in ("inside", "inside_unfenced"):
        m = t.truth == cls
        assert shapely.covers(z.metric[zone[m]], pts[m]).all()
        assert (z.kind[zone[m]] == "parking").all()
        assert (z.fenced[zone[m]] == (cls == "inside")).all()
    m = t.truth == "no_parking"
    assert shapely.covers(z.metric[zone[m]], pts[m]).all()
    assert (z.kind[zone[m]] == "no_parking").all() and (dist[m] > 0).all()
    for cls, lo, hi in (("beside", 0.0, 2.0), ("near", 2.0, 15.0)):
        m = t.truth == cls
        assert ((own[m] > lo) & (own[m] <= hi)).all(), cls
        assert np.allclose(own[m], dist[m], atol=1e-6)  # the truth zone is the nearest box
        assert z.fenced[zone[m]].all() and on_land[m].all() and not in_np[m].any()
        if m.sum() >= 100:  # spread over the whole band
            assert (own[m] < lo + (hi - lo) / 4).any() and (own[m] > hi - (hi - lo) / 4).any()
    m = t.truth == "far"
    assert ((dist[m] >= 15.0) & (dist[m] <= 300.0)).all()
    assert on_land[m].all() and not in_np[m].any()


def test_shapes_and_counts(trips: TripEnds) -> None:
    assert len(trips) == N
    for name in ("true_lon", "true_lat", "truth", "truth_zone"):
        assert getattr(trips, name).shape == (N,)
    for name in ("fix_lon", "fix_lat", "accuracy_m"):
        a = getattr(trips, name)
        assert a.shape == (N, FIXES) and a.dtype == np.float64
    assert trips.crs == "wgs84"
    got = {c: int((trips.truth == c).sum()) for c in CLASSES}
    assert got == {c: round(N * w) for c, w in DEFAULT_MIX.items()}
    # classes are interleaved, not in blocks
    assert len(set(trips.truth[:200].tolist())) >= 5
    acc = trips.accuracy_m
    assert (acc >= 3.0).all() and (acc <= 10.0).all()
    assert (acc == acc[:, :1]).all()  # one accuracy per trip


def test_truth_classes_hold(bundled: dict, trips: TripEnds) -> None:
    _check_truth(bundled, trips)


def test_noise_statistics(trips: TripEnds) -> None:
    tx, ty = crs.project(trips.true_lon, trips.true_lat)
    fx, fy = crs.project(trips.fix_lon, trips.fix_lat)
    dx, dy = fx - tx[:, None], fy - ty[:, None]
    r = np.hypot(dx, dy)
    share = (r <= trips.accuracy_m).mean()
    assert abs(share - 0.68) < 0.01
    sigma = trips.accuracy_m / SIGMA_PER_ACCURACY
    assert abs(np.std(dx / sigma) - 1.0) < 0.02 and abs(np.std(dy / sigma) - 1.0) < 0.02
    assert abs(np.mean(dx / sigma)) < 0.02 and abs(np.mean(dy / sigma)) < 0.02
    assert abs(np.corrcoef((dx / sigma).ravel(), (dy / sigma).ravel())[0, 1]) < 0.02
    assert abs(SIGMA_PER_ACCURACY - 1.5096) < 1e-4


def test_precise_accuracy(small: dict) -> None:
    t = make_trip_ends(small, 4000, seed=1, accuracy="precise")
    assert (t.accuracy_m >= 0.3).all() and (t.accuracy_m <= 1.0).all()
    tx, ty = crs.project(t.true_lon, t.true_lat)
    fx, fy = crs.project(t.fix_lon, t.fix_lat)
    r = np.hypot(fx - tx[:, None], fy - ty[:, None])
    assert abs((r <= t.accuracy_m).mean() - 0.68) < 0.02
    _check_truth(small, t)


@pytest.mark.parametrize("name", ["gcj02", "bd09"])
def test_crs_round_trip(small: dict, name: str) -> None:
    w = make_trip_ends(small, 3000, seed=9)
    t = make_trip_ends(small, 3000, seed=9, crs=name)
    assert t.crs == name
    for f in ("true_lon", "true_lat", "truth", "truth_zone", "accuracy_m"):
        assert np.array_equal(getattr(t, f), getattr(w, f))
    # reported ~600 m off WGS-84, and back to the same fixes to well under a millimetre
    ox, oy = crs.project(t.fix_lon, t.fix_lat)
    wx, wy = crs.project(w.fix_lon, w.fix_lat)
    assert 300 < np.median(np.hypot(ox - wx, oy - wy)) < 1500
    lon, lat = crs.to_wgs84(t.fix_lon, t.fix_lat, name)
    bx, by = crs.project(lon, lat)
    assert np.hypot(bx - wx, by - wy).max() < 1e-3


def test_deterministic_and_seeded(small: dict) -> None:
    a = make_trip_ends(small, 500, seed=3)
    b = make_trip_ends(small, 500, seed=3)
    c = make_trip_ends(small, 500, seed=4)
    assert np.array_equal(a.fix_lon, b.fix_lon) and np.array_equal(a.truth_zone, b.truth_zone)
    assert not np.array_equal(a.true_lon, c.true_lon)


def test_npz_round_trip(tmp_path: Path, small: dict) -> None:
    t = make_trip_ends(small, 300, seed=3, crs="bd09", fixes_per_trip=3)
    path = t.save_npz(tmp_path / "sub" / "trips.npz")
    back = TripEnds.load_npz(path)
    assert back.crs == "bd09"
    for f in ("true_lon", "true_lat", "truth", "truth_zone", "fix_lon", "fix_lat", "accuracy_m"):
        assert np.array_equal(getattr(back, f), getattr(t, f))
        assert getattr(back, f).dtype == getattr(t, f).dtype


def test_from_path_and_custom_mix(small: dict, tmp_path: Path) -> None:
    path = tmp_path / "z.geojson"
    path.write_text(json.dumps(small), encoding="utf-8")
    t = make_trip_ends(path, 101, seed=2, mix={"far": 1, "no_parking": 2}, accuracy=(1.0, 2.0))
    assert set(t.truth.tolist()) == {"far", "no_parking"}
    assert (t.truth == "no_parking").sum() == 67
    assert (t.accuracy_m >= 1.0).all() and (t.accuracy_m <= 2.0).all()
    assert len(make_trip_ends(small, 0, seed=1)) == 0


def test_bad_arguments(small: dict) -> None:
    with pytest.raises(ValueError, match="unknown truth classes"):
        make_trip_ends(small, 10, seed=1, mix={"inside": 1, "floating": 1})
    with pytest.raises(ValueError, match="unknown accuracy"):
        make_trip_ends(small, 10, seed=1, accuracy="sloppy")
    with pytest.raises(ValueError):
        make_trip_ends(small, 10, seed=1, crs="utm")
    with pytest.raises(ValueError):
        make_trip_ends(small, 10, seed=1, fixes_per_trip=0)
    only_fenced = synth_zhuhai(seed=1, n_parking=100, n_fenced=100, n_no_parking=5)
    with pytest.raises(ValueError, match="no zones"):
        make_trip_ends(only_fenced, 10, seed=1, mix={"inside_unfenced": 1})
    t = make_trip_ends(only_fenced, 50, seed=1)  # default mix drops the empty class
    assert "inside_unfenced" not in set(t.truth.tolist())


def test_parse_accuracy() -> None:
    assert parse_accuracy("consumer") == (3.0, 10.0)
    assert parse_accuracy("Precise") == (0.3, 1.0)
    assert parse_accuracy("2-5") == (2.0, 5.0)
    for bad in ("", "5-2", "0-1", "x-y", "fast", (3.0, 1.0)):
        with pytest.raises(ValueError):
            parse_accuracy(bad)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weights=st.dictionaries(st.sampled_from(CLASSES), st.integers(1, 5), min_size=1),
    n=st.integers(1, 150),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_mix_holds_its_truth(weights: dict, n: int, seed: int) -> None:
    small = _small()
    t = make_trip_ends(small, n, seed=seed, mix=weights, fixes_per_trip=2)
    assert len(t) == n and set(t.truth.tolist()) <= set(weights)
    _check_truth(small, t)
