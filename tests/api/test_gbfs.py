"""``/gbfs/{3.0|2.3}/…``: the GBFS feeds of the active zone set, served.

Every file that ``gbfs.json`` lists is fetched through its link and validated against
the official schemas (``zones.export.gbfs.validate_gbfs_docs``); ``last_updated`` is the
activation; ``ETag``/``If-None-Match``; metadata from the settings; bad metadata refused
at startup with the variable's name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import pydantic
import pytest

from api.settings import Settings
from zones.export.gbfs import FEEDS, validate_gbfs_docs

GEOJSON = {"Content-Type": "application/geo+json"}


def _feed(client: Any, version: str) -> dict[str, Any]:
    r = client.get(f"/gbfs/{version}/gbfs.json")  # no key: public
    assert r.status_code == 200, r.text
    docs = {"gbfs": r.json()}
    data = docs["gbfs"]["data"]
    feeds = data["feeds"] if version == "3.0" else data["zh-CN"]["feeds"]
    for f in feeds:
        rf = client.get(urlsplit(f["url"]).path)  # every listed file is served
        assert rf.status_code == 200, f
        assert rf.headers["content-type"] == "application/json"
        docs[f["name"]] = rf.json()
    return docs


def _seconds(v: Any) -> float:
    return datetime.fromisoformat(v).timestamp() if isinstance(v, str) else float(v)


@pytest.mark.parametrize("version", ["3.0", "2.3"])
def test_served_feed_is_valid_and_complete(client, store, small_fc, version):
    docs = _feed(client, version)
    assert set(docs) == set(FEEDS)
    assert validate_gbfs_docs(docs, version) == []
    (activated,) = [at for _, _, at in store.activation_history()]
    for doc in docs.values():
        assert doc["version"] == version and doc["ttl"] >= 0
        assert _seconds(doc["last_updated"]) == int(activated.timestamp())
    fenced = {
        f["id"]
        for f in small_fc["features"]
        if f["properties"]["kind"] == "parking" and f["properties"]["fenced"]
    }
    assert {s["station_id"] for s in docs["station_information"]["data"]["stations"]} == fenced
    status = docs["station_status"]["data"]["stations"]
    assert {s["station_id"] for s in status} == fenced
    assert all(s["is_renting"] is False and s["is_returning"] is True for s in status)
    for s in docs["station_information"]["data"]["stations"]:
        for v in (s["lat"], s["lon"]):
            assert round(v, 6) == v  # 6 decimals


def test_etag_cache_and_activation(client, store, keys, small_fc_v2):
    r = client.get("/gbfs/3.0/station_information.json")
    etag = r.headers["etag"]
    assert r.headers["cache-control"] == "public, max-age=3600"
    again = client.get("/gbfs/3.0/station_information.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    status = client.get("/gbfs/3.0/station_status.json")
    assert status.headers["cache-control"] == "public, max-age=300"
    h = keys.h(keys.admin)
    up = client.post("/v1/zone-sets", content=orjson.dumps(small_fc_v2), headers=h | GEOJSON)
    assert (
        client.post(f"/v1/zone-sets/{up.json()['version']}/activate", headers=h).status_code == 200
    )
    r2 = client.get("/gbfs/3.0/station_information.json", headers={"If-None-Match": etag})
    assert r2.status_code == 200 and r2.headers["etag"] != etag
    last = [at for _, _, at in store.activation_history()][-1]
    assert _seconds(r2.json()["last_updated"]) == int(last.timestamp())
    assert len(r2.json()["data"]["stations"]) == len(r.json()["data"]["stations"]) - 20


def test_unknown_version_or_file_is_404(client):
    assert client.get("/gbfs/2.2/gbfs.json").status_code == 404
    r = client.get("/gbfs/3.0/vehicle_status.json")
    assert r.status_code == 404 and "station_status" in r.json()["detail"]


def test_metadata_from_settings(client_for, settings_for):
    s = settings_for(
        feed_contact_email="gbfs@zhuhai.gov.cn",
        feed_operator="珠海市交通运输局",
        feed_url="https://jtj.zhuhai.gov.cn/",
        feed_license_id="CC-BY-4.0",
        feed_system_id="zh-city",
        feed_ttl_seconds=60,
        feed_base_url="https://data.zhuhai.gov.cn/",
    )
    c = client_for(s)
    for version in ("3.0", "2.3"):
        r = c.get(f"/gbfs/{version}/system_information.json")
        info = r.json()["data"]
        assert r.json()["ttl"] == 60 and r.headers["cache-control"] == "public, max-age=60"
        assert info["system_id"] == "zh-city" and info["feed_contact_email"] == "gbfs@zhuhai.gov.cn"
        assert info["url"] == "https://jtj.zhuhai.gov.cn/"
        if version == "3.0":
            assert info["license_id"] == "CC-BY-4.0" and "license_url" not in info
            assert info["operator"] == [{"text": "珠海市交通运输局", "language": "zh-CN"}]
        else:
            assert info["license_url"] == "https://spdx.org/licenses/CC-BY-4.0.html"
            assert info["operator"] == "珠海市交通运输局"
        disc = c.get(f"/gbfs/{version}/gbfs.json").json()["data"]
        feeds = disc["feeds"] if version == "3.0" else disc["zh-CN"]["feeds"]
        assert all(
            f["url"].startswith(f"https://data.zhuhai.gov.cn/gbfs/{version}/") for f in feeds
        )


@pytest.mark.parametrize(
    ("field", "value", "var"),
    [
        ("feed_contact_email", "not-an-address", "GEOFENCE_FEED_CONTACT_EMAIL"),
        ("feed_contact_email", "a@b.cn, c@d.cn", "GEOFENCE_FEED_CONTACT_EMAIL"),
        ("feed_timezone", "Mars/Olympus", "GEOFENCE_FEED_TIMEZONE"),
        ("feed_url", "ftp://x", "GEOFENCE_FEED_URL"),
        ("feed_system_id", "has space", "GEOFENCE_FEED_SYSTEM_ID"),
        ("feed_license_id", "CC BY", "GEOFENCE_FEED_LICENSE_ID"),
    ],
)
def test_bad_metadata_is_a_clear_error(field, value, var):
    with pytest.raises(pydantic.ValidationError, match=var):
        Settings(**{field: value})
    with pytest.raises(pydantic.ValidationError, match="not both"):
        Settings(feed_license_id="MIT", feed_license_url="https://x.cn/licence")
