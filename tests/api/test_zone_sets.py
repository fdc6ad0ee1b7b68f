"""``/v1/zone-sets``: validated uploads become inactive versions; activation swaps atomically."""

from __future__ import annotations

import copy
import json

GEOJSON = {"content-type": "application/geo+json"}


def _upload(client, keys, fc, **params):
    return client.post(
        "/v1/zone-sets",
        content=json.dumps(fc, ensure_ascii=False).encode(),
        params=params,
        headers=keys.h(keys.admin) | GEOJSON,
    )


def test_upload_stores_a_new_inactive_version_with_its_report(client, keys, small_fc_v2):
    r = _upload(client, keys, small_fc_v2, source="city survey 2026-11")
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["version"] == 2 and d["prev_version"] == 1 and d["active"] is False
    assert d["n_zones"] == len(small_fc_v2["features"])
    assert d["source"] == "city survey 2026-11"
    assert len(d["checksum"]) == 64
    assert d["report"]["ok"] is True
    assert r.headers["location"] == "/v1/zone-sets/2"
    assert client.get("/v1/zone-sets/active", headers=keys.h(keys.admin)).json()["version"] == 1


def test_source_defaults_to_the_files_metadata(client, keys, small_fc_v2):
    d = _upload(client, keys, small_fc_v2).json()
    assert d["source"] == small_fc_v2["zone_set"]["source"]


def test_invalid_upload_is_422_with_per_feature_errors_and_stores_nothing(
    client, keys, small_fc, store
):
    fc = copy.deepcopy(small_fc)
    fc["features"][3]["properties"]["kind"] = "parkland"
    ring = fc["features"][5]["geometry"]["coordinates"][0]
    ring[1], ring[2] = ring[2], ring[1]  # a bow tie
    r = _upload(client, keys, fc)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    p = r.json()
    assert p["type"] == "/problems/invalid-zone-set"
    by_feature = {e["feature"]: e["rule"] for e in p["errors"]}
    assert by_feature[fc["features"][3]["id"]] == "unknown-kind"
    assert by_feature[fc["features"][5]["id"]] == "self-intersection"
    assert p["report"]["ok"] is False
    assert [i.version for i in store.zone_sets()] == [1]


def test_upload_of_something_else(client, keys, store):
    r = client.post(
        "/v1/zone-sets", content=b'{"type": "Feature"}', headers=keys.h(keys.admin) | GEOJSON
    )
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "not-feature-collection"
    r = client.post("/v1/zone-sets", content=b"{oops", headers=keys.h(keys.admin) | GEOJSON)
    assert r.status_code == 400 and r.json()["type"] == "/problems/malformed-json"
    r = client.post(
        "/v1/zone-sets",
        content=b"<kml/>",
        headers=keys.h(keys.admin) | {"content-type": "text/xml"},
    )
    assert r.status_code == 415
    assert len(store.zone_sets()) == 1


def test_list_get_and_download(client, keys, small_fc_v2):
    _upload(client, keys, small_fc_v2)
    h = keys.h(keys.admin)
    listing = client.get("/v1/zone-sets", headers=h).json()
    assert listing["active"] == 1
    assert [z["version"] for z in listing["zone_sets"]] == [2, 1]
    one = client.get("/v1/zone-sets/2", headers=h).json()
    assert one["report"]["n_features"] == len(small_fc_v2["features"])
    assert client.get("/v1/zone-sets/9", headers=h).status_code == 404
    doc = client.get("/v1/zone-sets/2/geojson", headers=h)
    assert doc.headers["content-type"] == "application/geo+json"
    assert [f["id"] for f in doc.json()["features"]] == [f["id"] for f in small_fc_v2["features"]]


def test_activate_swaps_the_index_and_rollback_restores_it(
    client, keys, make_body, small_fc, small_fc_v2
):
    _upload(client, keys, small_fc_v2)
    h = keys.h(keys.admin)
    gone = small_fc["features"][0]["id"]  # not in v2
    op = keys.h(keys.meituan)
    before = client.post("/v1/checks", json=make_body(0), headers=op).json()
    assert before["zone_set_version"] == 1 and before["zone"]["id"] == gone

    r = client.post("/v1/zone-sets/2/activate", headers=h)
    assert r.status_code == 200, r.text
    act = r.json()
    assert act["active"] == 2 and act["previous"] == 1 and act["build_seconds"] > 0
    after = client.post("/v1/checks", json=make_body(0), headers=op).json()
    assert after["zone_set_version"] == 2
    assert after["zone"] is None or after["zone"]["id"] != gone
    assert client.get(f"/v1/zones/{gone}", headers=op).status_code == 404
    assert client.get("/v1/zone-sets/active", headers=h).json()["version"] == 2
    assert "geofence_active_zone_set_version 2.0" in client.get("/metrics").text

    back = client.post("/v1/zone-sets/1/activate", headers=h).json()
    assert back["active"] == 1 and back["previous"] == 2
    again = client.post("/v1/checks", json=make_body(0), headers=op).json()
    assert again["zone_set_version"] == 1 and again["zone"]["id"] == gone
    # re-activating the active version is a no-op that still answers
    assert client.post("/v1/zone-sets/1/activate", headers=h).json()["active"] == 1


def test_activate_unknown_version_is_404_and_changes_nothing(client, keys):
    r = client.post("/v1/zone-sets/7/activate", headers=keys.h(keys.admin))
    assert r.status_code == 404
    assert client.get("/readyz").json()["zone_set_version"] == 1


def test_the_active_version_survives_a_restart(client_for, settings, keys, small_fc_v2):
    c = client_for(settings)
    _upload(c, keys, small_fc_v2)
    c.post("/v1/zone-sets/2/activate", headers=keys.h(keys.admin))
    c.__exit__(None, None, None)
    c2 = client_for(settings)
    assert c2.get("/readyz").json()["zone_set_version"] == 2
