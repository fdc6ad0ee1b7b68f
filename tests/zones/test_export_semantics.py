"""What the GBFS and MDS texts say, as tests: each GBFS version's geometry and rule
semantics read back by an independent reader of that version's text, the MDS
geography history, and feed metadata errors.

The readers here implement the texts directly (not the exporter's code):

- GBFS 2.3: "A clockwise arrangement of points defines the area enclosed by the polygon,
  while a counterclockwise order defines the area outside the polygon"; "In the case of
  overlapping polygons, the combined set of rules associated with the overlapping
  polygons applies to the union of the polygons. In the event of colliding rules in this
  set, the earlier rule (in order of the JSON file) takes precedence"; no zone: no
  restriction.
- GBFS 3.0: rules apply to a polygon's interior; "the rules from the earlier polygon
  ... take precedence"; elsewhere ``global_rules``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
from shapely.geometry import shape
from typer.testing import CliRunner

from api.cli import app
from zones.export import FeedMeta, FeedMetaError, export
from zones.export._common import read_zones
from zones.export.mds import Publication, build_geographies, rule_errors

from .test_export import NOW, fixture_fc

WORLD = shapely.box(-180, -90, 180, 90)


def _ring_ccw(ring: list[list[float]]) -> bool:
    return shapely.is_ccw(shapely.LinearRing(ring))


def _region_23(geom: dict[str, Any]) -> shapely.Geometry:
    """The area a 2.3 reader takes a zone to cover: each polygon's exterior winding says
    enclosed (clockwise) or outside (counter-clockwise)."""
    parts = []
    for poly in geom["coordinates"]:
        p = shapely.Polygon(poly[0], poly[1:])
        parts.append(p if not _ring_ccw(poly[0]) else WORLD.difference(p))
    return shapely.union_all(parts)


def _rules_23(features: list[dict[str, Any]], pt: shapely.Point) -> dict[str, Any]:
    regions = [_region_23(f["geometry"]) for f in features]
    hit = {i for i, r in enumerate(regions) if r.contains(pt)}
    # the union rule: every zone overlapping a zone that holds the point joins the set
    grew = True
    while grew:
        grew = False
        for j, r in enumerate(regions):
            if j not in hit and any(regions[i].intersection(r).area > 1e-14 for i in hit):
                hit.add(j)
                grew = True
    out: dict[str, Any] = {}
    for i in sorted(hit):
        for rule in features[i]["properties"].get("rules", []):
            for k, v in rule.items():
                out.setdefault(k, v)  # the earlier rule wins
    return out


def _rules_30(data: dict[str, Any], pt: shapely.Point, now: datetime) -> dict[str, Any]:
    for f in data["geofencing_zones"]["features"]:
        p = f["properties"]
        if "start" in p and datetime.fromisoformat(p["start"]) > now:
            continue
        if "end" in p and datetime.fromisoformat(p["end"]) <= now:
            continue
        if shape(f["geometry"]).contains(pt):
            return p["rules"][0]
    return data["global_rules"][0]


def _truth(fc: dict[str, Any], area: shapely.Geometry, pt: shapely.Point) -> tuple[bool, bool]:
    """(may a ride end here, only at a station) by the city's own rules at NOW."""
    if not area.contains(pt):
        return False, False
    _, zones, geoms = read_zones(fc)
    for z, g in zip(zones, geoms, strict=True):
        if (
            z.props["kind"] == "parking"
            and z.props["fenced"]
            and z.active_at(NOW)
            and g.contains(pt)
        ):
            return True, True
    for z, g in zip(zones, geoms, strict=True):
        expired = z.active_to is not None and NOW >= z.active_to
        if z.props["kind"] == "no_parking" and z.active_at(NOW) and not expired and g.contains(pt):
            return False, False
    return True, True


