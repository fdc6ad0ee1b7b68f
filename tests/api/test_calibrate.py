"""``geofence calibrate``: label files (bad lines named), end to end, and from the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import geofence
from api.cli import app
from api.operations.labels import labels_from_audit
from api.service import load_zone_set
from geofence import crs
from geofence.fitting import OUTLIER_SIGMA_M, SIGMA_PER_R68
from tests.api.conftest import inside_point

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _label_lines(small_fc: dict[str, Any], n: int, *, seed: int = 0, zone_every: int = 4):
    """``n`` label lines of operator ``op`` near the first boxes of the small set."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        feat = small_fc["features"][i % 10]
        lon, lat = inside_point(feat)
        x, y = crs.project(np.array([lon]), np.array([lat]))
        k = int(rng.integers(2, 5))
        acc = rng.uniform(0.5, 8.0, k)
        sig = np.where(rng.random(k) < 0.05, OUTLIER_SIGMA_M, np.maximum(1.8 * acc, 3.0))
        sig = sig / SIGMA_PER_R68
        bias = rng.normal(0, 2.0, 2)
        fx = x[0] + bias[0] + rng.normal(size=k) * sig
        fy = y[0] + bias[1] + rng.normal(size=k) * sig
        flon, flat = crs.unproject(fx, fy)
        fixes = [
            {"lon": float(a), "lat": float(b), "accuracy_m": float(r), "quality": "single"}
            for a, b, r in zip(np.ravel(flon), np.ravel(flat), acc, strict=True)
        ]
        truth = {"zone_id": feat["id"]} if i % zone_every == 0 else {"lon": lon, "lat": lat}
        body = {"ended_at": "2026-11-26T08:15:30+08:00", "fixes": fixes}
        lines.append({**body, "operator": "op", "truth": truth})
    return lines


def _write(path: Path, docs: list[Any]) -> Path:
    path.write_text(
        "".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs),
        encoding="utf-8",
    )
    return path


def _args(labels: Path, zones: Path, out: Path, *more: str) -> list[str]:
    return ["calibrate", "--labels", str(labels), "--zones", str(zones), "--out", str(out), *more]


GOOD = {
    "ended_at": "2026-11-26T08:15:30+08:00",
    "fixes": [{"lon": 113.55, "lat": 22.25, "accuracy_m": 3.0}],
    "operator": "op",
    "truth": {"lon": 113.55, "lat": 22.25},
}


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ("{not json", "line 3:"),
        ({k: v for k, v in GOOD.items() if k != "operator"}, "line 3, operator"),
        ({k: v for k, v in GOOD.items() if k != "truth"}, "line 3, truth"),
        (GOOD | {"truth": {"lon": 113.55}}, "line 3, truth.lat"),
        (GOOD | {"truth": {"lon": 213.55, "lat": 22.25}}, "line 3, truth.lon"),
        (GOOD | {"truth": {"zone_id": "NO-SUCH-BOX"}}, "line 3, truth.zone_id"),
        (GOOD | {"fixes": [{"lon": 113.55, "lat": 99.0}]}, "line 3, fixes[0].lat"),
        (GOOD | {"fixes": [{"lon": 113.55, "lat": 22.2, "quality": "rtk"}]}, "fixes[0].quality"),
        (GOOD | {"ended_at": "yesterday"}, "line 3, ended_at"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_written(tmp_path, seed_file, bad, where):
    labels = _write(tmp_path / "labels.jsonl", [GOOD, GOOD, bad, GOOD])
    out = tmp_path / "policy.json"
    r = runner.invoke(app, _args(labels, seed_file, out))
    assert r.exit_code == 1, r.output
    assert where in r.stderr, r.stderr
    assert not out.exists() and not out.with_suffix(".png").exists()
    assert list(tmp_path.iterdir()) == [labels]


def test_a_bad_base_policy_is_named(tmp_path, seed_file):
    labels = _write(tmp_path / "labels.jsonl", [GOOD])
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"calibration": [{"bias_m": -1}]}))
    out = tmp_path / "policy.json"
    r = runner.invoke(app, _args(labels, seed_file, out, "--base", str(base)))
    assert r.exit_code == 1 and "calibration[0].bias_m" in r.stderr
    assert not out.exists()


def test_calibrate_end_to_end_in_a_subprocess(tmp_path, seed_file, small_fc):
    lines = _label_lines(small_fc, 60)
    few = _label_lines(small_fc, 5, seed=1)
    for d in few:
        d["device_class"] = "rare-lock"
    labels = _write(tmp_path / "labels.jsonl", lines + few)
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"settle_p": 0.8}))
    out = tmp_path / "policy.json"
    env = os.environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-m", "api", *_args(labels, seed_file, out, "--base", str(base))],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    policy = geofence.Policy.from_mapping(doc)  # what POST /v1/policies parses
    assert policy.settle_p == 0.8
    row = policy.calibration.row("op", None, "single")
    assert row.key == ("op", "*", "single") and row.trips == 60 and not row.settles_narrow
    # five trips: no row of its own (it falls back to the base rows)
    assert not [r for r in policy.calibration.rows if r.device_class == "rare-lock"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "rare-lock" in r.stdout and "base row kept" in r.stdout
    assert policy.id in r.stdout


@pytest.mark.parametrize("backend", ["sqlite"])
def test_labels_from_the_audit_log(client, keys, make_body, settings, store, small_fc, tmp_path):
    studs = [
        (i, f["id"], f["properties"]["beacons"][0])
        for i, f in enumerate(small_fc["features"])
        if f["properties"].get("beacons")
    ][:3]
    h = keys.h(keys.meituan)
    sent = []
    for n, (i, zid, stud) in enumerate(studs):
        body = make_body(i, trip=f"S-{n}", accuracy_m=3.0, n_fixes=2)
        body["beacons"] = [{"id": stud, "rssi": -60.0}, {"id": "UNBOUND", "rssi": -40.0}]
        assert client.post("/v1/checks", json=body, headers=h).status_code == 200
        sent.append(zid)
    quiet = make_body(studs[0][0], trip="Q-1")
    quiet["beacons"] = [{"id": studs[0][2], "rssi": -90.0}]  # too weak to name the box
    assert client.post("/v1/checks", json=quiet, headers=h).status_code == 200
    assert client.post("/v1/checks", json=make_body(1, trip="N-1"), headers=h).status_code == 200
    other = make_body(studs[1][0], trip="H-1")
    other["beacons"] = [{"id": studs[1][2], "rssi": -50.0}]
    assert client.post("/v1/checks", json=other, headers=keys.h(keys.hellobike)).status_code == 200

    got = labels_from_audit(store, operator="meituan", policy=geofence.Policy())
    assert got.records == 5
    assert sorted(lab.zone_id for lab in got.labels) == sorted(sent)
    zs = load_zone_set(store, 1)
    for lab in got.labels:
        assert lab.check.operator == "meituan"
        assert lab.box_m.equals(zs.geometry_m[zs.position[lab.zone_id]])

    out = tmp_path / "policy.json"
    env = {"GEOFENCE_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    r = runner.invoke(
        app,
        [
            "calibrate",
            "--from-audit",
            "--operator",
            "meituan",
            "--out",
            str(out),
            "--min-trips",
            "3",
            "--since",
            "2000-01-01T00:00:00Z",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    policy = geofence.Policy.from_mapping(json.loads(out.read_text()))
    fitted = [row for row in policy.calibration.rows if row.trips]
    assert [(row.operator, row.trips) for row in fitted] == [("meituan", 3)]
    assert "3 beacon-named labels of 5 recorded checks of meituan" in r.stdout
