"""zones.diff: a copy with known edits diffs to exactly those edits; the CLI wraps it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from api.cli import app
from geofence.crs import project, unproject
from geofence.errors import ZoneDataError
from zones.diff import BUNDLED_PATH, DiffReport, diff

ORIGIN = (113.55, 22.25)  # 拱北, 香洲区


def origin_m() -> tuple[float, float]:
    x, y = project(*ORIGIN)
    return float(np.asarray(x).reshape(-1)[0]), float(np.asarray(y).reshape(-1)[0])


def _props(**kw: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "kind": "parking",
        "fenced": True,
        "district": "香洲区",
        "name": "停放区",
        "capacity": 8,
        "operators": [],
        "heading_deg": None,
        "beacons": [],
        "active_from": None,
        "active_to": None,
    }
    p.update(kw)
    return p


def _ring_m(x: float, y: float, w: float, ln: float, angle_deg: float = 0.0) -> np.ndarray:
    """A w x ln rectangle centred on (x, y) metres, rotated, counter-clockwise, closed."""
    a = np.radians(angle_deg)
    u = np.array([np.cos(a), np.sin(a)])
    v = np.array([-np.sin(a), np.cos(a)])
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    return np.array([[x, y] + (su * ln / 2) * u + (sv * w / 2) * v for su, sv in corners])


def _lonlat(ring_m: np.ndarray) -> list[list[float]]:
    lon, lat = unproject(ring_m[:, 0], ring_m[:, 1])
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def box_feature(
    zid: str, dx_m: float, dy_m: float, *, w: float = 2.0, ln: float = 8.0, **props: Any
) -> dict[str, Any]:
    x0, y0 = origin_m()
    ring = _ring_m(x0 + dx_m, y0 + dy_m, w, ln, angle_deg=30.0)
    return {
        "type": "Feature",
        "id": zid,
        "geometry": {"type": "Polygon", "coordinates": [_lonlat(ring)]},
        "properties": _props(**props),
    }


def fixture_fc() -> dict[str, Any]:
    feats = [box_feature(f"ZH-XZ-{i:06d}", 20.0 * i, 0.0, name=f"拱北停放区{i}") for i in range(6)]
    feats.append(box_feature("ZH-XZ-000100", 0.0, 40.0, fenced=False, capacity=4))
    x0, y0 = origin_m()
    outer = _ring_m(x0 + 60, y0 + 80, 30, 40)
    hole = _ring_m(x0 + 60, y0 + 80, 5, 5)[::-1]  # clockwise
    feats.append(
        {
            "type": "Feature",
            "id": "ZH-XZ-NP-0001",
            "geometry": {"type": "Polygon", "coordinates": [_lonlat(outer), _lonlat(hole)]},
            "properties": _props(kind="no_parking", fenced=False, capacity=0, name="拱北口岸广场"),
        }
    )
    return {"type": "FeatureCollection", "features": feats}


def _feature(fc: dict[str, Any], zid: str) -> dict[str, Any]:
    return next(f for f in fc["features"] if f["id"] == zid)


def _shift(feature: dict[str, Any], dx_m: float, dy_m: float) -> None:
    for ring in feature["geometry"]["coordinates"]:
        arr = np.array(ring)
        x, y = project(arr[:, 0], arr[:, 1])
        lon, lat = unproject(np.asarray(x) + dx_m, np.asarray(y) + dy_m)
        ring[:] = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def _scale(feature: dict[str, Any], k: float) -> None:
    """Scale the outline about its vertex mean (the centroid of a rectangle) by k."""
    ring = feature["geometry"]["coordinates"][0]
    arr = np.array(ring)
    x, y = (np.asarray(c) for c in project(arr[:, 0], arr[:, 1]))
    cx, cy = x[:-1].mean(), y[:-1].mean()
    lon, lat = unproject(cx + k * (x - cx), cy + k * (y - cy))
    ring[:] = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def edited(fc: dict[str, Any]) -> dict[str, Any]:
    """A copy with one of each edit: add, remove, move 3 m, reshape, re-attribute."""
    new = copy.deepcopy(fc)
    new["features"] = [f for f in new["features"] if f["id"] != "ZH-XZ-000005"]  # removed
    new["features"].append(box_feature("ZH-XZ-000200", 0.0, -30.0, name="新增停放区"))  # added
    _shift(_feature(new, "ZH-XZ-000001"), 3.0, 0.0)  # moved 3 m east
    _scale(_feature(new, "ZH-XZ-000002"), 1.2)  # reshaped, centroid kept
    p = _feature(new, "ZH-XZ-000003")["properties"]
    p["capacity"] = 12
    p["operators"] = ["meituan"]
    return new


# --------------------------------------------------------------------------- diff


def test_identical_sets_have_no_changes() -> None:
    fc = fixture_fc()
    r = diff(fc, copy.deepcopy(fc))
    assert not r.has_changes
    assert r.unchanged == len(fc["features"])


def test_diff_finds_exactly_the_edits() -> None:
    fc = fixture_fc()
    r = diff(fc, edited(fc))
    assert [z.id for z in r.added] == ["ZH-XZ-000200"]
    assert r.added[0].name == "新增停放区" and r.added[0].kind == "parking"
    assert r.added[0].area_m2 == pytest.approx(16.0, rel=1e-3)
    assert [z.id for z in r.removed] == ["ZH-XZ-000005"]
    assert [z.id for z in r.moved] == ["ZH-XZ-000001"]
    m = r.moved[0]
    assert m.shift_m == pytest.approx(3.0, abs=0.01)
    assert m.dx_m == pytest.approx(3.0, abs=0.01) and m.dy_m == pytest.approx(0.0, abs=0.01)
    assert m.area_change_m2 == pytest.approx(0.0, abs=0.01)
    assert [z.id for z in r.reshaped] == ["ZH-XZ-000002"]
    s = r.reshaped[0]
    assert s.area_old_m2 == pytest.approx(16.0, rel=1e-3)
    assert s.area_new_m2 == pytest.approx(16.0 * 1.44, rel=1e-3)
    assert s.area_change_m2 == pytest.approx(16.0 * 0.44, rel=1e-3)
    # the old box lies inside the grown one: the symmetric difference is the ring between
    assert s.symmetric_difference_m2 == pytest.approx(16.0 * 0.44, rel=1e-3)
    assert s.shift_m < 0.01
    assert [(z.id, z.changes) for z in r.reattributed] == [
        ("ZH-XZ-000003", {"capacity": (8, 12), "operators": ([], ["meituan"])})
    ]
    assert r.unchanged == len(fc["features"]) - 1 - 3
    assert r.counts == {
        "added": 1,
        "removed": 1,
        "moved": 1,
        "reshaped": 1,
        "reattributed": 1,
        "unchanged": len(fc["features"]) - 4,
    }


def test_winding_and_ring_start_are_not_changes() -> None:
    fc = fixture_fc()
    new = copy.deepcopy(fc)
    for f in new["features"]:
        ext = f["geometry"]["coordinates"][0]
        f["geometry"]["coordinates"][0] = ext[::-1]  # clockwise
        ring = f["geometry"]["coordinates"][0]
        ring[:] = [*ring[2:-1], *ring[:3]]  # another start vertex, still closed
    assert not diff(fc, new).has_changes


def test_threshold_separates_moved_from_reshaped() -> None:
    fc = fixture_fc()
    new = copy.deepcopy(fc)
    _shift(_feature(new, "ZH-XZ-000004"), 0.0, 0.2)  # below the 0.5 m default
    _shift(_feature(new, "ZH-XZ-000001"), 3.0, 0.0)
    r = diff(fc, new)
    assert [z.id for z in r.moved] == ["ZH-XZ-000001"]
    assert [z.id for z in r.reshaped] == ["ZH-XZ-000004"]
    assert r.reshaped[0].shift_m == pytest.approx(0.2, abs=0.005)
    r5 = diff(fc, new, moved_threshold_m=5.0)
    assert r5.moved == [] and {z.id for z in r5.reshaped} == {"ZH-XZ-000001", "ZH-XZ-000004"}


def test_a_zone_can_move_and_be_reattributed() -> None:
    fc = fixture_fc()
    new = copy.deepcopy(fc)
    f = _feature(new, "ZH-XZ-000000")
    _shift(f, -4.0, 3.0)
    f["properties"]["fenced"] = False
    del f["properties"]["beacons"]
    r = diff(fc, new)
    assert [z.id for z in r.moved] == ["ZH-XZ-000000"]
    assert r.moved[0].shift_m == pytest.approx(5.0, abs=0.01)
    assert r.reattributed[0].changes == {"beacons": ([], None), "fenced": (True, False)}
    assert r.unchanged == len(fc["features"]) - 1


def test_to_json() -> None:
    fc = fixture_fc()
    doc = orjson.loads(diff(fc, edited(fc)).to_json())
    assert doc["counts"]["moved"] == 1
    assert doc["moved"][0]["id"] == "ZH-XZ-000001"
    assert doc["reattributed"][0] == {
        "id": "ZH-XZ-000003",
        "changes": {
            "capacity": {"old": 8, "new": 12},
            "operators": {"old": [], "new": ["meituan"]},
        },
    }
    assert set(doc) == {
        "moved_threshold_m",
        "counts",
        "added",
        "removed",
        "moved",
        "reshaped",
        "reattributed",
    }


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda fc: fc["features"].append(copy.deepcopy(fc["features"][0])), "duplicate_id"),
        (lambda fc: fc["features"][0].pop("id"), "missing_id"),
        (lambda fc: fc.update(type="Feature"), "not_feature_collection"),
        (lambda fc: fc["features"][0].update(geometry=None), "geometry_type"),
    ],
)
def test_bad_zone_sets_raise(mutate: Any, rule: str) -> None:
    fc = fixture_fc()
    bad = copy.deepcopy(fc)
    mutate(bad)
    with pytest.raises(ZoneDataError) as exc:
        diff(fc, bad)
    assert exc.value.rule == rule


def test_empty_sets() -> None:
    empty = {"type": "FeatureCollection", "features": []}
    fc = fixture_fc()
    assert diff(empty, empty).counts["unchanged"] == 0
    r = diff(empty, fc)
    assert len(r.added) == len(fc["features"]) and r.unchanged == 0


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    p = tmp_path / name
    p.write_bytes(orjson.dumps(doc))
    return p


def test_cli_table(tmp_path: Path) -> None:
    fc = fixture_fc()
    old = _write(tmp_path, "old.geojson", fc)
    new = _write(tmp_path, "new.geojson", edited(fc))
    res = runner.invoke(app, ["zones", "diff", str(new), "--against", str(old)])
    assert res.exit_code == 0, res.output
    for word in ("added", "removed", "moved", "reshaped", "re-attributed", "ZH-XZ-000003"):
        assert word in res.stdout
    res = runner.invoke(app, ["zones", "diff", str(new), "--against", str(old), "--limit", "2"])
    assert res.exit_code == 0
    assert "and 3 more" in res.stdout


def test_cli_json(tmp_path: Path) -> None:
    fc = fixture_fc()
    old = _write(tmp_path, "old.geojson", fc)
    new = _write(tmp_path, "new.geojson", edited(fc))
    res = runner.invoke(app, ["zones", "diff", str(new), "--against", str(old), "--json"])
    assert res.exit_code == 0
    doc = orjson.loads(res.stdout)
    assert doc["counts"] == diff(fc, edited(fc)).counts


def test_cli_errors(tmp_path: Path) -> None:
    fc = fixture_fc()
    old = _write(tmp_path, "old.geojson", fc)
    missing = tmp_path / "missing.geojson"
    res = runner.invoke(app, ["zones", "diff", str(missing), "--against", str(old)])
    assert res.exit_code == 2
    assert "missing.geojson: no such file" in res.stderr
    notjson = tmp_path / "bad.geojson"
    notjson.write_text("{not json", encoding="utf-8")
    res = runner.invoke(app, ["zones", "diff", str(notjson), "--against", str(old)])
    assert res.exit_code == 2 and "not JSON" in res.stderr
    dup = copy.deepcopy(fc)
    dup["features"].append(copy.deepcopy(dup["features"][0]))
    bad = _write(tmp_path, "dup.geojson", dup)
    res = runner.invoke(app, ["zones", "diff", str(bad), "--against", str(old)])
    assert res.exit_code == 1
    assert "dup.geojson" in res.stderr and "duplicate" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- bundled set


def test_bundled_zone_set_diff(tmp_path: Path) -> None:
    """The bundled 18,000-zone set against an edited copy, through the CLI default."""
    fc = orjson.loads(BUNDLED_PATH.read_bytes())
    feats = fc["features"]
    new = copy.deepcopy(fc)
    nf = new["features"]
    boxes = [i for i, f in enumerate(feats) if f["properties"]["kind"] == "parking"]
    i_rm, i_mv, i_rs, i_ra = boxes[10], boxes[20], boxes[30], boxes[40]
    _shift(nf[i_mv], 3.0, 0.0)
    _scale(nf[i_rs], 1.1)
    nf[i_ra]["properties"]["capacity"] = nf[i_ra]["properties"]["capacity"] + 1
    added = copy.deepcopy(nf[boxes[50]])
    added["id"] = "ZH-XZ-999999"
    _shift(added, 0.0, 500.0)
    removed_id = nf[i_rm]["id"]
    del nf[i_rm]
    nf.append(added)

    r = diff(fc, new)
    assert [z.id for z in r.added] == ["ZH-XZ-999999"]
    assert [z.id for z in r.removed] == [removed_id]
    assert [z.id for z in r.moved] == [feats[i_mv]["id"]]
    assert r.moved[0].shift_m == pytest.approx(3.0, abs=0.02)
    # a non-rectangular box scaled about its vertex mean may shift its centroid a little
    assert {z.id for z in r.reshaped} == {feats[i_rs]["id"]}
    assert [z.id for z in r.reattributed] == [feats[i_ra]["id"]]
    assert r.unchanged == len(feats) - 4

    path = _write(tmp_path, "edited.geojson", new)
    res = runner.invoke(app, ["zones", "diff", str(path), "--json"])  # --against: bundled
    assert res.exit_code == 0, res.stderr
    assert orjson.loads(res.stdout)["counts"] == r.counts


def test_report_type() -> None:
    assert isinstance(diff(fixture_fc(), fixture_fc()), DiffReport)
