"""``/v1/zones``: the active zone set's zones as GeoJSON (any role)."""

from __future__ import annotations

import hashlib
import math
import threading
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import APIRouter, Path, Query, Request
from pyproj import Geod
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.auth import any_role
from api.downloads import GzipCache, cacheable
from api.errors import Problem
from api.models import NOT_MODIFIED, NearestCollection, ZoneCollection, ZoneFeature, problems
from api.paging import cursor_problem, decode_cursor, encode_cursor, next_link, page_headers
from api.responses import GeoJSONResponse, dumps
from api.routes import ready_state
from geofence import crs as gcrs

__all__ = ["router"]

router = APIRouter(prefix="/v1/zones", tags=["zones"])

_GEOD = Geod(ellps="WGS84")

CRS = Literal["wgs84", "cgcs2000", "gcj02", "bd09"]


def _bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise Problem(
            422,
            "validation",
            "bbox must be four finite numbers: minlon,minlat,maxlon,maxlat",
            errors=[{"pointer": "query:bbox", "type": "bbox", "message": f"got {text!r}"}],
        )
    x0, y0, x1, y1 = vals
    if x0 > x1 or y0 > y1 or abs(y0) > 90 or abs(y1) > 90 or abs(x0) > 180 or abs(x1) > 180:
        raise Problem(
            422,
            "validation",
            "bbox must be minlon,minlat,maxlon,maxlat with min <= max, within ±180/±90",
            errors=[{"pointer": "query:bbox", "type": "bbox", "message": f"got {text!r}"}],
        )
    return x0, y0, x1, y1


@router.get(
    "",
    response_model=ZoneCollection,
    response_class=GeoJSONResponse,
    responses={**problems(409, 422, 503), **NOT_MODIFIED},
    summary="Zones of the active set in a bounding box (GeoJSON FeatureCollection), paged",
)
async def list_zones(
    request: Request,
    who: any_role,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat (WGS-84); zones whose bounds intersect it",
            examples=["113.54,22.26,113.56,22.28"],
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=100_000, description="Features per page (at most 10,000)")
    ] = 1000,
    cursor: Annotated[
        str | None, Query(max_length=200, description="The 'next' link's cursor of a page")
    ] = None,
) -> Response:
    """Pages in the zone set's order; the cursor pins the zone-set version, so a page
    after an activation answers 409 ``stale-cursor`` (start again) rather than mix two
    versions. ``numberMatched`` counts every page, ``next`` links the next one (also
    in ``Link``). Answers carry an ``ETag`` (304 on ``If-None-Match``) and are gzipped
    when the client accepts it."""
    st = ready_state(request)
    active = st.active
    zs = active.zone_set
    limit = min(limit, st.settings.zones_page_limit)
    b = active.bounds
    if bbox is not None:
        x0, y0, x1, y1 = _bbox(bbox)
        hit = np.flatnonzero((b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0))
    else:
        hit = np.arange(len(zs))
    rest = hit
    if cursor is not None:
        version, after = decode_cursor(cursor, "zones", 2)
        if version != active.version:
            raise Problem(
                409,
                "stale-cursor",
                f"the cursor is of zone set version {version}; version {active.version} is "
                "active now: start again without a cursor",
            )
        if type(after) is not int:
            raise cursor_problem()
        rest = hit[hit > after]
    shown = rest[:limit]
    more = len(rest) > limit
    link = (
        next_link(request, encode_cursor("zones", active.version, int(shown[-1]))) if more else None
    )

    features = _FEATURES.get(id(zs))
    if features is None or features[0] is not zs:
        features = await run_in_threadpool(_feature_texts, zs)
    head = dumps(
        {
            "type": "FeatureCollection",
            "zone_set_version": active.version,
            "numberMatched": len(hit),
            "numberReturned": len(shown),
            "next": link,
        }
    )
    texts = features[1]

    async def body() -> bytes:
        return b"".join((head[:-1], b',"features":[', b",".join([texts[i] for i in shown]), b"]}"))

    # The page is a function of the zone set (its version and checksum) and the zones
    # shown (and its head): an ETag from those, not a SHA-256 over up to
    # 4 MB of answer on the event loop for every request (four clients looping the
    # world put an honest check's p99 at 87 ms with it); a current copy's 304 then
    # joins nothing.
    tag = hashlib.blake2b(shown.astype(np.int64).tobytes(), digest_size=12)
    tag.update(head)
    etag = f'"zones-{active.version}-{zs.checksum[:12]}-{tag.hexdigest()}"'
    return await cacheable(
        request,
        body,
        media_type="application/geo+json",
        etag=etag,
        gzipped=_PAGES_GZIP.compressor(etag),
        headers=page_headers(link),
    )


