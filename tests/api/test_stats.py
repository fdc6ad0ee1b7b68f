"""``/v1/stats``: checks and in-box rate by operator, district, zone and day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def _post(client, keys, make_body, far_point):
    for key, bodies in (
        (keys.meituan, [make_body(0), make_body(1), make_body(lonlat=far_point)]),
        (keys.hellobike, [make_body(0), make_body(lonlat=far_point)]),
    ):
        for b in bodies:
            assert client.post("/v1/checks", json=b, headers=keys.h(key)).status_code == 200


def test_stats_by_operator(client, keys, make_body, far_point):
    _post(client, keys, make_body, far_point)
    s = client.get("/v1/stats?group_by=operator", headers=keys.h(keys.admin)).json()
    groups = {g["key"]: g for g in s["groups"]}
    assert groups["meituan"]["checks"] == 3 and groups["meituan"]["settle"] == 2
    assert groups["meituan"]["reject"] == 1
    assert abs(groups["meituan"]["in_box_rate"] - 2 / 3) < 1e-12
    assert groups["hellobike"]["in_box_rate"] == 0.5
    assert s["total"]["checks"] == 5


def test_stats_by_district_zone_and_day(client, keys, make_body, far_point, small_fc):
    _post(client, keys, make_body, far_point)
    h = keys.h(keys.admin)
    district = client.get("/v1/stats?group_by=district", headers=h).json()
    # the rejected checks are labelled with the district of their position
    assert [g["key"] for g in district["groups"]] == ["香洲区"]
    assert district["groups"][0]["checks"] == 5
    zone = client.get("/v1/stats?group_by=zone", headers=h).json()
    by_zone = {g["key"]: g for g in zone["groups"]}
    assert by_zone[None]["reject"] == 2  # the out-of-box checks
    assert by_zone[small_fc["features"][0]["id"]] == {
        "key": small_fc["features"][0]["id"],
        "checks": 2,
        "settle": 2,
        "reject": 0,
        "review": 0,
        "in_box_rate": 1.0,
    }
    day = client.get("/v1/stats?group_by=day", headers=h).json()
    today = (datetime.now(UTC) + timedelta(hours=8)).date().isoformat()
    assert [g["key"] for g in day["groups"]] == [today]


def test_stats_time_range(client, keys, make_body, far_point):
    _post(client, keys, make_body, far_point)
    h = keys.h(keys.admin)
    now = datetime.now(UTC)
    past = (now - timedelta(days=2)).isoformat()
    soon = (now + timedelta(hours=1)).isoformat()
    assert (
        client.get("/v1/stats", params={"from": past, "to": soon}, headers=h).json()["total"][
            "checks"
        ]
        == 5
    )
    future = client.get("/v1/stats", params={"from": soon}, headers=h).json()
    assert future["groups"] == [] and future["total"]["in_box_rate"] is None
    r = client.get("/v1/stats", params={"from": soon, "to": past}, headers=h)
    assert r.status_code == 422
    r = client.get("/v1/stats", params={"from": "2026-11-26T00:00:00"}, headers=h)  # no offset
    assert r.status_code == 422
