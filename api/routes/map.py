"""The city map: ``GET /map`` (public page) and the routes it reads.

The page (``api/static/map/``) draws with Leaflet, vendored under
``api/static/vendor/leaflet/`` (no CDN, no tiles: the service runs offline); its base
layer is ``/map/districts.geojson``. The data routes take a key like every ``/v1``
route (the page asks for an admin key once and keeps it in ``localStorage``):

- ``GET /v1/zones/density?bbox&cell_deg`` (any role): zones per grid cell, for low zooms
- ``GET /v1/zones/{id}/stats?days`` (admin): a zone's checks and in-box rate
- ``GET /v1/checks/recent?since&limit`` (admin): the newest decisions, as points
- ``GET /v1/stats/hotspots?from&to&radius_m&min_count`` (admin): clusters of
  rejected trip ends and a proposed box for each (GeoJSON)
- ``GET /v1/stats/series?group_by&days`` (admin): in-box rate per operator or
  district and day

``first`` holds ``/v1/checks/recent`` and ``/v1/zones/density``: it is included
before the ``checks`` and ``zones`` routers, whose ``/v1/checks/{check_id}`` and
``/v1/zones/{zone_id}`` would otherwise take ``recent`` and ``density`` for ids.
:func:`install` adds the rest after every other route (the hot ``POST /v1/checks``
is matched without trying them first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from api.auth import admin, any_role
from api.errors import Problem
from api.models import (
    Density,
    FeatureCollection,
    Hotspots,
    QueryTime,
    RecentChecks,
    StatsSeries,
    ZoneStats,
    problems,
)
from api.operations import hotspots as hs
from api.operations import mapdata
from api.paging import encode_cursor, next_link, page_headers, time_cursor
from api.responses import GeoJSONResponse, JSONResponse
from api.routes import app_state, ready_state
from api.routes.zones import _bbox

__all__ = ["STATIC_DIR", "first", "install", "router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

first = APIRouter()
router = APIRouter()


def _store(request: Request):  # -> api.storage.Store
    st = app_state(request)
    if st.store is None:
        raise Problem(503, "not-ready", "the service is starting")
    return st.store


# ---------------------------------------------------------------------------- the page
@router.get("/map", include_in_schema=False)
async def map_page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "map" / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get(
    "/map/districts.geojson",
    tags=["map"],
    response_model=FeatureCollection,
    response_class=GeoJSONResponse,
    summary="Zhuhai's district outlines, WGS-84 (the map's base layer; public)",
)
async def districts() -> Response:
    body = await run_in_threadpool(mapdata.districts_geojson)
    return Response(
        body,
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


# ---------------------------------------------------------------------------- zones
@first.get(
    "/v1/zones/density",
    tags=["zones"],
    response_model=Density,
    responses=problems(422, 503),
    summary="Zones of the active set per grid cell (fenced, unfenced, no-parking)",
)
async def zone_density(
    request: Request,
    who: any_role,
    bbox: Annotated[
        str,
        Query(
            description="minlon,minlat,maxlon,maxlat (WGS-84)",
            examples=["113.0,21.8,114.4,22.6"],
        ),
    ],
    cell_deg: Annotated[
        float, Query(gt=0, le=1, description="Cell size in degrees (coarsened past 20,000 cells)")
    ] = 0.01,
) -> JSONResponse:
    st = ready_state(request)
    result = await run_in_threadpool(mapdata.density, st.active, _bbox(bbox), cell_deg)
    return JSONResponse(result)


@router.get(
    "/v1/zones/{zone_id}/stats",
    tags=["zones"],
    response_model=ZoneStats,
    responses=problems(404, 422, 503),
    summary="A zone's checks, outcomes and in-box rate over the last days",
)
async def zone_stats(
    request: Request,
    who: admin,
    zone_id: str,
    days: Annotated[float, Query(gt=0, le=366, description="Days back from now")] = 7,
) -> JSONResponse:
    st = ready_state(request)
    pos = st.active.zone_set.position.get(zone_id)
    if pos is None:
        raise Problem(
            404, "not-found", f"no zone {zone_id!r} in zone set version {st.active.version}"
        )
    result = await run_in_threadpool(mapdata.zone_stats, st.store, zone_id, days)
    props = st.active.zone_set.properties(pos)
    result["zone"] = {"id": zone_id, "zone_set_version": st.active.version, **props}
    return JSONResponse(result)


# ---------------------------------------------------------------------------- checks
@first.get(
    "/v1/checks/recent",
    tags=["checks"],
    response_model=RecentChecks,
    responses=problems(422, 503),
    summary="The newest decisions as points (fused position, outcome, operator), paged",
)
async def recent_checks(
    request: Request,
    who: admin,
    since: Annotated[
        QueryTime | None,
        Query(description="RFC 3339: only checks decided at or after this time"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[
        str | None, Query(max_length=200, description="The 'next' link's cursor of a page")
    ] = None,
) -> JSONResponse:
    store = _store(request)
    before = None if cursor is None else time_cursor(cursor, "recent")
    result = await run_in_threadpool(mapdata.recent_checks, store, since, limit + 1, before)
    page = result["checks"]
    more = len(page) > limit
    del page[limit:]
    link = None
    if more:
        link = next_link(
            request, encode_cursor("recent", page[-1]["decided_at"], page[-1]["check_id"])
        )
    result["next"] = link
    return JSONResponse(result, headers=page_headers(link))


# ---------------------------------------------------------------------------- stats
@router.get(
    "/v1/stats/hotspots",
    tags=["stats"],
    response_model=Hotspots,
    response_class=GeoJSONResponse,
    responses=problems(422, 503),
    summary="Clusters of rejected trip ends, and a proposed box for each (GeoJSON)",
)
async def hotspots(
    request: Request,
    who: admin,
    from_: Annotated[
        QueryTime | None,
        Query(alias="from", description="RFC 3339, inclusive (default: 7 days before 'to')"),
    ] = None,
    to: Annotated[QueryTime | None, Query(description="RFC 3339, exclusive (default: now)")] = None,
    radius_m: Annotated[
        float, Query(gt=0, le=500, description="DBSCAN radius between trip ends (metres)")
    ] = 15.0,
    min_count: Annotated[
        int, Query(ge=2, le=1_000_000, description="Trip ends within the radius of a core")
    ] = 10,
) -> GeoJSONResponse:
    st = ready_state(request)
    if from_ is not None and to is not None and from_ >= to:
        raise Problem(422, "validation", "'from' must be before 'to'")
    s = st.settings
    limits = hs.Limits(
        s.hotspot_max_days, s.hotspot_max_rejects, s.hotspot_radius_min_m, s.hotspot_radius_max_m
    )
    try:
        found = await run_in_threadpool(
            hs.find_hotspots,
            st.store,
            st.active.index,
            since=from_,
            until=to,
            radius_m=radius_m,
            min_count=min_count,
            limits=limits,
        )
    except hs.HotspotLimitError as exc:
        raise Problem(
            422,
            "validation",
            str(exc),
            errors=[{"pointer": f"query:{exc.parameter}", "type": "limit", "message": str(exc)}],
        ) from None
    return GeoJSONResponse(found.geojson())


@router.get(
    "/v1/stats/series",
    tags=["stats"],
    response_model=StatsSeries,
    responses=problems(422, 503),
    summary="In-box rate per operator or district and per day (China Standard Time)",
)
async def stats_series(
    request: Request,
    who: admin,
    group_by: Literal["operator", "district"] = "operator",
    days: Annotated[int, Query(ge=1, le=366)] = 14,
) -> JSONResponse:
    store = _store(request)
    return JSONResponse(await run_in_threadpool(mapdata.series, store, group_by, days))


def install(app: FastAPI) -> None:
    """Register the page, its static files and the other data routes on ``app``
    (after the others; ``first`` goes before ``checks`` and ``zones``)."""
    app.include_router(router)
    app.mount("/map/static", StaticFiles(directory=STATIC_DIR), name="map-static")
