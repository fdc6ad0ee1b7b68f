"""``geofence keys`` and ``geofence checks replay`` on a real database (in-process CLI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.server import DEMO_OPERATORS, prepare
from api.storage import Store

runner = CliRunner()


@pytest.fixture
def env(settings):
    return {
        "GEOFENCE_DATABASE_URL": settings.database_url,
        "GEOFENCE_SEED_FILE": str(settings.seed_file),
    }


def test_keys_create_prints_only_the_key(env, settings):
    r = runner.invoke(
        app, ["keys", "create", "--role", "operator", "--operator", "qingju"], env=env
    )
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    assert key.startswith("gfk_") and "\n" not in key
    s = Store.open(settings.database_url)
    try:
        assert s.lookup_key(key).operator == "qingju"
    finally:
        s.close()


def test_keys_list_and_revoke(env, settings):
    runner.invoke(app, ["keys", "create", "--role", "admin"], env=env)
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"], env=env).stdout)
    assert [k["role"] for k in listed] == ["admin"]
    assert "key_hash" not in listed[0]
    r = runner.invoke(app, ["keys", "revoke", listed[0]["id"]], env=env)
    assert r.exit_code == 0 and "revoked" in r.stdout
    listed = json.loads(runner.invoke(app, ["keys", "list", "--json"], env=env).stdout)
    assert listed[0]["revoked_at"] is not None
    table = runner.invoke(app, ["keys", "list"], env=env)
    assert listed[0]["id"] in table.stdout


def test_keys_usage_errors(env):
    assert runner.invoke(app, ["keys", "create", "--role", "operator"], env=env).exit_code == 2
    assert runner.invoke(app, ["keys", "create", "--role", "god"], env=env).exit_code == 2
    assert runner.invoke(app, ["keys", "revoke", "key_nope"], env=env).exit_code == 2


def test_prepare_seeds_and_creates_demo_keys_once(settings, capsys):
    first = prepare(settings)
    assert first["seeded"] == 1
    assert set(first["keys"]) == {"admin", *DEMO_OPERATORS}
    out = capsys.readouterr().out
    assert all(k in out for k in first["keys"].values())
    again = prepare(settings)
    assert again == {"seeded": None, "keys": {}}
    assert "gfk_" not in capsys.readouterr().out


def test_replay_reports_what_a_new_layout_changes(client, keys, make_body, env, small_fc_v2, store):
    h = keys.h(keys.meituan)
    for i in (0, 1, 25, 30):
        assert (
            client.post("/v1/checks", json=make_body(i, trip=f"T-{i}"), headers=h).status_code
            == 200
        )
    batch = {"checks": [make_body(i, trip=f"B-{i}") for i in (2, 40)]}
    assert client.post("/v1/checks/batch", json=batch, headers=h).status_code == 200
    up = client.post(
        "/v1/zone-sets",
        content=json.dumps(small_fc_v2).encode(),
        headers=keys.h(keys.admin) | {"content-type": "application/geo+json"},
    )
    assert up.json()["version"] == 2
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    same = runner.invoke(app, ["checks", "replay", "--since", since, "--json"], env=env)
    assert same.exit_code == 0, same.output
    rep = json.loads(same.stdout)
    assert rep["n_checks"] == 6 and rep["n_changed"] == 0 and rep["n_failed"] == 0

    other = runner.invoke(
        app, ["checks", "replay", "--since", since, "--version", "2", "--json"], env=env
    )
    rep = json.loads(other.stdout)
    assert rep["n_checks"] == 6
    changed = {c["trip_id"] for c in rep["changes"]}
    assert changed == {"T-0", "T-1", "B-2"}  # the boxes v2 removed
    assert all(
        c["old"]["outcome"] == "settle" and c["new"]["outcome"] != "settle" for c in rep["changes"]
    )
    assert sum(rep["transitions"].values()) == 3

    table = runner.invoke(app, ["checks", "replay", "--since", since, "--version", "2"], env=env)
    assert table.exit_code == 0 and "T-0" in table.stdout and "3 changed" in table.stdout
    assert runner.invoke(app, ["checks", "replay", "--since", "yesterday"], env=env).exit_code == 2
    assert (
        runner.invoke(
            app, ["checks", "replay", "--since", since, "--version", "9"], env=env
        ).exit_code
        == 2
    )
