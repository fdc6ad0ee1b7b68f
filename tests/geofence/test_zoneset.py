"""ZoneSet: parsing, attributes, and clear errors for bad input."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import shapely

import geofence
from geofence import ZoneDataError

BOX = [[113.55, 22.25], [113.55008, 22.25], [113.55008, 22.25002], [113.55, 22.25002]]


def feature(fid="ZH-XZ-000001", ring=None, **props):
    ring = list(ring or BOX)
    base = {
        "kind": "parking",
        "fenced": True,
        "district": "香洲区",
        "name": "test box",
        "capacity": 6,
        "operators": [],
        "heading_deg": None,
        "beacons": [],
        "active_from": None,
        "active_to": None,
    }
    base.update(props)
    return {
        "type": "Feature",
        "id": fid,
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        "properties": base,
    }


def fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def test_attributes_in_parallel_arrays():
    shifted = [[x + 0.001, y] for x, y in BOX]
    zs = geofence.ZoneSet.from_geojson(
        fc(
            feature(),
            feature(
                "ZH-XZ-000002",
                shifted,
                fenced=False,
                operators=["meituan"],
                heading_deg=90,
                beacons=["BCN-1"],
                active_from="2026-01-01T00:00:00+08:00",
            ),
        )
    )
    assert len(zs) == 2
    assert zs.ids.tolist() == ["ZH-XZ-000001", "ZH-XZ-000002"]
    assert zs.fenced.tolist() == [True, False]
    assert zs.capacity.tolist() == [6, 6]
    assert math.isnan(zs.heading_deg[0]) and zs.heading_deg[1] == 90
    assert zs.operators[1] == frozenset({"meituan"})
    assert zs.open_to("hellobike").tolist() == [True, False]
    assert zs.open_to("meituan").tolist() == [True, True]
    assert zs.beacons == ((), ("BCN-1",))
    t = 1767196800.0  # 2026-01-01T00:00:00+08:00 is 2025-12-31T16:00Z
    assert zs.active_from[1] == t
    assert zs.active_at(t).tolist() == [True, True]
    assert zs.active_at(t - 1).tolist() == [True, False]
    assert 15 < zs.area_m2[0] < 21
    assert zs.position["ZH-XZ-000002"] == 1
    with pytest.raises(ValueError):
        zs.fenced[0] = False  # immutable


def test_round_trip_feature_and_checksum(tmp_path):
    src = fc(feature(), feature("B", [[x, y + 0.001] for x, y in BOX], kind="no_parking"))
    path = tmp_path / "z.geojson"
    path.write_text(json.dumps(src), encoding="utf-8")
    a = geofence.ZoneSet.from_geojson(path)
    b = geofence.ZoneSet.from_geojson(src)
    assert a.checksum == b.checksum and len(a.checksum) == 64
    f = a.feature(1)
    assert f["id"] == "B" and f["properties"]["kind"] == "no_parking"
    assert f["properties"]["fenced"] is False  # fenced only means something for parking
    again = geofence.ZoneSet.from_geojson(fc(a.feature(0), a.feature(1)))
    assert again.checksum == a.checksum
    changed = copy.deepcopy(src)
    changed["features"][0]["properties"]["capacity"] = 7
    assert geofence.ZoneSet.from_geojson(changed).checksum != a.checksum


def bad_cases():
    f = feature
    ring_open = feature()
    ring_open["geometry"]["coordinates"][0].pop()
    no_geom = feature()
    no_geom["geometry"] = None
    point = feature()
    point["geometry"] = {"type": "Point", "coordinates": [113.5, 22.2]}
    nan = feature()
    nan["geometry"]["coordinates"][0][1] = [float("nan"), 22.25]
    swapped = feature(ring=[[y, x] for x, y in BOX])
    bowtie = feature(ring=[BOX[0], BOX[2], BOX[1], BOX[3]])
    flat = feature(ring=[BOX[0], BOX[1], [113.55016, 22.25]])
    no_id = feature()
    del no_id["id"]
    return [
        (fc(f(), f()), "duplicate-id", "ZH-XZ-000001"),
        (fc(no_id), "missing-id", None),
        (fc(f(kind="bike_lane")), "unknown-kind", "ZH-XZ-000001"),
        (fc(f(kind=None)), "unknown-kind", "ZH-XZ-000001"),
        (fc(f(kind=["parking"])), "unknown-kind", "ZH-XZ-000001"),
        (fc(f(capacity=2**40)), "bad-property-type", "ZH-XZ-000001"),
        (fc(ring_open), "unclosed-ring", "ZH-XZ-000001"),
        (fc(no_geom), "missing-geometry", "ZH-XZ-000001"),
        (fc(point), "bad-geometry-type", "ZH-XZ-000001"),
        (fc(nan), "non-finite-coordinate", "ZH-XZ-000001"),
        (fc(swapped), "lonlat-out-of-range", "ZH-XZ-000001"),
        (fc(bowtie), "self-intersection", "ZH-XZ-000001"),
        (fc(flat), "zero-area", "ZH-XZ-000001"),
        (fc(f(capacity="six")), "bad-property-type", "ZH-XZ-000001"),
        (fc(f(capacity=-1)), "bad-property-type", "ZH-XZ-000001"),
        (fc(f(fenced="yes")), "bad-property-type", "ZH-XZ-000001"),
        (fc(f(heading_deg=400)), "bad-property-type", "ZH-XZ-000001"),
        (fc(f(operators="meituan")), "bad-property-type", "ZH-XZ-000001"),
        (fc(f(active_from="yesterday")), "bad-property-type", "ZH-XZ-000001"),
        (fc(f(active_from="2026-01-01T00:00:00")), "bad-property-type", "ZH-XZ-000001"),
        (
            fc(f(active_from="2026-02-01T00:00:00Z", active_to="2026-01-01T00:00:00Z")),
            "bad-active-period",
            "ZH-XZ-000001",
        ),
        ({"type": "Feature"}, "not-feature-collection", None),
        ([], "not-feature-collection", None),
    ]


@pytest.mark.parametrize(("src", "rule", "fid"), bad_cases())
def test_bad_input_names_feature_and_rule(src, rule, fid):
    with pytest.raises(ZoneDataError) as err:
        geofence.ZoneSet.from_geojson(src)
    assert err.value.rule == rule
    assert err.value.feature_id == fid
    if fid:
        assert fid in str(err.value)


def test_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(ZoneDataError, match="cannot read"):
        geofence.ZoneSet.from_geojson(tmp_path / "missing.geojson")
    p = tmp_path / "bad.geojson"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(ZoneDataError, match="not JSON"):
        geofence.ZoneSet.from_geojson(p)


def test_from_arrays_refuses_duplicate_ids():
    import shapely

    g = np.array([shapely.box(113.5, 22.2, 113.5001, 22.2001)] * 2, dtype=object)
    with pytest.raises(ZoneDataError, match="unique"):
        geofence.ZoneSet.from_arrays(g, ["a", "a"])


def _same_zone_sets(a, b):
    for f in ("ids", "kind", "fenced", "district", "name", "capacity", "heading_deg"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f
    for f in ("active_from", "active_to"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.operators == b.operators and a.beacons == b.beacons
    assert dict(a.metadata) == dict(b.metadata)
    assert (shapely.to_wkb(a.geometry) == shapely.to_wkb(b.geometry)).all()
    assert (shapely.to_wkb(a.geometry_m) == shapely.to_wkb(b.geometry_m)).all()
    assert a.checksum == b.checksum


def test_snapshot_rebuilds_the_same_zone_set():
    holed = [[113.551, 22.25], [113.552, 22.25], [113.552, 22.251], [113.551, 22.251]]
    zs = geofence.ZoneSet.from_geojson(
        {
            **fc(
                feature(),
                feature(
                    "ZH-XZ-000002",
                    [[x + 0.001, y] for x, y in BOX],
                    kind="no_parking",
                    name='广场 "quoted"',
                    operators=["meituan", "hellobike"],
                    heading_deg=90,
                    beacons=["BCN-1", "BCN-2"],
                    active_from="2026-01-01T00:00:00+08:00",
                    active_to="2027-01-01T00:00:00+08:00",
                ),
                feature("ZH-XZ-000003", holed, capacity=0),
            ),
            "zone_set": {"source": "tests", "note": {"nested": [1, 2]}},
        }
    )
    back = geofence.ZoneSet.from_snapshot(zs.to_snapshot(), version=7)
    assert back.version == 7
    _same_zone_sets(zs, back)
    empty = geofence.ZoneSet.from_geojson(fc())
    _same_zone_sets(empty, geofence.ZoneSet.from_snapshot(empty.to_snapshot()))


def test_snapshot_of_another_format_is_refused():
    import io

    buf = io.BytesIO()
    np.savez(buf, format=np.array("zoneset-npz-0"))
    with pytest.raises(ValueError, match="zoneset-npz-0"):
        geofence.ZoneSet.from_snapshot(buf.getvalue())
