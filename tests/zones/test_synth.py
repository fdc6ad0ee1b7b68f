"""The synthetic Zhuhai zone set: generator invariants and the committed file's."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import STRtree
from typer.testing import CliRunner

from geofence import crs
from zones import districts as zd
from zones.cli import app
from zones.synth import DEFAULT_PATH, OPERATORS, geojson_text, synth_zhuhai, write_geojson

PROPS = {
    "kind",
    "fenced",
    "district",
    "name",
    "capacity",
    "operators",
    "heading_deg",
    "beacons",
    "active_from",
    "active_to",
}
TOL_M = 0.02  # coordinates are rounded to 1e-7 deg (~1 cm)
NAME_TO_CODE = {name: code for code, (_, name) in zd.DISTRICTS.items()}


def _metric(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda c: np.column_stack(crs.project(c[:, 0], c[:, 1])))


class ZoneFile:
    """A zone set's features with their geometry in lon/lat and in EPSG:4547 metres."""

    def __init__(self, fc: dict) -> None:
        self.fc = fc
        self.features = fc["features"]
        self.ids = np.array([f["id"] for f in self.features])
        self.props = [f["properties"] for f in self.features]
        self.kind = np.array([p["kind"] for p in self.props])
        self.geom = shapely.from_geojson(
            np.array([json.dumps(f["geometry"]) for f in self.features], dtype=object)
        )
        self.metric = _metric(self.geom)
        self.park = self.kind == "parking"


