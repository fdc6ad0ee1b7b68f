"""zones.export: GeoJSON, GBFS 3.0 / 2.3 (official schemas + our own geometry checks), MDS."""

from __future__ import annotations

import copy
import itertools
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest
import shapely
from typer.testing import CliRunner

from api.cli import app
from geofence.crs import project, unproject
from zones.diff import BUNDLED_PATH
from zones.export import (
    FORMATS,
    GBFS_FEEDS,
    check_rings,
    export,
    format_checker,
    validate_gbfs,
    validate_mds,
)
from zones.export import GBFS_SCHEMA_DIR as SCHEMA_DIR

NOW = datetime(2026, 6, 1, 4, 0, 0, tzinfo=UTC)  # 12:00 in Zhuhai
ORIGIN = (113.55, 22.25)  # 拱北, 香洲区
PARKING_TYPES = {
    "parking_lot",
    "street_parking",
    "underground_parking",
    "sidewalk_parking",
    "other",
}


# --------------------------------------------------------------------------- fixture


def _origin_m() -> tuple[float, float]:
    x, y = project(*ORIGIN)
    return float(np.asarray(x).reshape(-1)[0]), float(np.asarray(y).reshape(-1)[0])


def _ring(dx: float, dy: float, w: float, ln: float, angle: float = 30.0) -> list[list[float]]:
    """A w x ln rectangle (metres) centred dx, dy from ORIGIN, counter-clockwise, closed."""
    x0, y0 = _origin_m()
    a = np.radians(angle)
    u, v = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    pts = np.array(
        [
            [x0 + dx, y0 + dy] + (su * ln / 2) * u + (sv * w / 2) * v
            for su, sv in [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
        ]
    )
    lon, lat = unproject(pts[:, 0], pts[:, 1])
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def _feature(zid: str, coords: list[Any], gtype: str = "Polygon", **props: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "kind": "parking",
        "fenced": True,
        "district": "香洲区",
        "name": f"拱北停放区 {zid[-3:]}",
        "capacity": 8,
        "operators": [],
        "heading_deg": None,
        "beacons": [],
        "active_from": None,
        "active_to": None,
    }
    p.update(props)
    return {
        "type": "Feature",
        "id": zid,
        "geometry": {"type": gtype, "coordinates": coords},
        "properties": p,
    }


def fixture_fc() -> dict[str, Any]:
    f = [_feature(f"ZH-XZ-{i:06d}", [_ring(20.0 * i, 0, 2, 8)], capacity=4 + i) for i in range(5)]
    # given clockwise: the export must rewind it
    f.append(_feature("ZH-XZ-000010", [_ring(0, 20, 2.5, 12)[::-1]], capacity=15))
    f.append(_feature("ZH-XZ-000011", [_ring(0, 40, 2, 6)], fenced=False, capacity=6))
    f.append(  # expired last year
        _feature("ZH-XZ-000012", [_ring(0, 60, 2, 6)], active_to="2025-06-01T00:00:00+08:00")
    )
    f.append(  # opens next year
        _feature("ZH-XZ-000013", [_ring(0, 80, 2, 6)], active_from="2027-01-01T00:00:00+08:00")
    )
    hole = _ring(60, 80, 4, 4)[::-1]
    f.append(
        _feature(
            "ZH-XZ-NP-0001",
            [_ring(60, 80, 30, 40), hole],
            kind="no_parking",
            fenced=False,
            capacity=0,
            name="拱北口岸广场",
        )
    )
    f.append(
        _feature(
            "ZH-XZ-NP-0002",
            [[_ring(150, 0, 10, 10)], [_ring(180, 0, 10, 10)]],
            gtype="MultiPolygon",
            kind="no_parking",
            fenced=False,
            capacity=0,
            name="珠海航展馆 (航展期间)",
            active_from="2026-05-01T00:00:00+08:00",
            active_to="2026-11-30T00:00:00+08:00",
        )
    )
    return {"type": "FeatureCollection", "features": f}


FENCED_ACTIVE = {f"ZH-XZ-{i:06d}" for i in (0, 1, 2, 3, 4, 10)}
NO_PARKING = ["ZH-XZ-NP-0001", "ZH-XZ-NP-0002"]


# --------------------------------------------------------------------------- our own checks


def _signed_area(ring: list[list[float]]) -> float:
    a = 0.0
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        a += x1 * y2 - x2 * y1
    return a / 2


def assert_zhuhai_rings(geom: dict[str, Any], where: str, *, ccw: bool = True) -> None:
    """Independent of the exporter: MultiPolygon, lon/lat order in Zhuhai, closed rings of
    >= 4 positions, counter-clockwise exteriors and clockwise holes (right-hand rule; the
    reverse with ``ccw=False``, GBFS 2.3's geofencing zones), at most 6 decimals."""
    assert geom["type"] == "MultiPolygon", where
    assert geom["coordinates"], where
    for poly in geom["coordinates"]:
        for k, ring in enumerate(poly):
            assert len(ring) >= 4, where
            assert ring[0] == ring[-1], f"{where}: ring not closed"
            for lon, lat in ring:
                assert 113.0 <= lon <= 115.0 and 21.0 <= lat <= 23.0, f"{where}: lon/lat order"
                assert round(lon, 6) == lon and round(lat, 6) == lat, f"{where}: decimals"
            area = _signed_area(ring) * (1 if ccw else -1)
            assert area > 0 if k == 0 else area < 0, f"{where}: winding of ring {k}"


def _assert_rings_ccw(geom: dict[str, Any], where: str) -> None:
    """The GeoJSON export keeps every coordinate: winding only."""
    for poly in geom["coordinates"]:
        for k, ring in enumerate(poly):
            assert (_signed_area(ring) > 0) == (k == 0), f"{where}: winding of ring {k}"


def _near(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same shape up to 6-decimal rounding."""
    ga, gb = shapely.geometry.shape(a), shapely.geometry.shape(b)
    return shapely.hausdorff_distance(ga, gb) < 1e-6


def _load(out: Path, name: str) -> Any:
    return orjson.loads((out / name).read_bytes())


def _schema_errors(out: Path, version: str) -> list[str]:
    """Validate with jsonschema directly (Draft 7 + FormatChecker) against the bundled
    official schemas, plus RFC 3339 / URI checks the FormatChecker skips without extras."""
    errors = []
    for feed in GBFS_FEEDS:
        schema = orjson.loads((SCHEMA_DIR / f"v{version}" / f"{feed}.json").read_bytes())
        v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
        errors += [f"{feed}: {e.message[:200]}" for e in v.iter_errors(_load(out, f"{feed}.json"))]
    return errors


# --------------------------------------------------------------------------- GeoJSON


def test_geojson_export_keeps_zones_and_rewinds(tmp_path: Path) -> None:
    fc = fixture_fc()
    fc["zone_set"] = {"name": "test"}
    paths = export(fc, "geojson", tmp_path, now=NOW)
    assert paths == [tmp_path / "zones.geojson"]
    doc = _load(tmp_path, "zones.geojson")
    assert doc["type"] == "FeatureCollection" and doc["zone_set"] == {"name": "test"}
    assert [f["id"] for f in doc["features"]] == [f["id"] for f in fc["features"]]
    for src, f in zip(fc["features"], doc["features"], strict=True):
        assert f["properties"] == src["properties"]
        g = f["geometry"]
        assert g["type"] == src["geometry"]["type"]
        multi = (
            g
            if g["type"] == "MultiPolygon"
            else {**g, "type": "MultiPolygon", "coordinates": [g["coordinates"]]}
        )
        _assert_rings_ccw(multi, f["id"])
        assert shapely.equals(shapely.geometry.shape(g), shapely.geometry.shape(src["geometry"]))
    # already-CCW input comes out coordinate for coordinate
    assert doc["features"][0]["geometry"] == fc["features"][0]["geometry"]


# --------------------------------------------------------------------------- GBFS


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_gbfs_export_is_valid(tmp_path: Path, version: str) -> None:
    paths = export(fixture_fc(), f"gbfs-{version}", tmp_path, now=NOW)
    assert sorted(p.name for p in paths) == sorted(f"{f}.json" for f in GBFS_FEEDS)
    assert _schema_errors(tmp_path, version) == []
    assert validate_gbfs(tmp_path, version) == []
    for feed in GBFS_FEEDS:
        doc = _load(tmp_path, f"{feed}.json")
        assert set(doc) >= {"last_updated", "ttl", "version", "data"}
        assert doc["version"] == version
        assert isinstance(doc["ttl"], int) and doc["ttl"] >= 0
        if version == "3.0":
            assert datetime.fromisoformat(doc["last_updated"]) == NOW
        else:
            assert doc["last_updated"] == int(NOW.timestamp())


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_gbfs_stations(tmp_path: Path, version: str) -> None:
    fc = fixture_fc()
    export(fc, f"gbfs-{version}", tmp_path, now=NOW)
    stations = _load(tmp_path, "station_information.json")["data"]["stations"]
    by_id = {s["station_id"]: s for s in stations}
    assert set(by_id) == FENCED_ACTIVE  # every fenced active box, nothing else
    src = {f["id"]: f for f in fc["features"]}
    for sid, s in by_id.items():
        p = src[sid]["properties"]
        assert s["is_virtual_station"] is True
        assert s["capacity"] == p["capacity"]
        assert s["parking_type"] in PARKING_TYPES
        if version == "3.0":
            assert s["name"] == [{"text": p["name"], "language": "zh-CN"}]
        else:
            assert s["name"] == p["name"]
        assert_zhuhai_rings(s["station_area"], sid)  # RFC 7946 in both versions
        area = shapely.geometry.shape(s["station_area"])
        assert _near(s["station_area"], src[sid]["geometry"])
        assert round(s["lat"], 6) == s["lat"] and round(s["lon"], 6) == s["lon"]
        assert area.contains(shapely.Point(s["lon"], s["lat"])), f"{sid}: lat/lon outside box"


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_gbfs_geofencing_zones(tmp_path: Path, version: str) -> None:
    fc = fixture_fc()
    export(fc, f"gbfs-{version}", tmp_path, now=NOW)
    data = _load(tmp_path, "geofencing_zones.json")["data"]
    feats = data["geofencing_zones"]["features"]
    v3 = version == "3.0"
    assert len(feats) == len(NO_PARKING) + (1 if v3 else 2)
    for f in feats if v3 else feats[:-1]:  # 2.3's last zone is the world outside Zhuhai
        assert_zhuhai_rings(f["geometry"], str(f["properties"]["name"]), ccw=v3)
    src = {f["id"]: f for f in fc["features"]}
    for f, zid in zip(feats, NO_PARKING, strict=False):  # no-parking first: precedence
        assert _near(f["geometry"], src[zid]["geometry"])
        (rule,) = f["properties"]["rules"]
        if v3:
            assert rule["ride_end_allowed"] is False and rule["ride_start_allowed"] is True
            assert rule["ride_through_allowed"] is True
        else:
            assert rule == {"ride_allowed": False, "ride_through_allowed": True}
    airshow = feats[1]["properties"]
    if v3:
        assert datetime.fromisoformat(airshow["start"]) == datetime.fromisoformat(
            "2026-05-01T00:00:00+08:00"
        )
        assert datetime.fromisoformat(airshow["end"]) == datetime.fromisoformat(
            "2026-11-30T00:00:00+08:00"
        )
    else:
        assert airshow["start"] == int(
            datetime.fromisoformat("2026-05-01T00:00:00+08:00").timestamp()
        )
    area = feats[len(NO_PARKING)]
    (rule,) = area["properties"]["rules"]
    assert rule["station_parking"] is True
    if v3:
        assert rule["ride_end_allowed"] is True
        assert data["global_rules"] == [
            {"ride_start_allowed": False, "ride_end_allowed": False, "ride_through_allowed": True}
        ]
    else:
        assert rule["ride_allowed"] is True
        assert "global_rules" not in data
        (outside,) = feats[-1]["properties"]["rules"]
        assert outside == {"ride_allowed": False, "ride_through_allowed": True}
    # the service area covers every station
    service = shapely.geometry.shape(area["geometry"])
    stations = _load(tmp_path, "station_information.json")["data"]["stations"]
    assert all(service.contains(shapely.Point(s["lon"], s["lat"])) for s in stations)


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_gbfs_discovery_and_system(tmp_path: Path, version: str) -> None:
    base = "https://data.zhuhai.example/gbfs/"
    export(fixture_fc(), f"gbfs-{version}", tmp_path, now=NOW, base_url=base)
    data = _load(tmp_path, "gbfs.json")["data"]
    feeds = data["feeds"] if version == "3.0" else data["zh-CN"]["feeds"]
    urls = {f["name"]: f["url"] for f in feeds}
    assert set(urls) == set(GBFS_FEEDS) - {"gbfs"}  # exactly what is written
    for feed in urls:
        assert urls[feed] == f"{base}{feed}.json" and (tmp_path / f"{feed}.json").is_file()
    info = _load(tmp_path, "system_information.json")["data"]
    assert info["system_id"] == "zhuhai-parking" and info["timezone"] == "Asia/Shanghai"
    if version == "3.0":
        assert info["name"] == [{"text": "珠海市共享单车停放区", "language": "zh-CN"}]
        assert info["languages"] == ["zh-CN"]
    else:
        assert info["name"] == "珠海市共享单车停放区" and info["language"] == "zh-CN"


def test_gbfs_active_only_false_exports_every_fenced_box(tmp_path: Path) -> None:
    export(fixture_fc(), "gbfs-3.0", tmp_path, now=NOW, active_only=False)
    stations = _load(tmp_path, "station_information.json")["data"]["stations"]
    assert {s["station_id"] for s in stations} == FENCED_ACTIVE | {"ZH-XZ-000012", "ZH-XZ-000013"}
    assert validate_gbfs(tmp_path, "3.0") == []


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_validate_gbfs_catches_errors(tmp_path: Path, version: str) -> None:
    export(fixture_fc(), f"gbfs-{version}", tmp_path, now=NOW)
    st = _load(tmp_path, "station_information.json")
    st["data"]["stations"][0]["lat"] = "22.25"  # schema: type
    ring = st["data"]["stations"][1]["station_area"]["coordinates"][0][0]
    ring.reverse()  # ours: winding
    (tmp_path / "station_information.json").write_bytes(orjson.dumps(st))
    gz = _load(tmp_path, "geofencing_zones.json")
    gz["last_updated"] = "2026-13-45 25:00" if version == "3.0" else 5  # format / minimum
    gz["data"]["geofencing_zones"]["features"][0]["geometry"]["coordinates"][0][0].pop()  # open
    (tmp_path / "geofencing_zones.json").write_bytes(orjson.dumps(gz))
    (tmp_path / "gbfs.json").unlink()
    errors = validate_gbfs(tmp_path, version)
    text = "\n".join(errors)
    assert "gbfs.json: missing" in text
    assert "station_information.json: data/stations/0/lat" in text
    assert "exterior ring is not counter-clockwise" in text
    assert "geofencing_zones.json: last_updated" in text
    assert "ring not closed" in text


def test_format_checker_checks_datetime_and_uri() -> None:
    fc = format_checker()
    assert fc.conforms("2026-06-01T12:00:00+08:00", "date-time")
    assert not fc.conforms("2026-06-01 12:00", "date-time")
    assert not fc.conforms("2026-02-30T12:00:00Z", "date-time")
    assert fc.conforms("https://example.invalid/gbfs/gbfs.json", "uri")
    assert not fc.conforms("not a uri", "uri")


def test_check_rings() -> None:
    ok = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    assert check_rings(ok, "x") == []
    cw = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 0]]]}
    assert "counter-clockwise" in check_rings(cw, "x")[0]
    swapped = {"type": "Polygon", "coordinates": [[[0, 100], [1, 100], [1, 101], [0, 100]]]}
    assert "outside" in check_rings(swapped, "x")[0]


# --------------------------------------------------------------------------- MDS


def test_mds_geographies(tmp_path: Path) -> None:
    fc = fixture_fc()
    (path,) = export(fc, "mds", tmp_path, now=NOW)
    assert path.name == "geographies.json"
    doc = _load(tmp_path, "geographies.json")
    assert validate_mds(doc) == []
    assert doc["version"] == "2.0.0" and doc["last_updated"] == int(NOW.timestamp() * 1000)
    geos = doc["geographies"]
    assert len(geos) == len(fc["features"])
    ids = [g["geography_id"] for g in geos]
    assert len(set(ids)) == len(ids)
    published = int(NOW.timestamp() * 1000)
    for g, f in zip(geos, fc["features"], strict=True):
        assert uuid.UUID(g["geography_id"]).version == 1  # MDS's default
        assert uuid.UUID(g["geography_id"]).time == published * 10_000 + 0x01B21DD213814000
        assert g["name"] == f["properties"]["name"]
        kind = f["properties"]["kind"]
        assert g["geography_type"] == ("stop" if kind == "parking" else "policy_zone")
        assert g["published_date"] == published
        assert g["prev_geographies"] == []
        gj = g["geography_json"]
        assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 1
        feat = gj["features"][0]
        assert feat["id"] == f["id"] and feat["properties"] == f["properties"]
        geom = feat["geometry"]
        multi = (
            geom
            if geom["type"] == "MultiPolygon"
            else {"type": "MultiPolygon", "coordinates": [geom["coordinates"]]}
        )
        assert_zhuhai_rings(multi, f["id"])
        af, at = f["properties"]["active_from"], f["properties"]["active_to"]
        eff = (
            max(published, int(datetime.fromisoformat(af).timestamp() * 1000)) if af else published
        )
        assert g["effective_date"] == eff >= g["published_date"]
        if at is None:
            assert "retire_date" not in g
        else:  # after effective_date, even for the box that closed before publication
            end = int(datetime.fromisoformat(at).timestamp() * 1000)
            assert g["retire_date"] == max(end, eff + 1) > g["effective_date"]
    # a file alone is one publication: the same file at the same time gives the same ids
    again = export(fc, "mds", tmp_path / "again", now=NOW)[0]
    assert orjson.loads(again.read_bytes()) == doc


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export(fixture_fc(), "kml", tmp_path)
    bad = fixture_fc()
    bad["features"][0]["properties"]["active_from"] = "yesterday"
    from geofence.errors import ZoneDataError

    with pytest.raises(ZoneDataError, match="ZH-XZ-000000"):
        export(bad, "gbfs-3.0", tmp_path, now=NOW)


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_export(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "zones.geojson"
    src.write_bytes(orjson.dumps(fixture_fc()))
    out = tmp_path / "out"
    res = runner.invoke(app, ["zones", "export", str(src), "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    listed = [Path(line) for line in res.stdout.split()]
    assert listed and all(p.is_file() and p.parent == out for p in listed)
    if fmt.startswith("gbfs-"):
        assert "valid against the official GBFS" in res.stderr
        assert validate_gbfs(out, fmt) == []
        assert "placeholder" in res.stderr  # no real contact email given: a warning
    if fmt == "mds":
        assert "valid against the official MDS 2.0" in res.stderr
        assert validate_mds(orjson.loads(listed[0].read_bytes())) == []


def test_cli_export_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "zones.geojson"
    src.write_bytes(orjson.dumps(fixture_fc()))
    res = runner.invoke(app, ["zones", "export", str(src), "--format", "kml"])
    assert res.exit_code == 2 and "unknown --format" in res.stderr
    res = runner.invoke(app, ["zones", "export", str(tmp_path / "nope.geojson"), "-f", "mds"])
    assert res.exit_code == 2 and "no such file" in res.stderr
    dup = fixture_fc()
    dup["features"].append(copy.deepcopy(dup["features"][0]))
    (tmp_path / "dup.geojson").write_bytes(orjson.dumps(dup))
    res = runner.invoke(
        app,
        ["zones", "export", str(tmp_path / "dup.geojson"), "-f", "mds", "-o", str(tmp_path / "o")],
    )
    assert res.exit_code == 1 and "duplicate" in res.stderr
    # the command fails when its own output does not validate
    monkeypatch.setattr("zones.export.validate_gbfs", lambda out, version: ["boom: bad"])
    res = runner.invoke(
        app, ["zones", "export", str(src), "-f", "gbfs-2.3", "-o", str(tmp_path / "g")]
    )
    assert res.exit_code == 1
    assert "not valid against the official GBFS 2.3" in res.stderr and "boom: bad" in res.stderr


# --------------------------------------------------------------------------- bundled set


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_bundled_zone_set_gbfs(tmp_path: Path, version: str) -> None:
    fc = orjson.loads(BUNDLED_PATH.read_bytes())
    export(fc, f"gbfs-{version}", tmp_path, now=NOW)
    assert validate_gbfs(tmp_path, version) == []
    stations = _load(tmp_path, "station_information.json")["data"]["stations"]

    def active(p: dict[str, Any]) -> bool:
        af, at = p["active_from"], p["active_to"]
        return (af is None or datetime.fromisoformat(af) <= NOW) and (
            at is None or NOW < datetime.fromisoformat(at)
        )

    fenced = {
        f["id"]
        for f in fc["features"]
        if f["properties"]["kind"] == "parking"
        and f["properties"]["fenced"]
        and active(f["properties"])
    }
    assert {s["station_id"] for s in stations} == fenced
    assert len(fenced) > 12_000
    for s in stations:
        assert_zhuhai_rings(s["station_area"], s["station_id"])
    feats = _load(tmp_path, "geofencing_zones.json")["data"]["geofencing_zones"]["features"]
    for f in feats if version == "3.0" else feats[:-1]:
        assert_zhuhai_rings(f["geometry"], "geofencing zone", ccw=version == "3.0")


def test_bundled_zone_set_cli_default(tmp_path: Path) -> None:
    """No FILE: the bundled set; MDS and GeoJSON exports of all 18,000+ zones."""
    for fmt, name in (("mds", "geographies.json"), ("geojson", "zones.geojson")):
        res = runner.invoke(app, ["zones", "export", "--format", fmt, "--out", str(tmp_path)])
        assert res.exit_code == 0, res.stderr
        assert (tmp_path / name).is_file()
    n = len(orjson.loads(BUNDLED_PATH.read_bytes())["features"])
    assert len(_load(tmp_path, "geographies.json")["geographies"]) == n  # validated by the CLI
    assert _load(tmp_path, "zones.geojson") == orjson.loads(BUNDLED_PATH.read_bytes())
