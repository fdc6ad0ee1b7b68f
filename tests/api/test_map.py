"""The city map's page, static files and data routes (real app, real SQLite)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
import shapely

from api.service import audit_row, new_id
from api.storage import Store, china_day
from geofence import crs as gcrs

VENDOR = "/map/static/vendor/leaflet"


# ---------------------------------------------------------------------------- public
def test_the_page_and_its_files_are_served_without_a_key(client) -> None:
    page = client.get("/map")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    # every script and stylesheet is served by the service itself: no CDN, no tiles
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and not [r for r in refs if r.startswith(("http:", "https:", "//"))]
    for ref in refs:
        if ref.startswith("data:"):
            continue
        r = client.get("/" + ref)
        assert r.status_code == 200, ref
    js = client.get(f"{VENDOR}/leaflet.js")
    assert "Leaflet 1.9.4" in js.text[:200]
    assert "BSD" in client.get(f"{VENDOR}/LICENSE").text
    assert client.get(f"{VENDOR}/images/layers.png").headers["content-type"] == "image/png"
    assert client.get("/map/static/../app.py").status_code == 404
    own = client.get("/map/static/map/map.js").text + client.get("/map/static/map/map.css").text
    assert "http://" not in own and "https://" not in own


def test_district_outlines_are_wgs84_like_the_zones(client, small_fc) -> None:
    r = client.get("/map/districts.geojson")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    by_code = {f["id"]: f for f in fc["features"]}
    assert set(by_code) == {"XZ", "DM", "JW"}
    assert by_code["XZ"]["properties"]["name"] == "香洲区"
    xz = shapely.geometry.shape(by_code["XZ"]["geometry"])
    # the Xiangzhou boxes of the zone set lie inside the served outline (same datum)
    inside = [
        xz.contains(shapely.geometry.shape(f["geometry"]).centroid)
        for f in small_fc["features"]
        if f["properties"]["district"] == "香洲区"
    ]
    assert np.mean(inside) > 0.98


def test_data_routes_need_a_key_and_the_admin_role(client, keys) -> None:
    for path in (
        "/v1/checks/recent",
        "/v1/stats/hotspots",
        "/v1/stats/series",
        "/v1/zones/ZH-XZ-000001/stats",
    ):
        assert client.get(path).status_code == 401, path
        r = client.get(path, headers=keys.h(keys.meituan))
        assert r.status_code == 403, path
        assert r.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/zones/density?bbox=113,22,114,23").status_code == 401
    r = client.get("/v1/zones/density?bbox=113,22,114,23", headers=keys.h(keys.meituan))
    assert r.status_code == 200  # zones are readable by any role, like /v1/zones


# ---------------------------------------------------------------------------- zones
def test_density_counts_every_zone_once(client, keys, small_fc) -> None:
    h = keys.h(keys.admin)
    d = client.get("/v1/zones/density?bbox=113.0,21.8,114.4,22.6&cell_deg=0.01", headers=h).json()
    assert d["total"] == len(small_fc["features"])
    assert sum(c[4] + c[5] + c[6] for c in d["cells"]) == len(small_fc["features"])
    kinds = [f["properties"] for f in small_fc["features"]]
    assert sum(c[4] for c in d["cells"]) == sum(
        1 for p in kinds if p["kind"] == "parking" and p["fenced"]
    )
    assert sum(c[6] for c in d["cells"]) == sum(1 for p in kinds if p["kind"] == "no_parking")
    for c in d["cells"]:  # the mean position lies in its cell
        assert c[0] - 1e-6 <= c[2] <= c[0] + d["cell_deg"] + 1e-6
        assert c[1] - 1e-6 <= c[3] <= c[1] + d["cell_deg"] + 1e-6
    # a tiny cell over a big box is coarsened to at most 20,000 cells
    big = client.get("/v1/zones/density?bbox=113.0,21.8,114.4,22.6&cell_deg=1e-5", headers=h)
    assert big.json()["cell_deg"] >= 1.4 / np.sqrt(20_000) - 1e-12
    assert client.get("/v1/zones/density?bbox=1,2,3", headers=h).status_code == 422
    assert client.get("/v1/zones/density", headers=h).status_code == 422


def test_zone_stats_over_the_last_days(client, keys, make_body, far_point, small_fc) -> None:
    h = keys.h(keys.admin)
    zid = small_fc["features"][0]["id"]
    for i, b in enumerate((make_body(0), make_body(0), make_body(1))):
        b["trip_id"] = f"Z-{i}"
        assert client.post("/v1/checks", json=b, headers=keys.h(keys.meituan)).status_code == 200
    s = client.get(f"/v1/zones/{zid}/stats?days=7", headers=h).json()
    assert s["zone_id"] == zid and s["checks"] == 2 and s["settle"] == 2
    assert s["in_box_rate"] == 1.0
    assert s["zone"]["fenced"] is True and s["zone"]["district"] == "香洲区"
    assert len(s["by_day"]) == 1 and s["by_day"][0]["checks"] == 2
    none = client.get(f"/v1/zones/{small_fc['features'][5]['id']}/stats", headers=h).json()
    assert none["checks"] == 0 and none["in_box_rate"] is None
    assert client.get("/v1/zones/ZH-NOPE/stats", headers=h).status_code == 404
    assert client.get(f"/v1/zones/{zid}/stats?days=0", headers=h).status_code == 422
    # /v1/zones/{id} itself is unchanged by the routes registered before it
    assert client.get(f"/v1/zones/{zid}", headers=h).json()["id"] == zid


# ---------------------------------------------------------------------------- decisions
def test_recent_checks_are_points_newest_first(client, keys, make_body, far_point) -> None:
    h = keys.h(keys.admin)
    assert client.get("/v1/checks/recent", headers=h).json()["checks"] == []
    a = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    b = client.post(
        "/v1/checks", json=make_body(lonlat=far_point, trip="T-2"), headers=keys.h(keys.hellobike)
    ).json()
    r = client.get("/v1/checks/recent", headers=h).json()
    assert [c["check_id"] for c in r["checks"]] == [b["check_id"], a["check_id"]]
    far = r["checks"][0]
    assert far["outcome"] == "reject" and far["operator"] == "hellobike"
    assert far["reasons"] == ["outside_all_boxes"] and far["district"] == "香洲区"
    assert (far["lon"], far["lat"]) == (b["position"]["lon"], b["position"]["lat"])
    assert r["checks"][1]["zone_id"] == a["zone"]["id"]
    # since: at or after that time
    r2 = client.get("/v1/checks/recent", params={"since": b["decided_at"]}, headers=h).json()
    assert [c["check_id"] for c in r2["checks"]] == [b["check_id"]]
    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    assert (
        client.get("/v1/checks/recent", params={"since": later}, headers=h).json()["checks"] == []
    )
    assert len(client.get("/v1/checks/recent?limit=1", headers=h).json()["checks"]) == 1
    assert client.get("/v1/checks/recent?since=yesterday", headers=h).status_code == 422
    # a real check id is still found by /v1/checks/{id}
    assert client.get(f"/v1/checks/{a['check_id']}", headers=h).status_code == 200


# ---------------------------------------------------------------------------- hot spots
def test_hotspots_route_finds_the_seeded_cluster(client, keys, make_body, far_point) -> None:
    rng = np.random.default_rng(11)
    x0, y0 = (float(v[0]) for v in gcrs.project(*far_point))
    lon, lat = gcrs.unproject(x0 + rng.normal(0, 2.5, 15), y0 + rng.normal(0, 2.5, 15))
    checks = [
        make_body(lonlat=(a, b), trip=f"H-{i}")
        for i, (a, b) in enumerate(zip(lon, lat, strict=True))
    ]
    r = client.post("/v1/checks/batch", json={"checks": checks}, headers=keys.h(keys.hellobike))
    assert r.status_code == 200
    settled = [make_body(i, trip=f"S-{i}") for i in range(12)]  # settled ends never count
    client.post("/v1/checks/batch", json={"checks": settled}, headers=keys.h(keys.hellobike))
    h = keys.h(keys.admin)
    fc = client.get("/v1/stats/hotspots", params={"min_count": 10}, headers=h)
    assert fc.status_code == 200 and fc.headers["content-type"] == "application/geo+json"
    fc = fc.json()
    assert fc["parameters"]["rejected_trip_ends"] == 15
    assert fc["parameters"]["days"] == pytest.approx(7.0)
    [f] = fc["features"]
    s = f["properties"]["suggestion"]
    assert f["id"] == "ZH-SUG-0001" and s["rejected_trip_ends"] == 15
    assert s["operators"] == {"hellobike": 15} and s["action"] == "paint"
    cx, cy = gcrs.project(*s["centroid"])
    assert np.hypot(cx[0] - x0, cy[0] - y0) < 2.5
    assert f["geometry"]["type"] == "Polygon"
    # a minimum above the cluster: nothing; a window before it: nothing
    assert client.get("/v1/stats/hotspots?min_count=16", headers=h).json()["features"] == []
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert client.get("/v1/stats/hotspots", params={"to": past}, headers=h).json()["features"] == []
    bad = client.get("/v1/stats/hotspots", params={"from": past, "to": past}, headers=h).status_code
    assert bad == 422
    assert client.get("/v1/stats/hotspots?radius_m=0", headers=h).status_code == 422


# ---------------------------------------------------------------------------- series
def _backdate(store: Store, record: dict[str, Any], days: int, outcome: str) -> None:
    """Copy a recorded check ``days`` days back with another outcome (a past day)."""
    decision = dict(record["decision"])
    when = datetime.fromisoformat(decision["decided_at"].replace("Z", "+00:00")) - timedelta(
        days=days
    )
    cid = new_id()
    decision |= {
        "check_id": cid,
        "outcome": outcome,
        "decided_at": when.isoformat().replace("+00:00", "Z"),
    }
    if outcome != "settle":
        decision["zone"] = None
    row = audit_row(
        check_id=cid,
        operator=record["operator"],
        body=record["request"] | {"trip_id": cid},
        body_json=orjson.dumps(record["request"] | {"trip_id": cid}).decode(),
        decision=decision,
        idempotency_key=None,
        district="香洲区",
    )
    with store.engine.begin() as conn:
        store.insert_checks(conn, [row])


def test_series_by_operator_and_district_over_days(client, keys, make_body, store) -> None:
    h = keys.h(keys.admin)
    a = client.post("/v1/checks", json=make_body(0), headers=keys.h(keys.meituan)).json()
    rec = store.get_check(a["check_id"])
    _backdate(store, rec, 2, "settle")
    _backdate(store, rec, 2, "reject")
    _backdate(store, rec, 2, "reject")
    _backdate(store, rec, 20, "settle")  # outside the 14 days
    s = client.get("/v1/stats/series?group_by=operator&days=14", headers=h).json()
    today = china_day(datetime.now(UTC))
    assert len(s["days"]) == 14 and s["days"][-1] == today
    [m] = s["series"]
    assert m["key"] == "meituan" and m["checks"] == 4
    assert m["in_box_rate"] == 0.5
    points = {p["day"]: p for p in m["points"]}
    two_ago = (datetime.fromisoformat(today) - timedelta(days=2)).date().isoformat()
    assert points[today]["in_box_rate"] == 1.0
    assert points[two_ago]["checks"] == 3
    assert points[two_ago]["in_box_rate"] == pytest.approx(1 / 3)
    assert points[s["days"][0]]["in_box_rate"] is None
    d = client.get("/v1/stats/series?group_by=district&days=3", headers=h).json()
    assert [x["key"] for x in d["series"]] == ["香洲区"] and len(d["days"]) == 3
    assert client.get("/v1/stats/series?group_by=zone", headers=h).status_code == 422
