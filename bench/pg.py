"""PostGIS as a peer of the engine benchmark: the same zones and fixes, a GiST index.

Used by ``python -m bench.engine``: when Debian's PostgreSQL and PostGIS are
installed (``bash .ci/install-postgres``; :func:`available`), a throwaway cluster
(:class:`api.testing.pgtest.TempCluster`, a Unix socket in a temporary folder) gets the
zones (``geometry(Geometry, 4326)``, the same lon/lat polygons our index holds) with
a GiST index, and the fixes as points. Measured, on the same data as our engine:

* bulk: ``SELECT f.i, z.id FROM fixes f JOIN zones z ON ST_Covers(z.geom, f.geom)``,
  every pair fetched by the client (our ``locate`` hands back an array of the same);
  one backend, no parallel workers (``max_parallel_workers_per_gather = 0``), the
  median of ``repeat`` runs after a warm-up;
* single point: one prepared ``SELECT id FROM zones WHERE ST_Covers(geom,
  ST_SetSRID(ST_MakePoint($1, $2), 4326)) LIMIT 1`` per fix over the Unix socket,
  against our ``ZoneIndex.locate(lon, lat)`` on one scalar fix.

The cluster runs with ``fsync=off`` (nothing is written during the queries) and
PostgreSQL's default 128 MB of shared buffers, which hold these tables whole.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely

__all__ = ["PostGIS", "available"]


def available() -> str | None:
    """None when PostgreSQL with PostGIS can run here, else why not."""
    try:
        from api.testing.pgtest import find_bindir

        bindir = find_bindir()
    except Exception as exc:
        return str(exc)
    major = bindir.parent.name
    for share in (Path(f"/usr/share/postgresql/{major}"), bindir.parent / "share"):
        if (share / "extension" / "postgis.control").exists():
            return None
    return f"PostGIS is not installed for PostgreSQL {major} (bash .ci/install-postgres)"


class PostGIS:
    """A throwaway cluster with PostGIS; :meth:`measure` runs the peer on one size."""

    def __init__(self) -> None:
        import psycopg

        from api.testing.pgtest import TempCluster

        self.cluster = TempCluster(
            settings={"max_parallel_workers_per_gather": "0", "jit": "off"}, prefix="pg_bench_"
        ).start()
        self.conn = psycopg.connect(self.cluster.conninfo(), autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        self.version = self.conn.execute("SELECT postgis_lib_version()").fetchone()[0]
        self.server = self.conn.execute("SHOW server_version").fetchone()[0]

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.cluster.stop()

    def __enter__(self) -> PostGIS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self, zs: Any, lon: np.ndarray, lat: np.ndarray) -> float:
        c = self.conn
        c.execute("DROP TABLE IF EXISTS zones, fixes")
        c.execute(
            "CREATE UNLOGGED TABLE zones (id integer PRIMARY KEY, geom geometry(Geometry, 4326))"
        )
        c.execute("CREATE UNLOGGED TABLE fixes (i integer PRIMARY KEY, geom geometry(Point, 4326))")
        t = time.perf_counter()
        wkb = shapely.to_wkb(shapely.set_srid(zs.geometry, 4326), hex=True, include_srid=True)
        with c.cursor() as cur, cur.copy("COPY zones (id, geom) FROM STDIN") as cp:
            for i, w in enumerate(wkb):
                cp.write_row((i, w))
        c.execute("CREATE INDEX zones_gist ON zones USING gist (geom)")
        build = time.perf_counter() - t
        pts = shapely.to_wkb(
            shapely.set_srid(shapely.points(lon, lat), 4326), hex=True, include_srid=True
        )
        with c.cursor() as cur, cur.copy("COPY fixes (i, geom) FROM STDIN") as cp:
            for i, w in enumerate(pts):
                cp.write_row((i, w))
        c.execute("ANALYZE zones")
        c.execute("ANALYZE fixes")
        return build

    def measure(
        self,
        zs: Any,
        index: Any,
        lon: np.ndarray,
        lat: np.ndarray,
        *,
        bulk_fixes: int = 100_000,
        single: int = 2_000,
        repeat: int = 3,
    ) -> dict[str, Any]:
        """PostGIS figures (and our single-fix latency) on the first fixes of ``lon/lat``."""
        n = min(bulk_fixes, len(lon))
        lon_b, lat_b = np.ascontiguousarray(lon[:n]), np.ascontiguousarray(lat[:n])
        row: dict[str, Any] = {"postgis_bulk_fixes": n, "postgis_single_queries": single}
        row["postgis_build_s"] = self._load(zs, lon_b, lat_b)
        c = self.conn
        bulk = "SELECT f.i, z.id FROM fixes f JOIN zones z ON ST_Covers(z.geom, f.geom)"
        plan = "\n".join(r[0] for r in c.execute("EXPLAIN " + bulk).fetchall())
        row["postgis_bulk_plan_uses_gist"] = "zones_gist" in plan
        pairs = c.execute(bulk).fetchall()  # warm-up (and the answers)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            c.execute(bulk).fetchall()
            times.append(time.perf_counter() - t)
        row["postgis_bulk_fixes_per_s"] = n / statistics.median(times)
        # agreement with our index: the same fixes covered (ours picks one zone per fix)
        covered = np.zeros(n, bool)
        if pairs:
            covered[np.fromiter((p[0] for p in pairs), np.int64, len(pairs))] = True
        ours = index.locate(lon_b, lat_b)
        row["postgis_agree_with_ours"] = float(np.mean((ours >= 0) == covered))

        # single points over the Unix socket, a prepared statement
        q = (
            "SELECT id FROM zones WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) "
            "LIMIT 1"
        )
        pts = [(float(lon[i]), float(lat[i])) for i in range(single)]
        # five rounds of each, interleaved, and the medians (one round of each moved
        # our figure by ~20 % between runs)
        theirs: list[float] = []
        ours: list[float] = []
        with c.cursor() as cur:
            for p in pts[:200]:  # warm-up; psycopg prepares the statement server-side
                cur.execute(q, p, prepare=True)
                cur.fetchone()
            for x, y in pts[:200]:
                index.locate(x, y)
            for _ in range(5):
                t = time.perf_counter()
                for p in pts:
                    cur.execute(q, p, prepare=True)
                    cur.fetchone()
                theirs.append((time.perf_counter() - t) / single * 1e6)
                t = time.perf_counter()
                for x, y in pts:
                    index.locate(x, y)
                ours.append((time.perf_counter() - t) / single * 1e6)
        row["postgis_single_query_us"] = statistics.median(theirs)
        row["single_locate_us"] = statistics.median(ours)
        row["postgis_single_query_us_runs"] = [round(v, 2) for v in theirs]
        row["single_locate_us_runs"] = [round(v, 2) for v in ours]
        c.execute("DROP TABLE zones, fixes")
        return row