#: the gzip of the pages asked for most recently (a map or a client looping the same
#: pages compresses each once; 16 world pages of 10,000 zones take ~10 MB)
_PAGES_GZIP = GzipCache(16, level=1)


#: the active zone set's features as JSON, built once per zone set (in a worker thread):
#: a page of 10,000 is then a join of bytes (building the dicts for each request held
#: the GIL 0.5 s a page and stalled every check, in a worker thread or not)
_FEATURES: dict[int, tuple[Any, list[bytes]]] = {}
_BUILDING = threading.Lock()


def _feature_texts(zs: Any) -> tuple[Any, list[bytes]]:
    """``(zs, its features' JSON)``, built once: concurrent first requests wait for the
    one build (a thread waiting on the lock does not hold the GIL)."""
    with _BUILDING:
        hit = _FEATURES.get(id(zs))
        if hit is None or hit[0] is not zs:
            hit = (zs, [dumps(zs.feature(i)) for i in range(len(zs))])
            zs.checksum  # noqa: B018 (computed here once, off the event loop: the ETags')
            _FEATURES.clear()
            _FEATURES[id(zs)] = hit
        return hit


@router.get(
    "/nearest",
    response_model=NearestCollection,
    response_class=GeoJSONResponse,
    responses=problems(422, 503),
    summary="The k zones nearest a point, with distance and bearing (GeoJSON)",
)
async def nearest_zones(
    request: Request,
    who: any_role,
    lon: Annotated[float, Query(ge=-180, le=180, examples=[113.5763])],
    lat: Annotated[float, Query(ge=-90, le=90, examples=[22.2709])],
    k: Annotated[int, Query(ge=1, le=100)] = 5,
    crs: Annotated[CRS, Query(description="CRS of lon/lat")] = "wgs84",
    max_distance_m: Annotated[float, Query(gt=0, le=50_000)] = 500.0,
    fenced: Annotated[bool | None, Query(description="Only fenced boxes (true)")] = None,
) -> GeoJSONResponse:
    st = ready_state(request)
    active = st.active
    zs = active.zone_set
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise Problem(422, "validation", "lon and lat must be finite numbers")
    wlon, wlat = gcrs.to_wgs84(np.array([lon]), np.array([lat]), crs)
    mask = None
    if fenced:
        mask = np.array(zs.fenced, dtype=bool)  # a writable copy (numba types read-only apart)
    pos, dist = active.index.nearest(wlon, wlat, k=k, max_distance_m=max_distance_m, mask=mask)
    x, y = gcrs.project(wlon, wlat)
    point = shapely.Point(float(x[0]), float(y[0]))
    features: list[dict[str, Any]] = []
    for p, d in zip(pos[0].tolist(), dist[0].tolist(), strict=True):
        if p < 0:
            break
        feat = zs.feature(p)
        if d > 0:
            near = shapely.shortest_line(point, zs.geometry_m[p]).coords[1]
            nlon, nlat = gcrs.unproject(np.array([near[0]]), np.array([near[1]]))
            az, _, _ = _GEOD.inv(float(wlon[0]), float(wlat[0]), float(nlon[0]), float(nlat[0]))
            bearing: float | None = round(az % 360.0, 2)
        else:
            bearing = None
        feat["properties"] |= {"distance_m": round(float(d), 3), "bearing_deg": bearing}
        features.append(feat)
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "zone_set_version": active.version,
            "query": {"lon": lon, "lat": lat, "crs": crs, "wgs84": [wlon[0], wlat[0]]},
            "features": features,
        }
    )


@router.get(
    "/{zone_id}",
    response_model=ZoneFeature,
    response_class=GeoJSONResponse,
    responses=problems(404, 422, 503),
    summary="One zone of the active set (GeoJSON Feature)",
)
async def get_zone(
    request: Request,
    who: any_role,
    zone_id: Annotated[str, Path(max_length=256, examples=["ZH-XZ-004211"])],
) -> GeoJSONResponse:
    st = ready_state(request)
    active = st.active
    pos = active.zone_set.position.get(zone_id)
    if pos is None:
        raise Problem(404, "not-found", f"no zone {zone_id!r} in zone set version {active.version}")
    feat = active.zone_set.feature(pos)
    feat["properties"]["zone_set_version"] = active.version
    return GeoJSONResponse(feat)
