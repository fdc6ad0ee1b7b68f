"""A real ``geofence serve`` process on a loopback port, for the end-to-end tests
(beside :mod:`api.testing.pgtest`, the tests' PostgreSQL).

One helper for every test that needs the server as a user runs it (test_server_e2e,
test_map_browser, test_scale_out): the README's command when the console script is
installed, ``python -m api`` otherwise; a fresh environment with only the
``GEOFENCE_`` settings given here; its output in files under ``workdir``; the keys it
prints on a first run parsed out of them. :func:`check_in` is the trip-end check those
tests send into a zone of the served set, :func:`check_at` one at a point.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import shapely

from api.settings import DEFAULT_SEED_FILE

#: the trip end of every check :func:`check_at` builds
ENDED_AT = "2026-11-26T08:15:30+08:00"


def check_at(
    lon: float,
    lat: float,
    trip: str,
    *,
    accuracy_m: float = 0.5,
    quality: str | None = "rtk_fixed",
    **extra: Any,
) -> dict[str, Any]:
    """A check body ending trip ``trip`` at (lon, lat), WGS-84: one fix of
    ``accuracy_m`` (68 %), ``quality`` a high-precision lock's by default (the error
    model lets only such fixes settle a narrow box; ``None`` leaves it out); ``extra``
    adds or replaces fields."""
    fix: dict[str, Any] = {"lon": lon, "lat": lat, "accuracy_m": accuracy_m}
    if quality is not None:
        fix["quality"] = quality
    return {
        "trip_id": trip,
        "bike_id": "B-" + trip,
        "vehicle_type": "bike",
        "ended_at": ENDED_AT,
        "fixes": [fix],
    } | extra


def check_in(
    feature: dict[str, Any], trip: str, *, quality: str | None = "rtk_fixed", **extra: Any
) -> dict[str, Any]:
    """:func:`check_at` the point on surface of ``feature`` (a GeoJSON zone): inside it,
    away from its edge."""
    p = shapely.point_on_surface(shapely.geometry.shape(feature["geometry"]))
    return check_at(p.x, p.y, trip, quality=quality, **extra)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A ``geofence serve`` subprocess on 127.0.0.1 and what it printed.

    ``start()`` launches it and waits until ready; ``launch()`` and ``wait_ready()``
    do the two halves, for servers started together. ``keys`` maps ``admin`` and the
    demo operators to the keys the server printed on its first run (empty when it
    seeded nothing).
    """

    workdir: Path
    db_url: str = ""
    seed: Path = DEFAULT_SEED_FILE
    workers: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    keys: dict[str, str] = field(default_factory=dict)
    #: more ``GEOFENCE_*`` settings of the process (e.g. short timeouts)
    extra_env: dict[str, str] = field(default_factory=dict)
    started_s: float = 0.0
    _t0: float = 0.0

    def __post_init__(self) -> None:
        if not self.db_url:
            self.db_url = f"sqlite:///{self.workdir / 'var' / 'geofence.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEOFENCE_")}
        env |= {
            "GEOFENCE_DATABASE_URL": self.db_url,
            "GEOFENCE_SEED_FILE": str(self.seed),
            "GEOFENCE_LOG_LEVEL": "warning",
            "GEOFENCE_ACCESS_LOG": "false",
        }
        return env | self.extra_env

    def launch(self) -> Server:
        # the README's command (`make serve` runs `geofence serve`)
        exe = Path(sys.executable).with_name("geofence")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "api"]
        workers = ["--workers", str(self.workers)] if self.workers > 1 else []
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(self.port), *workers],
            cwd=self.workdir,
            env=self.env(),
            stdout=open(self.workdir / f"stdout-{self.port}.txt", "w"),
            stderr=open(self.workdir / f"stderr-{self.port}.txt", "w"),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> Server:
        """Until ``/readyz`` answers 200. With several workers, until it does so on
        enough fresh connections in a row that every worker has answered (each worker
        loads and warms up on its own; on a cold numba cache one may lag by seconds)."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        need = 1 if self.workers == 1 else 20 * self.workers
        in_a_row = 0
        while in_a_row < need:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready in {timeout} s: {self.stderr()[-3000:]}")
            try:
                ok = httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                ok = False
            in_a_row = in_a_row + 1 if ok else 0
            if not ok:
                time.sleep(0.05)
        self.started_s = time.monotonic() - self._t0
        # a restart prints no keys: those of the first run stay
        self.keys |= dict(
            re.findall(r"^\s+(?:admin|operator)\s+(\S+)\s+(gfk_\S+)$", self.stdout(), re.M)
        )
        return self

    def start(self, timeout: float = 120.0) -> Server:
        return self.launch().wait_ready(timeout)

    def stdout(self) -> str:
        return (self.workdir / f"stdout-{self.port}.txt").read_text()

    def stderr(self) -> str:
        return (self.workdir / f"stderr-{self.port}.txt").read_text()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def kill9(self) -> None:
        """``kill -9`` the server (and, with several workers, its whole group)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def h(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}
