"""Fixtures of the API tests: a small real zone set, real databases, real apps.

No mocks: every test that takes ``settings``, ``store`` or ``client`` runs twice,
once over a SQLite file in ``tmp_path`` and once over a fresh database of a real
PostgreSQL server (``[sqlite]`` / ``[postgresql]`` in the test ids), with the real
app factory, seeded from a small slice of the bundled Zhuhai zone set (so startup
is fast). The PostgreSQL server is a throwaway cluster of this test session
(:class:`api.testing.pgtest.TempCluster`: Debian's binaries, a temporary folder, a Unix
socket), removed at the end; if it cannot start, those tests fail, never skip.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import DEFAULT_SEED_FILE, Settings
from api.storage import Store
from api.testing.pgtest import TempCluster

ENDED_AT = "2026-11-26T08:15:30+08:00"


def _slice(fc: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    by_id = {f["id"]: f for f in fc["features"]}
    return {
        "type": "FeatureCollection",
        "zone_set": {"source": "tests: slice of the bundled Zhuhai set"},
        "features": [by_id[i] for i in ids],
    }


@pytest.fixture(scope="session")
def bundled() -> dict[str, Any]:
    return json.loads(DEFAULT_SEED_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def small_fc(bundled: dict[str, Any]) -> dict[str, Any]:
    """~200 zones of Xiangzhou: fenced and unfenced boxes and no-parking areas."""
    feats = bundled["features"]
    fenced = [f["id"] for f in feats if f["properties"]["fenced"] and "-XZ-" in f["id"]][:150]
    unfenced = [
        f["id"]
        for f in feats
        if f["properties"]["kind"] == "parking" and not f["properties"]["fenced"]
    ][:40]
    no_parking = [f["id"] for f in feats if f["properties"]["kind"] == "no_parking"][:10]
    return _slice(bundled, fenced + unfenced + no_parking)


@pytest.fixture(scope="session")
def small_fc_v2(small_fc: dict[str, Any]) -> dict[str, Any]:
    """The small set without its first 20 fenced boxes (a new layout)."""
    fc = dict(small_fc)
    fc["features"] = small_fc["features"][20:]
    fc["zone_set"] = {"source": "tests: v2 without the first 20 boxes"}
    return fc


@pytest.fixture(scope="session")
def seed_file(tmp_path_factory: pytest.TempPathFactory, small_fc: dict[str, Any]) -> Path:
    p = tmp_path_factory.mktemp("seed") / "small.geojson"
    p.write_text(json.dumps(small_fc, ensure_ascii=False), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def v2_file(tmp_path_factory: pytest.TempPathFactory, small_fc_v2: dict[str, Any]) -> Path:
    p = tmp_path_factory.mktemp("v2") / "small-v2.geojson"
    p.write_text(json.dumps(small_fc_v2, ensure_ascii=False), encoding="utf-8")
    return p


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    """A PostgreSQL cluster for this test session (one per xdist worker), then removed.

    Raises (every test using it errors) when PostgreSQL is missing or cannot start.
    """
    with TempCluster() as cluster:
        yield cluster


_db_counter = iter(range(1, 10**9))


@pytest.fixture
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``make(backend) -> URL`` of a fresh, empty database (dropped after the test)."""
    made: list[str] = []
    files: list[Path] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            files.append(tmp_path / "var" / ("geofence.db" if not files else f"g{len(files)}.db"))
            files[-1].parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{files[-1]}"
        assert backend == "postgresql", backend
        cluster: TempCluster = request.getfixturevalue("pg_cluster")
        worker = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))
        name = f"t_{worker}_{os.getpid()}_{next(_db_counter)}"
        made.append(name)
        return cluster.create_database(name)

    yield make
    if made:
        cluster = request.getfixturevalue("pg_cluster")
        for name in made:
            cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: tests over a database run on both."""
    return request.param


@pytest.fixture
def database_url(backend: str, new_database: Callable[[str], str]) -> str:
    return new_database(backend)


@pytest.fixture
def settings_for(database_url: str, seed_file: Path) -> Callable[..., Settings]:
    """Settings over a fresh database of the test's backend (overrides as kwargs)."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database_url": database_url,
            "seed_file": seed_file,
            "access_log": False,
            "sqlite_synchronous": "NORMAL",
            "key_cache_seconds": 0.0,
        }
        return Settings(**(base | overrides))

    return make


@pytest.fixture
def settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for()


class Keys:
    """API keys of a test database: ``admin``, operators ``meituan`` and ``hellobike``."""

    def __init__(self, store: Store) -> None:
        self.admin, self.admin_rec = store.create_key("admin")
        self.meituan, self.meituan_rec = store.create_key("operator", "meituan")
        self.hellobike, self.hellobike_rec = store.create_key("operator", "hellobike")

    @staticmethod
    def h(key: str) -> dict[str, str]:
        return {"X-API-Key": key}


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store.open(settings.database_url, sqlite_synchronous="NORMAL")
    yield s
    s.close()


@pytest.fixture
def keys(store: Store) -> Keys:
    return Keys(store)


def wait_ready(client: TestClient, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout} s: {client.get('/readyz').json()}")


@pytest.fixture
def client_for(keys: Keys) -> Iterator[Callable[[Settings], TestClient]]:
    """Start a ready app for some settings (the store and keys exist first)."""
    opened: list[TestClient] = []

    def make(s: Settings) -> TestClient:
        c = TestClient(create_app(s))
        c.__enter__()
        opened.append(c)
        wait_ready(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(client_for: Callable[[Settings], TestClient], settings: Settings) -> TestClient:
    return client_for(settings)


# ---------------------------------------------------------------------------- check bodies
def inside_point(feature: dict[str, Any]) -> tuple[float, float]:
    """A point well inside a zone (its representative point), WGS-84."""
    g = shapely.geometry.shape(feature["geometry"])
    p = shapely.point_on_surface(g)
    return float(p.x), float(p.y)


@pytest.fixture
def make_body(small_fc: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """A check body: ``at=i`` puts the bike inside zone ``i`` of the small set;
    ``lonlat=(lon, lat)`` anywhere. The fixes are a high-precision lock's (0.5 m,
    ``quality`` ``rtk_fixed``: the error model lets only such fixes settle a narrow
    box); ``quality=None`` for a device that reports none."""

    def make(
        at: int | None = 0,
        *,
        lonlat: tuple[float, float] | None = None,
        accuracy_m: float = 0.5,
        trip: str = "T-1",
        crs: str | None = None,
        n_fixes: int = 1,
        quality: str | None = "rtk_fixed",
        **extra: Any,
    ) -> dict[str, Any]:
        if lonlat is None:
            assert at is not None
            lonlat = inside_point(small_fc["features"][at])
        fix: dict[str, Any] = {"lon": lonlat[0], "lat": lonlat[1], "accuracy_m": accuracy_m}
        if crs is not None:
            fix["crs"] = crs
        if quality is not None:
            fix["quality"] = quality
        body = {
            "trip_id": trip,
            "bike_id": "B-" + trip,
            "vehicle_type": "bike",
            "ended_at": ENDED_AT,
            "fixes": [dict(fix) for _ in range(n_fixes)],
        }
        return body | extra

    return make


@pytest.fixture
def far_point(small_fc: dict[str, Any]) -> tuple[float, float]:
    """A point in Xiangzhou ~400 m from the first zone (no box there in the small set)."""
    lon, lat = inside_point(small_fc["features"][0])
    return lon + 0.004, lat + 0.0005
