"""``/v1/zones``: the active set's zones as GeoJSON, by bbox, id and nearness."""

from __future__ import annotations

import math

import numpy as np
import shapely

from geofence import crs


def test_zones_in_a_bbox(client, keys, small_fc):
    g = shapely.geometry.shape(small_fc["features"][0]["geometry"])
    x0, y0, x1, y1 = g.bounds
    bbox = f"{x0 - 1e-4},{y0 - 1e-4},{x1 + 1e-4},{y1 + 1e-4}"
    r = client.get(f"/v1/zones?bbox={bbox}", headers=keys.h(keys.meituan))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["zone_set_version"] == 1
    ids = [f["id"] for f in fc["features"]]
    assert small_fc["features"][0]["id"] in ids
    assert fc["numberReturned"] == len(ids) == fc["numberMatched"]
    feat = fc["features"][0]
    assert feat["type"] == "Feature" and feat["geometry"]["type"] == "Polygon"
    assert {"kind", "fenced", "district", "name", "capacity"} <= set(feat["properties"])


def test_zones_limit_and_whole_city(client, keys, small_fc):
    r = client.get("/v1/zones?bbox=113.0,21.8,114.4,22.6&limit=7", headers=keys.h(keys.admin))
    fc = r.json()
    assert fc["numberReturned"] == 7 and fc["numberMatched"] == len(small_fc["features"])
    assert client.get("/v1/zones?limit=3", headers=keys.h(keys.admin)).json()["numberReturned"] == 3
    empty = client.get("/v1/zones?bbox=100,10,100.1,10.1", headers=keys.h(keys.admin)).json()
    assert empty["features"] == [] and empty["numberMatched"] == 0


def test_bad_bbox(client, keys):
    for bbox in ("1,2,3", "a,b,c,d", "114,22,113,23", "113,22,114,NaN", "0,-91,1,0"):
        r = client.get(f"/v1/zones?bbox={bbox}", headers=keys.h(keys.admin))
        assert r.status_code == 422, bbox
        assert r.json()["errors"][0]["pointer"] == "query:bbox"


def test_zone_by_id(client, keys, small_fc):
    zid = small_fc["features"][4]["id"]
    r = client.get(f"/v1/zones/{zid}", headers=keys.h(keys.hellobike))
    assert r.status_code == 200
    f = r.json()
    assert f["id"] == zid and f["properties"]["zone_set_version"] == 1
    assert f["geometry"] == small_fc["features"][4]["geometry"] or shapely.equals(
        shapely.geometry.shape(f["geometry"]),
        shapely.geometry.shape(small_fc["features"][4]["geometry"]),
    )
    assert client.get("/v1/zones/ZH-NOPE", headers=keys.h(keys.admin)).status_code == 404


def test_nearest_orders_by_distance_and_gives_bearing(client, keys, small_fc):
    g = shapely.geometry.shape(small_fc["features"][0]["geometry"])
    c = g.centroid
    lon, lat = c.x + 0.0003, c.y  # ~30 m east
    r = client.get(f"/v1/zones/nearest?lon={lon}&lat={lat}&k=3", headers=keys.h(keys.meituan))
    fc = r.json()
    dist = [f["properties"]["distance_m"] for f in fc["features"]]
    assert dist == sorted(dist) and 1 <= len(dist) <= 3
    first = fc["features"][0]
    assert first["id"] == small_fc["features"][0]["id"]
    assert 20 < first["properties"]["distance_m"] < 35
    assert 240 < first["properties"]["bearing_deg"] < 300  # the box lies west


def test_nearest_in_gcj02_matches_wgs84(client, keys, small_fc):
    g = shapely.geometry.shape(small_fc["features"][10]["geometry"])
    c = g.centroid
    glon, glat = crs.from_wgs84(np.array([c.x]), np.array([c.y]), "gcj02")
    h = keys.h(keys.meituan)
    a = client.get(f"/v1/zones/nearest?lon={c.x}&lat={c.y}&k=2", headers=h).json()
    b = client.get(f"/v1/zones/nearest?lon={glon[0]}&lat={glat[0]}&k=2&crs=gcj02", headers=h).json()
    assert [f["id"] for f in a["features"]] == [f["id"] for f in b["features"]]
    assert a["features"][0]["properties"]["distance_m"] == 0
    assert math.isclose(b["query"]["wgs84"][0], c.x, abs_tol=1e-7)


def test_nearest_fenced_only(client, keys, small_fc):
    unfenced = next(f for f in small_fc["features"] if not f["properties"]["fenced"])
    c = shapely.geometry.shape(unfenced["geometry"]).centroid
    r = client.get(
        f"/v1/zones/nearest?lon={c.x}&lat={c.y}&k=3&fenced=true&max_distance_m=50000",
        headers=keys.h(keys.meituan),
    ).json()
    assert r["features"] and all(f["properties"]["fenced"] for f in r["features"])
    assert unfenced["id"] not in [f["id"] for f in r["features"]]


def test_gzipped_pages_are_the_plain_pages_each_time(client, keys, small_fc):
    """A page's gzip is kept under its ETag and served again without rebuilding: the
    second answer must still be that page's, not another's."""
    h = keys.h(keys.admin)
    for query in ("limit=40", "limit=40&bbox=113.0,21.8,114.4,22.6", "limit=60"):
        plain = client.get(f"/v1/zones?{query}", headers=h | {"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        for _ in range(2):
            gz = client.get(f"/v1/zones?{query}", headers=h | {"Accept-Encoding": "gzip"})
            assert gz.headers["content-encoding"] == "gzip", query
            assert gz.headers["etag"] == plain.headers["etag"][:-1] + '-gz"'
            assert gz.json() == plain.json()
