"""``/v1/zone-sets``: upload, list and activate zone-set versions (admin).

An upload is validated (``zones.validate``) and stored as a new, inactive version.
Activation builds the new index in a worker thread while requests keep flowing on
the old one, records the new active version, then swaps the reference; rollback is
activating an older version.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import bounds
from api.auth import admin
from api.downloads import GzipCache, cacheable
from api.errors import Problem, capped
from api.models import (
    NOT_MODIFIED,
    Activation,
    ActiveZoneSet,
    ZoneSetCreated,
    ZoneSetDocument,
    ZoneSetInfo,
    ZoneSetPage,
    problems,
)
from api.paging import cursor_problem, decode_cursor, encode_cursor, next_link, page_headers
from api.responses import GeoJSONResponse, JSONResponse, dumps
from api.routes import ready_state, store_of
from api.routes.versions import one_version, upload_media_type
from api.service import build_active, store_zone_set
from geofence.errors import ZoneDataError

__all__ = ["router"]

router = APIRouter(prefix="/v1/zone-sets", tags=["zone sets"])

Version = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[3])]

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "A GeoJSON FeatureCollection of zones (DESIGN §3), WGS-84",
        "content": {
            "application/geo+json": {"schema": {"$ref": "#/components/schemas/ZoneSetDocument"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/ZoneSetDocument"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=ZoneSetCreated,
    responses=problems(400, 413, 415, 422, 503),
    openapi_extra=_UPLOAD_BODY,
    summary="Upload a zone set: validated, stored as a new inactive version",
)
async def upload_zone_set(
    request: Request,
    who: admin,
    source: Annotated[
        str | None,
        Query(max_length=500, description="Where the file came from (default: its metadata)"),
    ] = None,
) -> JSONResponse:
    store = store_of(request)
    upload_media_type(request, "application/geo+json", "application/json")
    raw = await request.body()
    s = request.app.state.geofence.settings
    limits = bounds.zone_set_bounds(
        s.zone_set_zones_max, s.zone_set_vertices_max, s.zone_vertices_max
    )
    bounds.check(raw, limits)
    try:
        info, report, _ = await run_in_threadpool(
            store_zone_set, store, raw, source=source, actor=who.key_id, limits=s.zone_limits()
        )
    except ZoneDataError as exc:
        raise Problem(
            422,
            "invalid-zone-set",
            f"the engine refused the zone set: {exc}",
            errors=[{"feature": exc.feature_id, "rule": exc.rule, "message": str(exc)}],
        ) from None
    if info is None:
        if report.rules() == {"not-json"}:
            raise Problem(400, "malformed-json", report.errors[0].message)
        errs = report.errors
        cap = s.max_problem_errors
        raise Problem(
            422,
            "invalid-zone-set",
            f"{len(errs)} error(s) in {report.n_features} feature(s); nothing was stored",
            errors=[i.to_dict() for i in errs[:cap]],
            extra={"report": _capped_report(report.to_dict(), cap)}
            | ({"errors_omitted": len(errs) - cap} if len(errs) > cap else {}),
        )
    created = info.to_dict(with_report=True)
    if isinstance(created.get("report"), dict):
        created["report"] = _capped_report(created["report"], s.max_problem_errors)
    return JSONResponse(
        created,
        status_code=201,
        headers={"Location": f"/v1/zone-sets/{info.version}"},
    )


def _capped_report(report: dict[str, Any], cap: int) -> dict[str, Any]:
    """The report with at most ``cap`` issues (the rest counted in ``issues_omitted``)."""
    issues, omitted = capped(report.get("issues") or [], cap)
    return report | {"issues": issues, "issues_omitted": omitted} if omitted else report


@router.get(
    "",
    response_model=ZoneSetPage,
    responses=problems(422, 503),
    summary="Stored versions, newest first, and the active one (paged)",
)
async def list_zone_sets(
    request: Request,
    who: admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Versions per page")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=200, description="The 'next' link's cursor of a page")
    ] = None,
) -> Response:
    """Newest first, by version (an upload meanwhile goes on top: no gap, no repeat)."""
    store = store_of(request)
    before = None
    if cursor is not None:
        (before,) = decode_cursor(cursor, "zone-sets", 1)
        if type(before) is not int:
            raise cursor_problem()
    infos = await run_in_threadpool(store.zone_sets, before=before, limit=limit + 1)
    active = await run_in_threadpool(store.active_version)
    page = infos[:limit]
    more = len(infos) > limit
    link = next_link(request, encode_cursor("zone-sets", page[-1].version)) if more else None
    return await cacheable(
        request,
        dumps({"active": active, "zone_sets": [i.to_dict() for i in page], "next": link}),
        media_type="application/json",
        cache_control="private, no-cache",
        headers=page_headers(link),
    )


@router.get(
    "/active",
    response_model=ActiveZoneSet,
    responses=problems(503),
    summary="The active version (the one this server decides with)",
)
async def active_zone_set(request: Request, who: admin) -> JSONResponse:
    st = ready_state(request)
    info = await run_in_threadpool(st.store.zone_set, st.active.version)
    d = info.to_dict()
    d["active"] = True
    d["build_seconds"] = round(st.active.build_seconds, 4)
    return JSONResponse(d)


@router.get(
    "/{version}",
    response_model=ZoneSetInfo,
    responses=problems(404, 422, 503),
    summary="One version's metadata and validation report",
)
async def get_zone_set(request: Request, who: admin, version: Version) -> JSONResponse:
    info = await one_version(store_of(request).zone_set, version, "zone set")
    return JSONResponse(info.to_dict(with_report=True))


@router.get(
    "/{version}/geojson",
    response_model=ZoneSetDocument,
    response_class=GeoJSONResponse,
    responses={**problems(404, 422, 503), **NOT_MODIFIED},
    summary="One version's FeatureCollection, as stored (ETag, Last-Modified, gzip)",
)
async def get_zone_set_geojson(request: Request, who: admin, version: Version) -> Response:
    """A stored version never changes: its ``ETag`` is its version and checksum, its
    ``Last-Modified`` its upload; ``If-None-Match`` / ``If-Modified-Since`` answer 304
    without reading the document, and its gzip is made once and kept."""
    store = store_of(request)
    info = await one_version(store.zone_set, version, "zone set")

    async def document() -> bytes:
        doc = await run_in_threadpool(store.zone_set_document, version)
        return doc.encode("utf-8")

    gz = getattr(request.app.state, "zone_set_gzip", None)
    if gz is None:
        gz = request.app.state.zone_set_gzip = GzipCache(2)
    return await cacheable(
        request,
        document,
        media_type="application/geo+json",
        etag=f'"zs-{version}-{info.checksum[:32]}"',
        last_modified=info.created_at,
        cache_control="private, no-cache",
        gzipped=gz.compressor((str(store.engine.url), version)),
    )


@router.post(
    "/{version}/activate",
    response_model=Activation,
    responses=problems(404, 422, 503),
    summary="Make a version active: build its index, then swap atomically (also rollback)",
)
async def activate_zone_set(request: Request, who: admin, version: Version) -> JSONResponse:
    st = ready_state(request)
    async with st.swap_lock:
        info = await one_version(st.store.zone_set, version, "zone set")
        if st.active.version == version:
            new = st.active
        else:
            old = st.active
            new = await run_in_threadpool(
                build_active, st.store, version, old.policy, policy_version=old.policy_version
            )
        previous = await run_in_threadpool(st.store.activate, version, actor=who.key_id)
        st.set_active(new)
        st.metrics.activations.inc()
    request.state.zone_set_version = version
    d = info.to_dict()
    d["active"] = True
    return JSONResponse(
        {
            "active": version,
            "previous": previous,
            "build_seconds": round(new.build_seconds, 4),
            "zone_set": d,
        }
    )