@pytest.fixture(scope="module")
def bundled() -> ZoneFile:
    return ZoneFile(json.loads(DEFAULT_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def small() -> ZoneFile:
    return ZoneFile(synth_zhuhai(seed=7, n_parking=1500, n_fenced=1000, n_no_parking=40))


def _box_dims(metric: np.ndarray) -> np.ndarray:
    """(width, length) of each box's minimum rotated rectangle, metres."""
    rect = shapely.minimum_rotated_rectangle(metric)
    c = shapely.get_coordinates(shapely.get_exterior_ring(rect)).reshape(len(metric), -1, 2)
    e1 = np.hypot(*(c[:, 1] - c[:, 0]).T)
    e2 = np.hypot(*(c[:, 2] - c[:, 1]).T)
    return np.column_stack([np.minimum(e1, e2), np.maximum(e1, e2)])


def _is_rectangle(metric: shapely.Polygon) -> bool:
    c = np.asarray(metric.exterior.coords)[:-1]
    if len(c) != 4:
        return False
    v1 = np.roll(c, -1, axis=0) - c
    v0 = c - np.roll(c, 1, axis=0)
    cos = np.abs((v0 * v1).sum(1)) / (np.hypot(*v0.T) * np.hypot(*v1.T))
    return bool((cos < math.sin(math.radians(2.0))).all())


# ---------------------------------------------------------------------------- districts


def test_districts_bundled_in_the_package() -> None:
    assert zd.DATA_DIR.is_relative_to(Path(zd.__file__).parent)
    for admin in ["440400"] + [a for a, _ in zd.DISTRICTS.values()]:
        assert (zd.DATA_DIR / f"{admin}.geojson").is_file()
    assert "MIT" in (zd.DATA_DIR / "LICENSE").read_text()
    assert "GCJ-02" in (zd.DATA_DIR / "README.md").read_text()
    assert zd.DISTRICTS == {
        "XZ": ("440402", "香洲区"),
        "DM": ("440403", "斗门区"),
        "JW": ("440404", "金湾区"),
    }


def test_district_outlines_are_converted_from_gcj02() -> None:
    outlines = zd.load_districts()
    assert set(outlines) == {"XZ", "DM", "JW"}
    raw = shapely.from_geojson((zd.DATA_DIR / "440402.geojson").read_text())
    for g in outlines.values():
        assert isinstance(g, shapely.MultiPolygon) and g.is_valid
    # WGS-84 sits some 600 m west-north-west of GCJ-02 in Zhuhai
    a = np.array(shapely.centroid(raw).coords[0])
    b = np.array(shapely.centroid(outlines["XZ"]).coords[0])
    (ax, bx), (ay, by) = crs.project([a[0], b[0]], [a[1], b[1]])
    shift = math.hypot(ax - bx, ay - by)
    assert 400 < shift < 800
    assert zd.service_area().is_valid
    assert zd.load_districts() is not outlines  # a fresh dict, cached geometry
    assert zd.load_districts()["XZ"] is outlines["XZ"]


def test_district_of_is_vectorized() -> None:
    lon = np.array([113.5765, 113.2950, 113.3780, 113.0, 114.5])
    lat = np.array([22.2710, 22.2150, 22.0580, 22.0, 22.0])
    got = zd.district_of(lon, lat)
    assert got.tolist() == ["XZ", "DM", "JW", "", ""]
    assert zd.district_of(113.5765, 22.2710).tolist() == "XZ"
    grid = zd.district_of(np.full((2, 3), 113.5765), np.full((2, 3), 22.2710))
    assert grid.shape == (2, 3) and (grid == "XZ").all()


# ---------------------------------------------------------------------------- generator


def test_same_seed_same_bytes_other_seed_differs() -> None:
    kw = {"n_parking": 300, "n_fenced": 200, "n_no_parking": 20}
    a = geojson_text(synth_zhuhai(seed=11, **kw))
    b = geojson_text(synth_zhuhai(seed=11, **kw))
    c = geojson_text(synth_zhuhai(seed=12, **kw))
    assert a == b
    assert a != c


def test_committed_file_is_what_the_generator_writes(tmp_path: Path) -> None:
    out = write_geojson(synth_zhuhai(), tmp_path / "zhuhai.geojson")
    assert out.read_bytes() == DEFAULT_PATH.read_bytes()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cannot exceed"):
        synth_zhuhai(n_parking=10, n_fenced=11)
    with pytest.raises(ValueError):
        synth_zhuhai(n_parking=-1)


def test_small_counts(small: ZoneFile) -> None:
    assert small.park.sum() == 1500
    assert sum(p["fenced"] for p in small.props) == 1000
    assert (small.kind == "no_parking").sum() == 40


# ---------------------------------------------------------------------------- invariants


def _check_structure(z: ZoneFile) -> None:
    fc = z.fc
    assert fc["type"] == "FeatureCollection"
    assert fc["zone_set"]["name"] == "zhuhai"
    assert fc["zone_set"]["source"].startswith("synthetic (geofence zones synth, seed ")
    assert z.ids.tolist() == sorted(z.ids.tolist())
    assert len(set(z.ids.tolist())) == len(z.ids)
    for f in z.features:
        assert f["type"] == "Feature" and isinstance(f["id"], str)
        p = f["properties"]
        assert set(p) == PROPS
        m = re.fullmatch(r"ZH-(XZ|DM|JW)-(NP-\d{4}|\d{6})", f["id"])
        assert m, f["id"]
        assert NAME_TO_CODE[p["district"]] == m.group(1)
        assert isinstance(p["name"], str) and p["name"]
        assert isinstance(p["capacity"], int) and p["capacity"] >= 0
        assert isinstance(p["fenced"], bool)
        assert all(op in OPERATORS for op in p["operators"])
        for key in ("active_from", "active_to"):
            if p[key] is not None:
                assert datetime.fromisoformat(p[key]).tzinfo is not None
        if p["kind"] == "no_parking":
            assert "-NP-" in f["id"]
            assert not p["fenced"] and p["capacity"] == 0 and p["heading_deg"] is None
            assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        else:
            assert p["kind"] == "parking" and "-NP-" not in f["id"]
            assert f["geometry"]["type"] == "Polygon"
            assert p["capacity"] >= 1
            if p["beacons"]:
                assert p["fenced"]
                for k, b in enumerate(p["beacons"], 1):
                    assert b == f"BCN-{f['id'][3:]}-{k}"
            h = p["heading_deg"]
            assert h is None or (isinstance(h, float) and 0.0 <= h < 180.0)
        polys = (
            [f["geometry"]["coordinates"]]
            if f["geometry"]["type"] == "Polygon"
            else f["geometry"]["coordinates"]
        )
        for poly in polys:
            for ring in poly:
                assert len(ring) >= 4 and ring[0] == ring[-1]
                for lon, lat in ring:
                    assert 113.0 < lon < 114.4 and 21.7 < lat < 22.5
                    assert round(lon, 7) == lon and round(lat, 7) == lat


def _check_geometry(z: ZoneFile) -> None:
    assert shapely.is_valid(z.geom).all()
    parts = shapely.get_parts(z.geom)
    assert shapely.is_ccw(shapely.get_exterior_ring(parts)).all()
    holes = np.array([h for p in parts for h in p.interiors], dtype=object)
    assert not shapely.is_ccw(holes).any()
    # inside the labelled district (WGS-84 outlines), and in the service area
    outlines = zd.load_districts()
    codes = np.array([i.split("-")[1] for i in z.ids])
    for code, outline in outlines.items():
        sel = codes == code
        assert shapely.contains(outline, z.geom[sel]).all(), code
    assert shapely.contains(zd.service_area(), z.geom).all()
    # no two boxes overlap or touch; no box touches a no-parking area
    boxes = z.geom[z.park]
    a, b = STRtree(boxes).query(boxes, predicate="intersects")
    assert (a == b).all()
    nopark = z.geom[~z.park]
    hit, _ = STRtree(nopark).query(boxes, predicate="intersects")
    assert len(hit) == 0


def _check_boxes(z: ZoneFile) -> None:
    metric = z.metric[z.park]
    dims = _box_dims(metric)
    assert dims[:, 0].min() >= 1.5 - TOL_M and dims[:, 0].max() <= 3.0 + TOL_M
    assert dims[:, 1].min() >= 4.0 - TOL_M and dims[:, 1].max() <= 20.0 + TOL_M
    odd = np.array([not _is_rectangle(g) for g in metric])
    assert 0.03 < odd.mean() < 0.075
    # capacity ~ one bike per 0.7 m of length
    cap = np.array([p["capacity"] for p, k in zip(z.props, z.park, strict=True) if k])
    assert (np.abs(cap - np.floor(dims[:, 1] / 0.7)) <= 1).all()
    # heading: perpendicular to the long axis, clockwise from true north
    park_props = [p for p, k in zip(z.props, z.park, strict=True) if k]
    with_h = np.array([p["heading_deg"] is not None for p in park_props])
    assert 0.06 < with_h.mean() < 0.14
    rect = shapely.minimum_rotated_rectangle(z.geom[z.park][with_h])  # lon/lat
    c = shapely.get_coordinates(shapely.get_exterior_ring(rect)).reshape(-1, 5, 2)
    k = np.cos(np.radians(c[:, 0, 1]))  # local east/north frame
    east1, north1 = (c[:, 1, 0] - c[:, 0, 0]) * k, c[:, 1, 1] - c[:, 0, 1]
    east2, north2 = (c[:, 2, 0] - c[:, 1, 0]) * k, c[:, 2, 1] - c[:, 1, 1]
    long1 = np.hypot(east1, north1) >= np.hypot(east2, north2)
    east = np.where(long1, east1, east2)
    north = np.where(long1, north1, north2)
    axis = np.degrees(np.arctan2(east, north))
    heading = np.array([p["heading_deg"] for p in park_props if p["heading_deg"] is not None])
    diff = np.abs((heading - axis - 90.0 + 90.0) % 180.0 - 90.0)
    assert diff.max() < 1.0
    fenced = np.array([p["fenced"] for p in park_props])
    beacons = np.array([bool(p["beacons"]) for p in park_props])
    assert 0.1 < beacons[fenced].mean() < 0.2 and not beacons[~fenced].any()
    restricted = np.array([bool(p["operators"]) for p in park_props])
    assert 0.01 < restricted.mean() < 0.06
    timed = np.array(
        [p["active_from"] is not None or p["active_to"] is not None for p in park_props]
    )
    assert 0 < timed.sum() and timed.mean() < 0.03


def test_small_invariants(small: ZoneFile) -> None:
    _check_structure(small)
    _check_geometry(small)
    _check_boxes(small)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_any_seed_gives_a_valid_set(seed: int) -> None:
    z = ZoneFile(synth_zhuhai(seed=seed, n_parking=200, n_fenced=120, n_no_parking=12))
    assert z.park.sum() == 200 and (~z.park).sum() == 12
    _check_structure(z)
    _check_geometry(z)


def test_bundled_counts(bundled: ZoneFile) -> None:
    assert bundled.park.sum() == 18000
    assert sum(p["fenced"] for p in bundled.props) == 13000
    assert 200 <= (~bundled.park).sum() <= 400
    assert bundled.fc["zone_set"]["source"] == "synthetic (geofence zones synth, seed 20261126)"


def test_bundled_invariants(bundled: ZoneFile) -> None:
    _check_structure(bundled)
    _check_geometry(bundled)
    _check_boxes(bundled)


def test_bundled_no_parking_areas(bundled: ZoneFile) -> None:
    nopark = bundled.geom[~bundled.park]
    names = {p["name"] for p in bundled.props if p["kind"] == "no_parking"}
    for port in ("拱北口岸", "横琴口岸", "港珠澳大桥珠海口岸", "九洲港", "珠海国际航展中心"):
        assert f"{port}禁停区" in names
    assert (shapely.get_type_id(nopark) == 6).sum() >= 3  # MultiPolygons
    assert (shapely.get_num_interior_rings(shapely.get_parts(nopark)) > 0).sum() >= 3
    area = shapely.area(bundled.metric[~bundled.park])
    assert np.median(area) > 2000


def test_bundled_density_by_district(bundled: ZoneFile) -> None:
    counts = Counter(p["district"] for p in bundled.props if p["kind"] == "parking")
    area = {
        code: shapely.area(_metric(np.array([g], dtype=object))[0]) / 1e6
        for code, g in zd.load_districts().items()
    }
    density = {code: counts[name] / area[code] for code, (_, name) in zd.DISTRICTS.items()}
    assert density["XZ"] > 2 * density["DM"]
    assert density["XZ"] > 2 * density["JW"]
    assert min(counts.values()) > 1000


def test_bundled_file_layout() -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0].startswith('{"type":"FeatureCollection","zone_set":{')
    assert lines[-2:] == ["]}", ""]
    assert all(line.startswith('{"type":"Feature","id":"ZH-') for line in lines[1:-2])
    assert "香洲区" in text  # ensure_ascii=False


# ---------------------------------------------------------------------------- command line


def test_cli_synth(tmp_path: Path) -> None:
    out = tmp_path / "z.geojson"
    wout = tmp_path / "w.npz"
    args = ["synth", "--seed", "3", "--out", str(out), "--parking", "200", "--fenced", "150"]
    args += ["--no-parking", "10", "--workload", "50", "--workload-out", str(wout)]
    res = CliRunner().invoke(app, [*args, "--crs", "gcj02", "--accuracy", "precise"])
    assert res.exit_code == 0, res.output
    assert "210 zones" in res.stdout and "香洲区" in res.stdout
    fc = json.loads(out.read_text(encoding="utf-8"))
    assert len(fc["features"]) == 210
    assert wout.is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["--parking", "10", "--fenced", "11"],
        ["--seed", "-1"],
        ["--crs", "utm"],
        ["--accuracy", "sloppy"],
        ["--workload", "-5"],
    ],
)
def test_cli_synth_bad_arguments(tmp_path: Path, args: list[str]) -> None:
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "x.geojson"), *args])
    assert res.exit_code == 2
    assert not (tmp_path / "x.geojson").exists()
