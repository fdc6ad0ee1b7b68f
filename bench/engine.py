"""Engine benchmark: ZoneIndex against shapely STRtree, rtree and brute force, one core.

Builds a seeded synthetic city (small rotated boxes clustered like a real city plus a
few large no-parking areas) at several sizes and measures, in one run and on the
same fixes: index build, bulk locate and nearest (k=3, 50 m) for our ZoneIndex;
``shapely.STRtree.query(points, predicate="within")`` and ``query_nearest``; the
``rtree`` package (bulk bbox query + shapely exact test); and a brute-force shapely
loop on a small sample. When Debian's PostgreSQL and PostGIS are installed
(``bash .ci/install-postgres``), PostGIS is measured too, at the sizes up to
``--postgis-max-zones``, on the same zones and fixes (:mod:`bench.pg`: a bulk
``ST_Covers`` join over a GiST index and single-point queries over a local socket).
Writes bench/results/engine.json and engine.png.

    python -m bench.engine [--sizes 1000 18000 100000 1000000] [--repeat 5] [--no-postgis]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely

import geofence
from geofence import crs

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results"
X0, Y0 = 455_000.0, 2_460_000.0  # central Zhuhai in EPSG:4547 metres


def synth_city(n: int, seed: int = 7) -> geofence.ZoneSet:
    """n zones: clustered small rotated boxes (~1.5 % no-parking areas of 30 m-2 km).

    The area grows with n so the density of a real city is kept (18,000 boxes over
    ~40 km x 40 km; 1,000,000 over ~300 km x 300 km, a province).
    """
    rng = np.random.default_rng(seed)
    side = 40_000.0 * math.sqrt(max(n, 1000) / 18_000)
    n_np = max(3, n // 60)
    n_box = n - n_np
    # clusters: hubs with a local street direction
    n_hubs = max(20, n_box // 60)
    hub_xy = rng.uniform(-side / 2, side / 2, (n_hubs, 2)) + np.array([X0, Y0])
    hub_ang = rng.uniform(0, np.pi, n_hubs)
    hub = rng.integers(0, n_hubs, n_box)
    # boxes on a 12 m x 24 m street lattice around their hub: a box's slot is its rank
    # among its hub's boxes, scattered by a multiplicative permutation of the lattice
    order = np.argsort(hub, kind="stable")
    counts = np.bincount(hub, minlength=n_hubs)
    rank_in_hub = np.empty(n_box, np.int64)
    rank_in_hub[order] = np.arange(n_box) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = (rank_in_hub + rng.integers(0, 40_000, n_hubs)[hub]) * 7919 % 40_000
    # a hub's lattice is 200 x 200 slots, 12 m x 24 m apart; keep each box on its hub
    u = (slots % 200 - 100) * 12.0
    v = (slots // 200 - 100) * 24.0
    w = rng.uniform(1.5, 3.0, n_box)
    length = rng.uniform(4.0, 20.0, n_box)
    ang = hub_ang[hub]
    c, s = np.cos(ang), np.sin(ang)
    cx = hub_xy[hub, 0] + u * c - v * s
    cy = hub_xy[hub, 1] + u * s + v * c
    # rectangle corners in the box frame: long axis along the street (v direction)
    fx = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    fy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    lx = fx[None, :] * w[:, None]
    ly = fy[None, :] * length[:, None]
    px = cx[:, None] + lx * c[:, None] - ly * s[:, None]
    py = cy[:, None] + lx * s[:, None] + ly * c[:, None]
    # hubs closer than their lattice overlap; keep one box per 24 m cell world-wide
    key = np.floor(cx / 24.0) * 1e7 + np.floor(cy / 24.0)
    _, keep = np.unique(key, return_index=True)
    keep.sort()
    px, py = px[keep], py[keep]
    boxes_m = shapely.polygons(np.stack([px, py], axis=-1))
    # no-parking areas: rotated squares of 30 m - 2 km anywhere (they may cover boxes)
    r = np.exp(rng.uniform(np.log(15), np.log(1000), n_np))
    nx, ny = rng.uniform(-side / 2, side / 2, (2, n_np)) + np.array([[X0], [Y0]])
    na = rng.uniform(0, np.pi / 2, n_np)
    cor = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], float)
    qx = nx[:, None] + r[:, None] * (
        cor[:, 0] * np.cos(na)[:, None] - cor[:, 1] * np.sin(na)[:, None]
    )
    qy = ny[:, None] + r[:, None] * (
        cor[:, 0] * np.sin(na)[:, None] + cor[:, 1] * np.cos(na)[:, None]
    )
    areas_m = shapely.polygons(np.stack([qx, qy], axis=-1))
    geoms_m = np.concatenate([boxes_m, areas_m])
    lonlat = shapely.transform(geoms_m, lambda a: np.column_stack(crs.unproject(a[:, 0], a[:, 1])))
    kind = np.r_[np.zeros(len(boxes_m), np.int8), np.ones(n_np, np.int8)]
    ids = np.char.add("Z", np.arange(len(geoms_m)).astype(str))
    return geofence.ZoneSet.from_arrays(lonlat, ids, kind=kind, fenced=kind == 0)


def synth_fixes(zs: geofence.ZoneSet, n: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Half the fixes within ~10 m of a box (GPS noise), half uniform over the city."""
    rng = np.random.default_rng(seed)
    near = n // 2
    boxes = np.flatnonzero(zs.kind == 0)
    pick = rng.choice(boxes, near)
    c = shapely.get_coordinates(shapely.centroid(zs.geometry_m[pick]))
    xy_near = c + rng.normal(0, 5.0, (near, 2))
    b = shapely.total_bounds(zs.geometry_m)
    xy_far = rng.uniform(b[:2], b[2:], (n - near, 2))
    xy = np.vstack([xy_near, xy_far])
    rng.shuffle(xy)
    lon, lat = crs.unproject(xy[:, 0], xy[:, 1])
    return np.ascontiguousarray(lon), np.ascontiguousarray(lat)


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (after one warm-up call)."""
    out = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_size(n: int, repeat: int, n_fixes: int, postgis=None, postgis_args=None) -> dict:
    row: dict = {"zones": n}
    rss0 = rss_mb()
    t = time.perf_counter()
    zs = synth_city(n)
    row["zones"] = len(zs)
    row["synth_s"] = time.perf_counter() - t
    lon, lat = synth_fixes(zs, n_fixes)
    x, y = crs.project(lon, lat)

    build, ix = timed(lambda: geofence.ZoneIndex(zs), max(1, min(repeat, 3)))
    row["build_s"] = build
    row["index_mb"] = ix.nbytes / 2**20
    row["rss_mb"] = rss_mb() - rss0

    dt, ours = timed(lambda: ix.locate(lon, lat), repeat)
    row["locate_fixes_per_s"] = n_fixes / dt
    dt, _ = timed(lambda: ix.nearest(lon, lat, k=3, max_distance_m=50.0), repeat)
    row["nearest_fixes_per_s"] = n_fixes / dt

    # shapely STRtree on the same lon/lat geometries and fixes
    t = time.perf_counter()
    tree = shapely.STRtree(zs.geometry)
    row["strtree_build_s"] = time.perf_counter() - t
    pts = shapely.points(lon, lat)
    dt, pairs = timed(lambda: tree.query(pts, predicate="within"), repeat)
    row["strtree_locate_fixes_per_s"] = n_fixes / dt
    covered = np.zeros(n_fixes, bool)
    covered[pairs[0]] = True
    row["agree_with_strtree"] = float(np.mean((ours >= 0) == covered))
    # STRtree query_nearest in metres (points handed over already projected: the
    # peer is spared the projection that our figure includes)
    tree_m = shapely.STRtree(zs.geometry_m)
    pts_m = shapely.points(x, y)
    dt, _ = timed(
        lambda: tree_m.query_nearest(pts_m, max_distance=50.0, return_distance=True), repeat
    )
    row["strtree_nearest_fixes_per_s"] = n_fixes / dt

    # rtree: bulk-loaded R*-tree of bounding boxes, vectorized bbox query + exact test
    if n <= 200_000:
        import rtree

        b = shapely.bounds(zs.geometry)
        t = time.perf_counter()
        rix = rtree.index.Index(
            ((i, tuple(b[i]), None) for i in range(len(zs))),
            properties=rtree.index.Property(leaf_capacity=32, fill_factor=0.9),
        )
        row["rtree_build_s"] = time.perf_counter() - t
        pts2 = np.column_stack([lon, lat])

        def rtree_locate():
            ids, counts = rix.intersection_v(pts2, pts2)
            which = np.repeat(np.arange(n_fixes), counts.astype(np.int64))
            hit = shapely.contains_xy(zs.geometry[ids.astype(np.int64)], lon[which], lat[which])
            return which[hit]

        dt, _ = timed(rtree_locate, repeat)
        row["rtree_locate_fixes_per_s"] = n_fixes / dt

    # brute force: every zone tested for every fix, on a small sample
    m = 200 if n <= 100_000 else 20
    t = time.perf_counter()
    for i in range(m):
        shapely.covers(zs.geometry, shapely.Point(lon[i], lat[i]))
    row["brute_locate_fixes_per_s"] = m / (time.perf_counter() - t)

    # PostGIS (bench.pg), same zones, same fixes (the first --postgis-fixes of them)
    if postgis is not None:
        row.update(postgis.measure(zs, ix, lon, lat, repeat=min(repeat, 3), **(postgis_args or {})))
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    series = [
        ("locate_fixes_per_s", "ZoneIndex.locate", "o-"),
        ("nearest_fixes_per_s", "ZoneIndex.nearest k=3 50 m", "s-"),
        ("strtree_locate_fixes_per_s", "STRtree.query within", "o--"),
        ("strtree_nearest_fixes_per_s", "STRtree.query_nearest 50 m", "s--"),
        ("rtree_locate_fixes_per_s", "rtree bbox + shapely", "^:"),
        ("brute_locate_fixes_per_s", "brute-force shapely", "x:"),
        ("postgis_bulk_fixes_per_s", "PostGIS GiST join", "d-."),
    ]
    for key, label, style in series:
        pts = [(r["zones"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=label)
    ax.set(xscale="log", yscale="log", xlabel="zones", ylabel="fixes per second (one core)")
    ax.set_title("Bulk point queries against zone count")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _print_row(row: dict) -> None:
    print(
        f"{row['zones']:>9,} zones  build {row['build_s'] * 1e3:8.1f} ms  "
        f"locate {row['locate_fixes_per_s'] / 1e6:6.2f} M/s  "
        f"(STRtree {row['strtree_locate_fixes_per_s'] / 1e6:5.2f}, "
        f"x{row['locate_fixes_per_s'] / row['strtree_locate_fixes_per_s']:.1f})  "
        f"nearest {row['nearest_fixes_per_s'] / 1e6:5.2f} M/s "
        f"(STRtree {row['strtree_nearest_fixes_per_s'] / 1e6:5.2f}, "
        f"x{row['nearest_fixes_per_s'] / row['strtree_nearest_fixes_per_s']:.1f})  "
        f"index {row['index_mb']:.0f} MB, rss +{row['rss_mb']:.0f} MB",
        flush=True,
    )
    if "postgis_bulk_fixes_per_s" in row:
        print(
            f"{'':>9}        PostGIS GiST: join {row['postgis_bulk_fixes_per_s'] / 1e6:6.3f} M/s "
            f"(ours x{row['locate_fixes_per_s'] / row['postgis_bulk_fixes_per_s']:.0f}), "
            f"single point {row['postgis_single_query_us']:.0f} us "
            f"(ours {row['single_locate_us']:.1f} us, "
            f"x{row['postgis_single_query_us'] / row['single_locate_us']:.0f}), "
            f"agree {row['postgis_agree_with_ours']:.4f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 18_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fixes", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=RESULTS / "engine.json")
    ap.add_argument("--no-postgis", action="store_true", help="skip the PostGIS peer")
    ap.add_argument("--postgis-max-zones", type=int, default=20_000)
    ap.add_argument("--postgis-fixes", type=int, default=100_000, help="fixes in the bulk join")
    ap.add_argument("--postgis-single", type=int, default=2_000, help="single-point queries")
    args = ap.parse_args()
    from bench import pg

    postgis = None
    postgis_note = "skipped (--no-postgis)"
    if not args.no_postgis and any(n <= args.postgis_max_zones for n in args.sizes):
        postgis_note = pg.available() or ""
        if not postgis_note:
            # started before this process is pinned: the server's processes are not
            postgis = pg.PostGIS()
            postgis_note = f"PostGIS {postgis.version} on PostgreSQL {postgis.server}"
        print("postgis:", postgis_note, flush=True)
    postgis_args = {"bulk_fixes": args.postgis_fixes, "single": args.postgis_single}
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    rows = []
    try:
        for n in args.sizes:
            peer = postgis if n <= args.postgis_max_zones else None
            row = bench_size(n, args.repeat, args.fixes, peer, postgis_args)
            rows.append(row)
            _print_row(row)
    finally:
        if postgis is not None:
            postgis.close()
    by_n = {r["zones"]: r for r in rows}
    summary = {}
    base = min(by_n, key=lambda z: abs(z - 18_000))
    big = max(by_n)
    summary["locate_vs_strtree_at_18k"] = (
        by_n[base]["locate_fixes_per_s"] / by_n[base]["strtree_locate_fixes_per_s"]
    )
    summary["nearest_vs_strtree_at_18k"] = (
        by_n[base]["nearest_fixes_per_s"] / by_n[base]["strtree_nearest_fixes_per_s"]
    )
    summary["largest_locate_share_of_18k"] = (
        by_n[big]["locate_fixes_per_s"] / by_n[base]["locate_fixes_per_s"]
    )
    pgis = [r for r in rows if "postgis_bulk_fixes_per_s" in r]
    if pgis:
        r = min(pgis, key=lambda r: abs(r["zones"] - 18_000))
        summary["postgis_at_zones"] = r["zones"]
        summary["locate_vs_postgis_bulk"] = r["locate_fixes_per_s"] / r["postgis_bulk_fixes_per_s"]
        summary["single_vs_postgis_single"] = r["postgis_single_query_us"] / r["single_locate_us"]
    result = {
        "benchmark": "engine",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_used": 1},
        "python": sys.version.split()[0],
        "fixes": args.fixes,
        "repeat": args.repeat,
        "note": "median of `repeat` runs after a warm-up; STRtree nearest gets pre-projected "
        "points, our figures include the projection",
        "postgis": postgis_note,
        "rows": rows,
        "summary": summary,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(rows, args.out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
