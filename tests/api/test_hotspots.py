"""Hot spots: the grid-hash DBSCAN, the proposed boxes, the zone-set draft and
``geofence zones suggest`` (real audit log, real validator)."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from api.cli import app as cli
from geofence import ZoneIndex, ZoneSet
from geofence import crs as gcrs
from zones.suggest import (
    BOX_LENGTH_M,
    BOX_WIDTH_M,
    cluster,
    cluster_positions,
    draft,
    propose,
)
from zones.validate import validate

runner = CliRunner()

# a street corner in Xiangzhou (Gongbei), in EPSG:4547 metres
CX, CY = (float(v[0]) for v in gcrs.project(113.5763, 22.2709))


def _blob(rng: np.random.Generator, n: int, cx: float, cy: float, sd: float = 3.0):
    return cx + rng.normal(0, sd, n), cy + rng.normal(0, sd, n)


# ---------------------------------------------------------------------------- cluster
def test_a_seeded_cluster_is_found_with_its_centroid_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    bx, by = _blob(rng, 40, CX, CY)
    # noise: 300 trip ends over 4 km x 4 km, none with 10 neighbours within 15 m
    nx, ny = CX + rng.uniform(-2000, 2000, 300), CY + rng.uniform(-2000, 2000, 300)
    x, y = np.r_[bx, nx], np.r_[by, ny]
    for labels in (cluster(x, y, 15.0, 10), cluster_positions(x, y, 15.0, 10)):
        assert (labels[:40] == 0).all()
        assert (labels[40:] == -1).all()
        assert math.hypot(x[labels == 0].mean() - CX, y[labels == 0].mean() - CY) < 1.5


def test_clusters_below_min_count_are_noise() -> None:
    rng = np.random.default_rng(2)
    x, y = _blob(rng, 9, CX, CY, sd=1.0)
    assert (cluster(x, y, 15.0, 10) == -1).all()
    assert (cluster(x, y, 15.0, 9) == 0).all()  # min_count counts the point itself


def test_two_clusters_are_numbered_by_size_and_chains_connect() -> None:
    rng = np.random.default_rng(3)
    ax, ay = _blob(rng, 25, CX, CY, sd=2.0)
    bx, by = _blob(rng, 40, CX + 300, CY, sd=2.0)
    labels = cluster(np.r_[ax, bx], np.r_[ay, by], 10.0, 5)
    assert (labels[:25] == 1).all() and (labels[25:] == 0).all()
    # a line of points 4 m apart: every point has 5 neighbours within 10 m except the
    # ends (border points): one cluster
    lx = CX + 4.0 * np.arange(50)
    line = cluster(lx, np.full(50, CY), 10.0, 5)
    assert (line == 0).all()
    assert cluster(lx, np.full(50, CY), 3.9, 2).tolist() == [-1] * 50


def test_cluster_weights_and_bad_arguments() -> None:
    x = np.array([CX, CX + 1.0, CX + 500.0])
    y = np.array([CY, CY, CY])
    assert cluster(x, y, 5.0, 10, weight=np.array([6, 4, 1])).tolist() == [0, 0, -1]
    assert cluster(np.zeros(0), np.zeros(0), 5.0, 3).tolist() == []
    with pytest.raises(ValueError):
        cluster(x, y, 0.0, 3)
    with pytest.raises(ValueError):
        cluster(x, y, 5.0, 0)


def test_dense_clusters_stay_cheap() -> None:
    """200,000 trip ends in one spot: the snapping bounds the pairs examined."""
    rng = np.random.default_rng(4)
    x, y = _blob(rng, 200_000, CX, CY, sd=5.0)
    labels = cluster_positions(x, y, 15.0, 10)
    assert (labels == 0).mean() > 0.999


# ---------------------------------------------------------------------------- propose
@pytest.fixture(scope="module")
def index(small_fc: dict[str, Any]) -> ZoneIndex:
    return ZoneIndex(ZoneSet.from_geojson(small_fc))


def _box_centre_m(feature: dict[str, Any]) -> tuple[float, float]:
    c = shapely.geometry.shape(feature["geometry"]).centroid
    x, y = gcrs.project(c.x, c.y)
    return float(x[0]), float(y[0])


def _lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gcrs.unproject(x, y)


def _metric(poly: shapely.Polygon) -> shapely.Polygon:
    c = np.asarray(poly.exterior.coords)
    x, y = gcrs.project(c[:, 0], c[:, 1])
    return shapely.Polygon(np.column_stack([x, y]))


def test_proposed_box_at_the_centroid_oriented_like_the_nearby_box(
    index: ZoneIndex, small_fc: dict[str, Any]
) -> None:
    rng = np.random.default_rng(5)
    fid = small_fc["features"][0]["id"]
    bx, by = _box_centre_m(small_fc["features"][0])
    # 30 trip ends 25 m east of box 0, an elongated cloud (north-south)
    x, y = bx + 25 + rng.normal(0, 1.0, 30), by + rng.normal(0, 4.0, 30)
    lon, lat = _lonlat(x, y)
    [s] = propose(lon, lat, radius_m=15, min_count=10, days=7, index=index, operators=["a"] * 30)
    assert s.id == "ZH-SUG-0001" and s.count == 30 and s.action == "paint"
    sx, sy = gcrs.project(s.lon, s.lat)
    assert math.hypot(sx[0] - x.mean(), sy[0] - y.mean()) < 0.01
    assert s.orientation_source == "nearby_boxes" and s.nearest_box == fid
    zs = index.zone_set
    rect = shapely.oriented_envelope(zs.geometry_m[zs.position[fid]])
    c = np.asarray(rect.exterior.coords)
    e = max((c[1] - c[0], c[2] - c[1]), key=lambda v: np.hypot(*v))
    want = math.degrees(math.atan2(e[0], e[1])) % 180
    assert min(abs(s.orientation_deg - want), 180 - abs(s.orientation_deg - want)) < 0.5
    m = _metric(s.box)
    env = shapely.oriented_envelope(m)
    sides = sorted(np.hypot(*np.diff(np.asarray(env.exterior.coords)[:3], axis=0).T).tolist())
    assert sides == pytest.approx([BOX_WIDTH_M, BOX_LENGTH_M], abs=0.01)
    assert s.expected_per_day == pytest.approx(30 / 7)
    assert s.district == "香洲区" and s.operators == {"a": 30}


def test_without_boxes_nearby_the_cluster_shape_sets_the_orientation() -> None:
    rng = np.random.default_rng(6)
    # a cloud along a north-east line (bearing 45 degrees)
    t = rng.normal(0, 6.0, 40)
    x, y = CX + t * math.sin(math.radians(45)), CY + t * math.cos(math.radians(45))
    x, y = x + rng.normal(0, 0.5, 40), y + rng.normal(0, 0.5, 40)
    [s] = propose(*_lonlat(x, y), radius_m=15, min_count=10, days=1)
    assert s.orientation_source == "cluster_shape"
    assert abs(s.orientation_deg - 45) < 5
    assert s.expected_per_day == 40


def test_noise_below_min_count_gets_no_box(index: ZoneIndex) -> None:
    rng = np.random.default_rng(7)
    x, y = CX + rng.uniform(-3000, 3000, 200), CY + rng.uniform(-3000, 3000, 200)
    assert propose(*_lonlat(x, y), radius_m=15, min_count=10, index=index) == []
    assert propose(np.zeros(0), np.zeros(0)) == []


def test_boxes_keep_off_existing_boxes_and_each_other(
    index: ZoneIndex, small_fc: dict[str, Any]
) -> None:
    """Clusters right on top of fenced boxes' edges: every proposal is moved off them,
    and the draft validates alone and merged into the set it was made against."""
    rng = np.random.default_rng(8)
    xs, ys = [], []
    for f in small_fc["features"][:30]:
        bx, by = _box_centre_m(f)
        x, y = _blob(rng, 20, bx + 2.0, by, sd=1.5)
        xs.append(x)
        ys.append(y)
    lon, lat = _lonlat(np.concatenate(xs), np.concatenate(ys))
    sugg = propose(lon, lat, radius_m=10, min_count=8, days=7, index=index)
    assert len(sugg) >= 10
    zs = index.zone_set
    paint = [s for s in sugg if s.action == "paint"]
    assert any(s.shift_m != 0 for s in paint)  # moved sideways off the box they hug
    for s in paint:
        m = _metric(s.box)
        for p in range(len(zs)):
            assert shapely.intersection(m, zs.geometry_m[p]).area < 1e-6
    doc = draft(sugg)
    assert [f["id"] for f in doc["features"]] == [s.id for s in paint]
    alone = validate(doc)
    assert alone.ok and not alone.issues, alone.summary()
    merged = dict(small_fc, features=small_fc["features"] + doc["features"])
    together = validate(merged)
    assert together.ok, [i for i in together.issues if i.severity == "error"][:3]
    assert not [i for i in together.issues if i.rule == "overlapping-boxes"]
    # the draft builds as a zone set: parking, not fenced, districts from the outlines
    zs2 = ZoneSet.from_geojson(doc)
    assert not zs2.fenced.any() and set(zs2.district.tolist()) <= {"香洲区", "斗门区", "金湾区"}


def test_a_cluster_in_an_unfenced_box_asks_to_fence_it(
    index: ZoneIndex, small_fc: dict[str, Any]
) -> None:
    unfenced = next(
        f
        for f in small_fc["features"]
        if f["properties"]["kind"] == "parking" and not f["properties"]["fenced"]
    )
    c = shapely.point_on_surface(shapely.geometry.shape(unfenced["geometry"]))
    lon = np.full(12, c.x) + np.linspace(-1e-7, 1e-7, 12)
    lat = np.full(12, c.y)
    [s] = propose(lon, lat, radius_m=10, min_count=10, index=index)
    assert s.action == "fence" and s.nearest_box == unfenced["id"]
    doc = draft([s])
    assert doc["features"] == []
    assert doc["zone_set"]["fence"] == [
        {"zone_id": unfenced["id"], "rejected_trip_ends": 12, "suggestion": s.id}
    ]


# ---------------------------------------------------------------------------- the CLI
def _record(client, keys, body_of, points, key) -> list[dict[str, Any]]:
    checks = [body_of(lon, lat, f"T-{key[-6:]}-{i}") for i, (lon, lat) in enumerate(points)]
    r = client.post("/v1/checks/batch", json={"checks": checks}, headers=keys.h(key))
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.fixture
def body_of(make_body):
    def make(lon: float, lat: float, trip: str) -> dict[str, Any]:
        return make_body(lonlat=(lon, lat), trip=trip)

    return make


def test_zones_suggest_writes_a_draft_that_validates(
    client, keys, body_of, far_point, settings, tmp_path
) -> None:
    rng = np.random.default_rng(9)
    x0, y0 = (float(v[0]) for v in gcrs.project(*far_point))
    lon, lat = _lonlat(*_blob(rng, 25, x0, y0, sd=2.5))
    res = _record(client, keys, body_of, list(zip(lon, lat, strict=True)), keys.meituan)
    assert {d["outcome"] for d in res} == {"reject"}
    assert {r for d in res for r in d["reasons"]} == {"outside_all_boxes"}
    # scattered rejects of another operator: noise
    nx, ny = _blob(rng, 8, x0 + 800, y0 + 800, sd=300)
    _record(client, keys, body_of, list(zip(*_lonlat(nx, ny), strict=True)), keys.hellobike)
    env = {"GEOFENCE_DATABASE_URL": settings.database_url}
    out = tmp_path / "draft" / "suggested.geojson"
    r = runner.invoke(cli, ["zones", "suggest", "--out", str(out), "--min-count", "10"], env=env)
    assert r.exit_code == 0, r.output
    # rich wraps lines at the runner's width, even inside words: compare without spaces
    flat = "".join(r.stdout.split())
    # one hot spot; how many scattered rejects count depends on which land outside
    # the service area (those are rejected for that, not clustered)
    assert re.search(r"1hotspotsfrom\d+rejectedtripends", flat), flat[-300:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    [f] = doc["features"]
    assert f["id"] == "ZH-SUG-0001" and f["properties"]["kind"] == "parking"
    assert f["properties"]["fenced"] is False and f["properties"]["district"] == "香洲区"
    sug = f["properties"]["suggestion"]
    assert sug["rejected_trip_ends"] == 25 and sug["operators"] == {"meituan": 25}
    assert sug["expected_settled_per_day"] == pytest.approx(25 / 7, abs=0.01)
    cx, cy = gcrs.project(*sug["centroid"])
    assert math.hypot(cx[0] - x0, cy[0] - y0) < 2.0
    v = runner.invoke(cli, ["zones", "validate", str(out)])
    assert v.exit_code == 0, v.output
    # a window without the checks: an empty draft, still exit 0
    past = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    r2 = runner.invoke(
        cli, ["zones", "suggest", "--out", str(out), "--to", past, "--json"], env=env
    )
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.stdout)["features"] == []
    assert json.loads(out.read_text(encoding="utf-8"))["features"] == []
    bad = runner.invoke(
        cli, ["zones", "suggest", "--out", str(out), "--from", "yesterday"], env=env
    )
    assert bad.exit_code == 2
    bad = runner.invoke(cli, ["zones", "suggest", "--out", str(out), "--radius-m", "0"], env=env)
    assert bad.exit_code == 2