def _samples(fc: dict[str, Any], area: shapely.Geometry, n: int = 120) -> list[shapely.Point]:
    """Points in every zone, in the no-parking area's hole, around and outside."""
    rng = np.random.default_rng(7)
    pts = [shapely.point_on_surface(shape(f["geometry"])) for f in fc["features"]]
    hole = fc["features"][-2]["geometry"]["coordinates"][1]
    pts.append(shapely.Polygon(hole).centroid)
    x0, y0, x1, y1 = area.bounds
    w, h = x1 - x0, y1 - y0
    for x, y in rng.uniform(0, 1, (n, 2)):
        pts.append(shapely.Point(x0 - 0.2 * w + 1.4 * w * x, y0 - 0.2 * h + 1.4 * h * y))
    return pts


@pytest.fixture(scope="module")
def area() -> shapely.Geometry:
    """A small service area around the fixture (the city's outline is tested elsewhere)."""
    return shapely.box(
        *shapely.buffer(shape(fixture_fc()["features"][0]["geometry"]), 0.003).bounds
    )


def test_gbfs_23_reader_gets_the_citys_rules(tmp_path: Path, area: shapely.Geometry) -> None:
    fc = fixture_fc()
    export(fc, "gbfs-2.3", tmp_path, now=NOW, service_area=area)
    feats = orjson.loads((tmp_path / "geofencing_zones.json").read_bytes())["data"][
        "geofencing_zones"
    ]["features"]
    # winding: every zone written as the area it encloses (clockwise exteriors)
    for f in feats:
        for poly in f["geometry"]["coordinates"]:
            assert not _ring_ccw(poly[0]) and all(_ring_ccw(h) for h in poly[1:])
    # zones with different rules never overlap (else 2.3's union rule spreads them)
    regions = [_region_23(f["geometry"]) for f in feats]
    for i in range(len(feats)):
        for j in range(i + 1, len(feats)):
            if feats[i]["properties"]["rules"] != feats[j]["properties"]["rules"]:
                assert regions[i].intersection(regions[j]).area < 1e-14, (i, j)
    for pt in _samples(fc, area):
        end_ok, stations_only = _truth(fc, area, pt)
        rules = _rules_23(feats, pt)
        assert rules.get("ride_allowed", True) is end_ok, pt
        assert rules.get("station_parking", False) is stations_only, pt


def test_gbfs_30_reader_gets_the_citys_rules(tmp_path: Path, area: shapely.Geometry) -> None:
    fc = fixture_fc()
    export(fc, "gbfs-3.0", tmp_path, now=NOW, service_area=area)
    data = orjson.loads((tmp_path / "geofencing_zones.json").read_bytes())["data"]
    for f in data["geofencing_zones"]["features"]:  # RFC 7946 winding
        for poly in f["geometry"]["coordinates"]:
            assert _ring_ccw(poly[0]) and not any(_ring_ccw(h) for h in poly[1:])
    for pt in _samples(fc, area):
        end_ok, stations_only = _truth(fc, area, pt)
        rules = _rules_30(data, pt, NOW)
        assert rules["ride_end_allowed"] is end_ok, pt
        assert rules.get("station_parking", False) is stations_only, pt
        assert rules["ride_through_allowed"] is True


def test_the_old_23_reading_is_what_the_issue_describes(area: shapely.Geometry) -> None:
    """The reader is not vacuous: counter-clockwise (RFC 7946) zones, as the export used
    to write them, read as 'no parking everywhere except the no-parking areas'."""
    fc = fixture_fc()
    np_area = shape(fc["features"][-2]["geometry"])
    ccw = shapely.geometry.mapping(shapely.orient_polygons(shapely.MultiPolygon([np_area])))
    feats = [{"geometry": ccw, "properties": {"rules": [{"ride_allowed": False}]}}]
    assert _rules_23(feats, shapely.point_on_surface(np_area)).get("ride_allowed", True) is True
    assert _rules_23(feats, shapely.Point(113.6, 22.3)).get("ride_allowed") is False


# --------------------------------------------------------------------------- MDS


