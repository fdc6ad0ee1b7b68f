"""A client generated from the served ``/openapi.json`` drives the real server (issue 15):
openapi-python-client (pinned in .ci/install-contract-tools) generates ``geofence_client``
from the live document, ``mypy --strict`` checks ``client_flow.py`` against it, and the
flows run: every answer a model instance, every error a ``Problem``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import shapely

from api.testing.servetest import Server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def generated(tools: Path, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding ``geofence_client``, generated from the served document."""
    out = tmp_path_factory.mktemp("client")
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(
        [
            str(tools / "venv" / "bin" / "openapi-python-client"),
            "generate",
            "--url",
            f"{server.url}/openapi.json",
            "--meta",
            "none",
            "--output-path",
            str(out / "geofence_client"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Warning" not in r.stdout + r.stderr, r.stdout + r.stderr  # nothing skipped
    return out


def test_the_flow_type_checks_strictly(generated: Path, tmp_path: Path) -> None:
    config = tmp_path / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\nmypy_path = {generated}\npython_version = 3.11\n"
        # the generated code is typed, not clean: its own errors are the generator's
        "[mypy-geofence_client.*]\nignore_errors = True\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(HERE / "client_flow.py"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_flows_run(generated: Path, server: Server, small_seed: Path) -> None:
    feature = json.loads(small_seed.read_text(encoding="utf-8"))["features"][0]
    p = shapely.point_on_surface(shapely.geometry.shape(feature["geometry"]))
    r = subprocess.run(
        [
            sys.executable,
            str(HERE / "client_flow.py"),
            server.url,
            server.keys["meituan"],
            server.keys["admin"],
            str(small_seed),
            repr(p.x),
            repr(p.y),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(generated)},
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "client flows: ok" in r.stdout
