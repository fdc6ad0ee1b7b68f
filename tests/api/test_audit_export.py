"""``geofence audit export`` and ``geofence audit prune`` on a real database (SQLite file
and PostgreSQL), against what the API answers for the same checks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
from typer.testing import CliRunner

from api.cli import app
from geofence.rfc3339 import parse_rfc3339

runner = CliRunner()

WIDE = ["--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z"]


def _env(settings):
    return {
        "GEOFENCE_DATABASE_URL": settings.database_url,
        "GEOFENCE_SEED_FILE": str(settings.seed_file),
    }


def _post_checks(client, keys, make_body, far_point) -> list[str]:
    """Single checks (settled, rejected with nearest boxes, with a heading, device class,
    road stud, several fixes with times and CRSs) and a batch; their check ids."""
    h = keys.h(keys.meituan)
    bodies = [
        make_body(0, trip="T-0"),
        make_body(lonlat=far_point, trip="T-far", accuracy_m=3.0, quality=None),
        make_body(
            3,
            trip="T-3",
            n_fixes=3,
            heading_deg=45.0,
            device_class="lock-v2",
            beacons=[{"id": "stud-nobody", "rssi": -60.0}],
        ),
    ]
    bodies[2]["fixes"][0]["at"] = "2026-11-26T08:15:20+08:00"
    ids = []
    for b in bodies:
        r = client.post("/v1/checks", json=b, headers=h)
        assert r.status_code == 200, r.text
        ids.append(r.json()["check_id"])
    batch = {"checks": [make_body(i, trip=f"B-{i}", crs="gcj02") for i in (2, 5, 7)]}
    r = client.post("/v1/checks/batch", json=batch, headers=h)
    assert r.status_code == 200, r.text
    ids += [d["check_id"] for d in r.json()["results"]]
    return ids


def _instant(s: str | None) -> datetime | None:
    return None if s is None else parse_rfc3339(s).astimezone(UTC)


def test_export_reads_back_as_the_api_answers(
    client, keys, make_body, far_point, settings, tmp_path
):
    ids = _post_checks(client, keys, make_body, far_point)
    admin = keys.h(keys.admin)
    api = {i: client.get(f"/v1/checks/{i}", headers=admin).json() for i in ids}
    out = tmp_path / "audit.parquet"
    r = runner.invoke(
        app, ["audit", "export", *WIDE, "--format", "parquet", "--out", str(out), "--chunk", "2"],
        env=_env(settings),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"exported {len(ids)} checks" in r.stdout
    f = pq.ParquetFile(out)
    assert f.metadata.num_rows == len(ids) and f.num_row_groups == 3  # chunks of 2
    rows = {row["check_id"]: row for row in f.read().to_pylist()}
    assert set(rows) == set(ids)
    for cid, rec in api.items():
        row, req, dec = rows[cid], rec["request"], rec["decision"]
        assert row["operator"] == rec["operator"] == "meituan"
        assert (row["trip_id"], row["bike_id"]) == (rec["trip_id"], rec["bike_id"])
        assert row["batch_id"] == rec["batch_id"]
        assert row["outcome"] == dec["outcome"]
        assert row["reasons"] == dec["reasons"]
        assert row["p_inside"] == dec["p_inside"]
        assert row["distance_m"] == dec["distance_m"]
        assert row["zone_id"] == (dec["zone"] or {}).get("id")
        assert row["district"] == (dec["zone"] or {}).get("district")
        assert row["zone_set_version"] == rec["zone_set_version"] == dec["zone_set_version"]
        assert row["policy_id"] == rec["policy"] == dec["policy"]
        assert row["policy_version"] == rec["policy_version"]
        assert row["device_class"] == req.get("device_class")
        assert row["heading_deg"] == req.get("heading_deg")
        assert row["decided_at"] == _instant(rec["decided_at"])
        assert row["ended_at"] == _instant(req["ended_at"])
        assert [(f["lon"], f["lat"], f["accuracy_m"]) for f in row["fixes"]] == [
            (f["lon"], f["lat"], f.get("accuracy_m")) for f in req["fixes"]
        ]
        assert [f["at"] for f in row["fixes"]] == [_instant(f.get("at")) for f in req["fixes"]]
        assert [f["crs"] for f in row["fixes"]] == [f.get("crs", "wgs84") for f in req["fixes"]]
        assert [f["quality"] for f in row["fixes"]] == [f.get("quality") for f in req["fixes"]]
        assert row["beacons"] == req.get("beacons", [])
        assert row["nearest"] == dec["nearest"]
        assert (row["position_lon"], row["position_lat"]) == (
            dec["position"]["lon"],
            dec["position"]["lat"],
        )
    assert {r["outcome"] for r in rows.values()} >= {"settle", "reject"}
    assert any(r["nearest"] for r in rows.values())
    assert rows[ids[2]]["device_class"] == "lock-v2" and len(rows[ids[2]]["fixes"]) == 3


def test_export_of_a_range_and_bad_arguments(
    client, keys, make_body, far_point, settings, tmp_path
):
    ids = _post_checks(client, keys, make_body, far_point)
    env = _env(settings)
    past = tmp_path / "past.parquet"
    r = runner.invoke(
        app, ["audit", "export", "--to", "2001-01-01T00:00:00Z", "--out", str(past)], env=env
    )
    assert r.exit_code == 0, r.output
    assert pq.read_table(past).num_rows == 0  # an empty file with the schema
    assert "check_id" in pq.read_schema(past).names
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    recent = tmp_path / "recent.parquet"
    r = runner.invoke(app, ["audit", "export", "--from", since, "--out", str(recent)], env=env)
    assert r.exit_code == 0, r.output
    assert sorted(pq.read_table(recent).column("check_id").to_pylist()) == sorted(ids)
    bad = ["audit", "export", "--out", str(tmp_path / "x.parquet")]
    assert runner.invoke(app, [*bad, "--format", "csv"], env=env).exit_code == 2
    assert runner.invoke(app, [*bad, "--from", "yesterday"], env=env).exit_code == 2
    assert not (tmp_path / "x.parquet").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_prune_refuses_without_yes_and_counts_what_it_removes(
    client, keys, make_body, far_point, settings, store
):
    env = _env(settings)
    old = _post_checks(client, keys, make_body, far_point)
    time.sleep(0.05)
    cut = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    h = keys.h(keys.meituan)
    new = [
        client.post("/v1/checks", json=make_body(i, trip=f"N-{i}"), headers=h).json()["check_id"]
        for i in (1, 4)
    ]
    dry = runner.invoke(app, ["audit", "prune", "--before", cut], env=env)
    assert dry.exit_code == 1
    assert f"would remove {len(old)} checks" in dry.stderr and "--yes" in dry.stderr
    assert store.check_ids() == set(old) | set(new)  # nothing removed
    done = runner.invoke(app, ["audit", "prune", "--before", cut, "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert f"removed {len(old)} checks" in done.stdout
    assert store.check_ids() == set(new)
    admin = keys.h(keys.admin)
    assert client.get(f"/v1/checks/{old[0]}", headers=admin).status_code == 404
    assert client.get(f"/v1/checks/{new[0]}", headers=admin).status_code == 200
    again = runner.invoke(app, ["audit", "prune", "--before", cut, "--yes"], env=env)
    assert again.exit_code == 0 and "removed 0 checks" in again.stdout
    assert runner.invoke(app, ["audit", "prune", "--before", "soon"], env=env).exit_code == 2