def _pub(fc: dict[str, Any], at: datetime) -> Publication:
    _, zones, geoms = read_zones(fc)
    return Publication(at, zones, geoms)


def test_mds_history_three_publications() -> None:
    v1 = fixture_fc()
    v2 = copy.deepcopy(v1)
    v2["features"][0]["geometry"]["coordinates"][0][0][0] += 1e-5  # a corner moves ~1 m
    v2["features"][0]["geometry"]["coordinates"][0][-1][0] += 1e-5
    v2["features"][1]["properties"]["name"] = "renamed"
    t = [NOW + timedelta(days=k) for k in range(3)]
    geos = build_geographies([_pub(v1, t[0]), _pub(v2, t[1]), _pub(v1, t[2])], "zhuhai-parking")
    assert rule_errors(geos) == []
    assert len(geos) == len(v1["features"]) + 4  # two zones changed twice
    again = build_geographies([_pub(v1, t[0]), _pub(v2, t[1]), _pub(v1, t[2])], "zhuhai-parking")
    assert orjson.dumps(again) == orjson.dumps(geos)  # a pure function of the history
    other = build_geographies([_pub(v1, t[0])], "another-system")
    assert not {g["geography_id"] for g in other} & {g["geography_id"] for g in geos}
    # rule_errors is not vacuous
    bad = orjson.loads(orjson.dumps(geos))
    bad[0]["effective_date"] = bad[0]["published_date"] - 1
    bad[-1]["prev_geographies"] = ["00000000-0000-1000-8000-000000000000"]
    errs = "\n".join(rule_errors(bad))
    assert "before published_date" in errs and "not served" in errs


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"feed_contact_email": "nobody"}, "feed_contact_email"),
        ({"timezone": "Asia/Zhuhai"}, "timezone"),
        ({"url": "zhuhai.gov.cn"}, "url"),
        ({"system_id": ""}, "system_id"),
        ({"name": " "}, "name"),
        ({"license_id": "CC0-1.0", "license_url": "https://x.cn/l"}, "license_url"),
    ],
)
def test_bad_feed_metadata(tmp_path: Path, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(FeedMetaError) as exc:
        export(fixture_fc(), "gbfs-3.0", tmp_path, meta=FeedMeta(**kwargs), now=NOW)
    assert exc.value.field == field and field in str(exc.value)


def test_metadata_warnings_and_cli(tmp_path: Path) -> None:
    assert any("placeholder" in w for w in FeedMeta().warnings())
    real = FeedMeta(feed_contact_email="gbfs@zhuhai.gov.cn", license_id="CC-BY-4.0")
    assert real.warnings() == []
    src = tmp_path / "z.geojson"
    src.write_bytes(orjson.dumps(fixture_fc()))
    run = CliRunner().invoke
    res = run(
        app,
        [
            "zones",
            "export",
            str(src),
            "-f",
            "gbfs-3.0",
            "-o",
            str(tmp_path / "o"),
            "--feed-contact-email",
            "x@y, z@w",
        ],
    )
    assert res.exit_code == 2 and "--feed-contact-email" in res.stderr
    res = run(
        app,
        [
            "zones",
            "export",
            str(src),
            "-f",
            "gbfs-3.0",
            "-o",
            str(tmp_path / "o"),
            "--feed-contact-email",
            "gbfs@zhuhai.gov.cn",
            "--license-id",
            "CC-BY-4.0",
            "--operator",
            "珠海市交通运输局",
            "--url",
            "https://jtj.zhuhai.gov.cn/",
        ],
    )
    assert res.exit_code == 0 and "placeholder" not in res.stderr, res.stderr
    info = orjson.loads((tmp_path / "o" / "system_information.json").read_bytes())["data"]
    assert info["feed_contact_email"] == "gbfs@zhuhai.gov.cn" and info["license_id"] == "CC-BY-4.0"
    assert datetime.now(UTC).year >= 2026
