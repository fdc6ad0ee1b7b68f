"""Ground truth and observation: the bundled zones in metres, true positions drawn in
distance bands around fenced boxes (:func:`draw_truth`), and the trails of fixes a
scenario's device reports for them (:func:`observe`), as a check batch and as single
checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely

import geofence
from bench.decisions.workload import (
    ENDED_AT,
    FIX_INTERVAL_S,
    OPERATOR,
    ZONES,
)
from bench.gnss.scenarios import _EPS_M, BANDS, MAX_FIXES, Q_NONE, QUALITIES, R68, Scenario
from geofence import crs as gcrs
from zones.districts import service_area


@dataclass
class Zones:
    zs: geofence.ZoneSet
    ix: geofence.ZoneIndex
    eligible: np.ndarray  # (zones,) bool: fenced parking open to OPERATOR, active
    elig_pos: np.ndarray  # positions of the eligible boxes
    fenced_tree: shapely.STRtree  # every fenced parking box (metres)
    zone_tree: shapely.STRtree  # every zone (metres)
    land: shapely.Geometry  # service area, lon/lat (prepared)
    ended_at: float


def load_zones() -> Zones:
    zs = geofence.ZoneSet.from_geojson(ZONES, version=1)
    land = service_area()
    ix = geofence.ZoneIndex(zs, service_area=land)
    ended_at = datetime.fromisoformat(ENDED_AT).timestamp()
    fenced = (zs.kind == geofence.KIND_PARKING) & zs.fenced
    eligible = fenced & zs.open_to(OPERATOR) & zs.active_at(ended_at)
    shapely.prepare(land)
    return Zones(
        zs=zs,
        ix=ix,
        eligible=eligible,
        elig_pos=np.flatnonzero(eligible),
        fenced_tree=shapely.STRtree(zs.geometry_m[np.flatnonzero(fenced)]),
        zone_tree=shapely.STRtree(zs.geometry_m),
        land=land,
        ended_at=ended_at,
    )


@dataclass
class Truth:
    band: str
    x: np.ndarray  # EPSG:4547 metres
    y: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    zone: np.ndarray  # the box it stands in (inside) or was drawn beside, position
    d_fenced: np.ndarray  # distance to the nearest fenced box, metres (0 inside)


def draw_truth(z: Zones, band: str, n: int, seed: int) -> Truth:
    """``n`` true positions of ``band`` (see the module doc)."""
    rng = np.random.default_rng(seed)
    geom = z.zs.geometry_m
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    zs_: list[np.ndarray] = []
    have = 0
    rng_band = BANDS[band]
    for _ in range(200):
        if have >= n:
            break
        k = int((n - have) * 1.5) + 64
        src = z.elig_pos[rng.integers(0, len(z.elig_pos), k)]
        if rng_band is None:
            # uniform in the box: rejection from its minimum rotated rectangle
            rect = shapely.minimum_rotated_rectangle(geom[src])
            c = shapely.get_coordinates(shapely.get_exterior_ring(rect)).reshape(k, -1, 2)
            u, v = rng.random((2, k, 1))
            p = c[:, 0] + u * (c[:, 1] - c[:, 0]) + v * (c[:, 3] - c[:, 0])
            inner = shapely.buffer(geom[src], -_EPS_M, join_style="mitre")
            ok = shapely.contains_xy(inner, p[:, 0], p[:, 1])
        else:
            lo, hi = rng_band
            d = rng.uniform(lo + _EPS_M, hi - _EPS_M, k)
            # every point on the boundary of buffer(box, d) lies exactly d from the box
            ring = shapely.boundary(shapely.buffer(geom[src], d, quad_segs=16))
            pts = shapely.line_interpolate_point(ring, rng.random(k), normalized=True)
            p = shapely.get_coordinates(pts)
            _, dist = z.fenced_tree.query_nearest(pts, return_distance=True, all_matches=False)
            ok = (dist > lo + _EPS_M / 2) & (dist < hi - _EPS_M / 2)
            in_zone, _ = z.zone_tree.query(pts, predicate="intersects")
            ok[in_zone] = False
            lon, lat = gcrs.unproject(p[:, 0], p[:, 1])
            ok &= shapely.contains_xy(z.land, lon, lat)
        sel = np.flatnonzero(ok)[: n - have]
        xs.append(p[sel, 0])
        ys.append(p[sel, 1])
        zs_.append(src[sel])
        have += len(sel)
    if have < n:
        raise RuntimeError(f"could not place {n} trips in band {band} (only {have})")
    x, y, zone = np.concatenate(xs), np.concatenate(ys), np.concatenate(zs_)
    lon, lat = (np.asarray(a, np.float64) for a in gcrs.unproject(x, y))
    _, d = z.fenced_tree.query_nearest(shapely.points(x, y), return_distance=True)
    return Truth(band, x, y, lon, lat, zone, np.asarray(d))


@dataclass
class Trips:
    batch: geofence.CheckBatch
    fix_x: np.ndarray  # (n, MAX_FIXES) metres, NaN padded (for baselines and labels)
    fix_y: np.ndarray
    last: np.ndarray  # index of each trip's last fix


def observe(z: Zones, truth: Truth, sc: Scenario, seed: int) -> Trips:
    """The fixes a device in scenario ``sc`` sends for the true positions ``truth``."""
    rng = np.random.default_rng(seed)
    n, m = len(truth.x), MAX_FIXES
    nfix = rng.integers(1, m + 1, n)
    r = rng.uniform(*sc.reported_m, n)
    f = rng.uniform(*sc.noise_factor, n)
    sig_n = f * r / R68
    sig_b = rng.uniform(*sc.bias_r68_m, n) / R68
    noise = rng.standard_normal((2, n, m)) * sig_n[None, :, None]
    bias = rng.standard_normal((2, n, 1)) * sig_b[None, :, None]
    out = rng.random((n, m)) < sc.outlier_share
    mag = rng.uniform(*sc.outlier_m, (n, m))
    ang = rng.uniform(0.0, 2 * math.pi, (n, m))
    dx = noise[0] + bias[0] + np.where(out, mag * np.cos(ang), 0.0)
    dy = noise[1] + bias[1] + np.where(out, mag * np.sin(ang), 0.0)
    j = np.arange(m)[None, :]
    # fix j of a trail of k fixes was taken at ended_at - 2 s * (k - 1 - j)
    at = z.ended_at - FIX_INTERVAL_S * (nfix[:, None] - 1 - j)
    if sc.cached:
        nfix = rng.integers(3, m + 1, n)
        distinct = rng.integers(1, 3, n)
        src = np.minimum(j, distinct[:, None] - 1)  # later fixes repeat the last distinct
        rows = np.arange(n)[:, None]
        dx, dy = dx[rows, src], dy[rows, src]
        at = z.ended_at - FIX_INTERVAL_S * (distinct[:, None] - 1 - src)
    valid = j < nfix[:, None]
    fx = np.where(valid, truth.x[:, None] + dx, np.nan)
    fy = np.where(valid, truth.y[:, None] + dy, np.nan)
    lon, lat = (np.asarray(a, np.float64).reshape(n, m) for a in gcrs.unproject(fx, fy))
    lon[~valid] = np.nan
    lat[~valid] = np.nan
    quality = None
    if sc.quality is not None:
        quality = np.where(valid, QUALITIES.index(sc.quality), Q_NONE).astype(np.int8)
    batch = geofence.CheckBatch(
        lon=np.ascontiguousarray(lon),
        lat=np.ascontiguousarray(lat),
        accuracy_m=np.ascontiguousarray(np.where(valid, r[:, None], np.nan)),
        at=np.ascontiguousarray(np.where(valid, at, np.nan)),
        n_fixes=nfix.astype(np.int64),
        ended_at=np.full(n, z.ended_at),
        heading_deg=np.full(n, np.nan),  # no heading sent
        beacon_zone=np.full(n, -1, np.int64),  # no road stud heard
        operator=OPERATOR,
        quality=quality,
        device_class=np.zeros(n, np.int32),
        device_classes=(sc.device_class,),
    )
    return Trips(batch, fx, fy, nfix - 1)


def checks_of(b: geofence.CheckBatch, idx: Sequence[int]) -> list[geofence.Check]:
    """Trips ``idx`` of ``b`` as the Check objects a device's request becomes."""
    out = []
    for i in idx:
        k = int(b.n_fixes[i])
        fixes = tuple(
            geofence.Fix(
                lon=float(b.lon[i, j]),
                lat=float(b.lat[i, j]),
                accuracy_m=float(b.accuracy_m[i, j]),
                at=float(b.at[i, j]),
                quality=None if b.quality is None else QUALITIES[int(b.quality[i, j])],
            )
            for j in range(k)
        )
        out.append(
            geofence.Check(
                fixes=fixes,
                ended_at=float(b.ended_at[i]),
                operator=OPERATOR,
                device_class=b.device_classes[int(b.device_class[i])]
                if b.device_class is not None
                else None,
            )
        )
    return out
