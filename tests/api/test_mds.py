"""``/mds/geographies``: the MDS 2.0 Geography API over the store's activation history.

Checked against the official reference (``zones.export.mds.validate_mds``: the OpenAPI
response schemas with their ``$ref``s resolved in the bundled copy, plus the text's
rules) and, independently here, the text's rules themselves: immutability across three
activations, ``prev_geographies``, ``retire_date``, ``effective_date`` >= ``published_date``.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson

from zones.export.mds import MEDIA_TYPE, validate_mds

GEOJSON = {"Content-Type": "application/geo+json"}


def _geos(client: Any) -> dict[str, Any]:
    r = client.get("/mds/geographies", headers={"Accept": MEDIA_TYPE})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    doc = r.json()
    assert validate_mds(doc) == []
    return doc


def _ms(store: Any) -> list[int]:
    return [round(at.timestamp() * 1000) for _, _, at in store.activation_history()]


def _upload_activate(client: Any, keys: Any, fc: dict[str, Any]) -> int:
    h = keys.h(keys.admin)
    r = client.post("/v1/zone-sets", content=orjson.dumps(fc), headers=h | GEOJSON)
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    assert client.post(f"/v1/zone-sets/{version}/activate", headers=h).status_code == 200
    return version


def _shift(feature: dict[str, Any], dlon: float) -> None:
    def move(c: Any) -> Any:
        return [move(x) for x in c] if isinstance(c[0], list) else [c[0] + dlon, c[1]]

    feature["geometry"]["coordinates"] = move(feature["geometry"]["coordinates"])


def test_geographies_follow_the_official_reference(client, store, small_fc):
    doc = _geos(client)  # no key: public
    assert client.get("/mds/geographies.json").json() == doc  # the flat-file form
    assert doc["version"] == "2.0.0" and "data" not in doc
    (first,) = _ms(store)
    assert doc["last_updated"] == first
    geos = doc["geographies"]
    assert len(geos) == len(small_fc["features"])
    kinds = {f["id"]: f["properties"]["kind"] for f in small_fc["features"]}
    for g in geos:
        (feat,) = g["geography_json"]["features"]
        assert g["geography_type"] == (
            "policy_zone" if kinds[feat["id"]] == "no_parking" else "stop"
        )
        assert uuid.UUID(g["geography_id"]).version == 1
        assert g["published_date"] == first and g["effective_date"] >= g["published_date"]
        assert g["prev_geographies"] == [] and "retire_date" not in g
    # one geography, its own answer shape
    gid = geos[3]["geography_id"]
    r = client.get(f"/mds/geographies/{gid}")
    assert r.status_code == 200 and r.headers["content-type"] == MEDIA_TYPE
    one = r.json()
    assert one == {"version": "2.0.0", "geography": geos[3]}
    assert validate_mds(one, one=True) == []


def test_errors_404_400_406(client):
    r = client.get(f"/mds/geographies/{uuid.uuid1()}")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.get("/mds/geographies/not-a-uuid")
    assert r.status_code == 400 and r.json()["error"] == "bad_param"
    assert "geography_id" in r.json()["error_details"][0]
    for accept in ("application/vnd.mds+json;version=1.2", "application/vnd.mds+json"):
        r = client.get("/mds/geographies", headers={"Accept": accept})
        assert r.status_code == 406, accept
        assert set(r.json()) == {"error", "error_description", "error_details"}
    for accept in ("application/json", "*/*", "application/vnd.mds+json; version=2.0"):
        assert client.get("/mds/geographies", headers={"Accept": accept}).status_code == 200


def test_immutable_across_three_activations(client, store, keys, small_fc, client_for, settings):
    """Activation 1 (seed); 2: box A moved 5 m, box B re-ruled, box C dropped, box D opens
    later; 3: rollback to version 1. What was served is still served, unchanged but
    for ``retire_date``; unchanged zones keep their geography all along."""
    feats = small_fc["features"]
    a, b, c, d = (feats[i]["id"] for i in (0, 1, 2, 3))
    before = {g["geography_id"]: g for g in _geos(client)["geographies"]}
    zone_geo = {
        g["geography_json"]["features"][0]["id"]: g["geography_id"] for g in before.values()
    }

    fc2 = copy.deepcopy(small_fc)
    _shift(fc2["features"][0], 5.0 / 103_000)  # ~5 m east at 22° N
    fc2["features"][1]["properties"]["operators"] = ["meituan"]
    fc2["features"][3]["properties"]["active_from"] = "2030-01-01T00:00:00+08:00"
    del fc2["features"][2]
    _upload_activate(client, keys, fc2)
    assert client.post("/v1/zone-sets/1/activate", headers=keys.h(keys.admin)).status_code == 200
    t1, t2, t3 = _ms(store)

    doc = _geos(client)
    assert doc["last_updated"] == t3
    after = {g["geography_id"]: g for g in doc["geographies"]}
    for gid, g in before.items():  # immutable: all still served, only retire_date may appear
        assert {k: v for k, v in after[gid].items() if k != "retire_date"} == g
    by_zone: dict[str, list[dict[str, Any]]] = {}
    for g in doc["geographies"]:
        by_zone.setdefault(g["geography_json"]["features"][0]["id"], []).append(g)
    for zid, gs in by_zone.items():
        if zid not in (a, b, c, d):
            assert [x["geography_id"] for x in gs] == [zone_geo[zid]]
            assert "retire_date" not in gs[0]
    for zid in (a, b, d):  # changed at 2, changed back at 3: three geographies, a chain
        g1, g2, g3 = by_zone[zid]
        assert [g1["published_date"], g2["published_date"], g3["published_date"]] == [t1, t2, t3]
        assert g2["prev_geographies"] == [g1["geography_id"]]
        assert g3["prev_geographies"] == [g2["geography_id"]]
        assert g1["retire_date"] == t2 and "retire_date" not in g3
        assert len({g1["geography_id"], g2["geography_id"], g3["geography_id"]}) == 3
    assert (
        by_zone[a][1]["geography_json"]["features"][0]["geometry"]
        != by_zone[a][0]["geography_json"]["features"][0]["geometry"]
    )
    d2 = by_zone[d][1]  # published at 2, effective in 2030, replaced at 3 before that
    assert d2["effective_date"] > d2["published_date"] == t2
    assert d2["retire_date"] == d2["effective_date"] + 1
    c1, c3 = by_zone[c]  # dropped at 2 (retired), back at 3 (new, replaces nothing live)
    assert c1["retire_date"] == t2 and c3["published_date"] == t3 and c3["prev_geographies"] == []
    for g in doc["geographies"]:
        assert g["effective_date"] >= g["published_date"]
        if "retire_date" in g:
            assert g["retire_date"] > g["effective_date"]
    # retired geographies are served one by one too
    assert client.get(f"/mds/geographies/{by_zone[a][0]['geography_id']}").status_code == 200
    # another process derives the same ids and bytes (nothing persisted, nothing random)
    other = client_for(settings)
    assert other.get("/mds/geographies").content == client.get("/mds/geographies").content


def test_cli_export_from_a_running_service(tmp_path, seed_file):
    """``zones export --format mds --service URL``: the history of a real server process,
    written and checked against the same schema and rules."""
    from typer.testing import CliRunner

    from api.cli import app
    from api.testing.servetest import Server

    srv = Server(tmp_path, f"sqlite:///{tmp_path / 'var' / 'g.db'}", seed_file).start()
    try:
        out = tmp_path / "mds"
        res = CliRunner().invoke(
            app, ["zones", "export", "-f", "mds", "--service", srv.url, "-o", str(out)]
        )
        assert res.exit_code == 0, res.stderr
        assert "valid against the official MDS 2.0" in res.stderr
        served = httpx_get(srv.url + "/mds/geographies")
        assert (out / "geographies.json").read_bytes() == served
        bad = CliRunner().invoke(
            app, ["zones", "export", "-f", "gbfs-3.0", "--service", srv.url, "-o", str(out)]
        )
        assert bad.exit_code == 2 and "--format mds" in bad.stderr
    finally:
        srv.stop()
    down = CliRunner().invoke(
        app, ["zones", "export", "-f", "mds", "--service", srv.url, "-o", str(tmp_path / "x")]
    )
    assert down.exit_code == 2 and "cannot read /mds/geographies" in down.stderr


def httpx_get(url: str) -> bytes:
    import httpx

    r = httpx.get(url, timeout=60.0)
    assert r.status_code == 200
    return r.content
