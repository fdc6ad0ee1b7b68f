"""The city's zones in the mobility standards, served live: MDS 2.0 Geography and GBFS.

``GET /mds/geographies`` (also as the flat file ``/mds/geographies.json``) and
``GET /mds/geographies/{geography_id}`` answer as the
official MDS 2.0 reference defines them (``zones/schemas/mds-2.0/reference/
geography.yaml``): the ``application/vnd.mds+json;version=2.0`` media type (the version
is a parameter of it, as MDS's Versioning section asks), 406 when the ``Accept`` header
asks for MDS in another or no version, 404 for an unknown id, 400 for one that is not a
UUID, errors in the MDS error shape (``error``, ``error_description``,
``error_details``). The geographies are derived from the store's activation history
(``zones.export.mds.build_geographies``): nothing extra is persisted, and every process
derives the same ids.

``GET /gbfs/{3.0|2.3}/{feed}.json`` serves the five files of a GBFS feed
(``zones.export.gbfs``) for the zone set this process decides with: ``last_updated`` is
that version's activation (or the latest zone window opening or closing since),
``ttl`` from ``GEOFENCE_FEED_TTL_SECONDS``, a strong ``ETag`` (SHA-256 of the bytes;
``If-None-Match`` answers 304) and ``Cache-Control: public, max-age=ttl``. Both
standards' documents are gzipped when the client accepts it (compressed once per
document: :mod:`api.downloads`).

Who may read them: everyone, without a key. The MDS Geography text says "This endpoint
should be made public. Authorization is not required", and GBFS feeds exist to be read
by any trip planner; both carry only what the city publishes anyway (the zones, no
decision, no operator data). The answers are built once per activation and cached as
bytes, so an anonymous reader costs a dictionary look-up; rate limits, if wanted, belong
to the reverse proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.downloads import GzipCache, cacheable
from api.errors import Problem
from api.models import GbfsFile, problems
from api.routes import app_state, ready_state
from zones.export._common import read_zones
from zones.export.gbfs import FEEDS, STATUS_MAX_TTL, VERSIONS, build_feeds
from zones.export.mds import (
    MEDIA_TYPE,
    Publication,
    build_geographies,
    geographies_document,
    geography_document,
)

__all__ = ["router"]

router = APIRouter(tags=["standards (public)"])
log = logging.getLogger("geofence.api")


@dataclass
class _Parsed:
    zones: list[Any]
    geoms: Any
    bounds: list[datetime]  # every active_from / active_to, sorted


@dataclass
class _Cache:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # MDS builds
    gbfs_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    parsed: dict[int, _Parsed] = field(default_factory=dict)
    mds_key: Any = None
    mds_list: bytes = b""
    mds_etag: str = ""
    mds_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    gbfs: dict[Any, dict[str, tuple[bytes, str]]] = field(default_factory=dict)
    gzip: GzipCache = field(default_factory=lambda: GzipCache(16))  # issue 15: gzip answers


def _cache(request: Request) -> _Cache:
    c = getattr(request.app.state, "standards", None)
    if c is None:
        c = request.app.state.standards = _Cache()
    return c


def _store(request: Request) -> Any:
    st = app_state(request)
    if st.store is None:
        raise Problem(503, "not-ready", "the service is starting", headers={"Retry-After": "1"})
    return st.store


def _parse(cache: _Cache, store: Any, version: int) -> _Parsed:
    """A stored version's zones, parsed once (a stored version never changes)."""
    got = cache.parsed.get(version)
    if got is None:
        doc = store.zone_set_document(version)
        _, zones, geoms = read_zones(orjson.loads(doc))
        bounds = sorted(t for z in zones for t in (z.active_from, z.active_to) if t is not None)
        got = cache.parsed[version] = _Parsed(zones, geoms, bounds)
    return got


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


# --------------------------------------------------------------------------- MDS


def _mds_error(status: int, error: str, description: str, details: list[str]) -> Response:
    body = {"error": error, "error_description": description, "error_details": details}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _mds_acceptable(accept: str | None) -> bool:
    """MDS Versioning: a client asking ``application/vnd.mds+json`` must name a version,
    and we serve 2.0; any other acceptable type (``application/json``, ``*/*``, none)
    gets 2.0 as well."""
    if not accept:
        return True
    ok = False
    for part in accept.split(","):
        mtype, *params = (p.strip() for p in part.split(";"))
        args = dict(p.split("=", 1) for p in params if "=" in p)
        args = {k.strip().lower(): v.strip().strip('"') for k, v in args.items()}
        if args.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        mtype = mtype.lower()
        if mtype == "application/vnd.mds+json":
            ok = ok or args.get("version") == "2.0"
        elif mtype in ("application/json", "application/*", "*/*"):
            ok = True
    return ok


async def _mds(request: Request) -> _Cache:
    """The geographies of the activation history, rebuilt when it grew."""
    store = _store(request)
    cache = _cache(request)
    history = await run_in_threadpool(store.activation_history)
    if not history:
        raise Problem(404, "not-found", "no zone set has been activated: no geographies")
    key = (len(history), history[-1][0])
    if cache.mds_key == key:
        return cache
    async with cache.lock:
        if cache.mds_key != key:
            system_id = app_state(request).settings.feed_system_id

            def build() -> None:
                pubs = []
                for _, version, at in history:
                    p = _parse(cache, store, version)
                    pubs.append(Publication(at, p.zones, p.geoms))
                geos = build_geographies(pubs, system_id)
                body = orjson.dumps(geographies_document(geos, history[-1][2]))
                cache.mds_by_id = {g["geography_id"]: g for g in geos}
                cache.mds_list, cache.mds_etag = body, _etag(body)
                cache.mds_key = key

            await run_in_threadpool(build)
    return cache


_MDS_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/MdsError"}}}
_MDS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/MdsDocument"}}},
        "description": "MDS 2.0 (official reference)",
    },
    304: {"description": "Not modified (If-None-Match)"},
    404: {"description": "Not found (MDS error object)", "content": _MDS_ERROR},
    406: {
        "description": "MDS version in Accept header is unsupported or invalid",
        "content": _MDS_ERROR,
    },
    503: problems(503)[503],
}


@router.get(
    "/mds/geographies",
    response_class=Response,
    responses=_MDS_RESPONSES,
    summary="MDS 2.0 Geography: every geography ever published, retired ones too (public)",
)
@router.get(
    "/mds/geographies.json",
    operation_id="mds_geographies_json",
    response_class=Response,
    responses=_MDS_RESPONSES,
    summary="MDS 2.0 Geography: the same as the flat file geographies.json (public)",
)
async def mds_geographies(request: Request) -> Response:
    if not _mds_acceptable(request.headers.get("accept")):
        return _mds_error(406, "unsupported_version", "this API serves MDS 2.0", ["Accept"])
    try:
        cache = await _mds(request)
    except Problem as exc:
        if exc.status != 404:
            raise
        return _mds_error(404, "not_found", exc.detail, [])
    return await cacheable(
        request,
        cache.mds_list,
        media_type=MEDIA_TYPE,
        etag=cache.mds_etag,
        headers={"Vary": "Accept"},
        gzipped=cache.gzip.compressor(("mds", cache.mds_etag)),
    )


@router.get(
    "/mds/geographies/{geography_id}",
    response_class=Response,
    responses={
        **_MDS_RESPONSES,
        400: {"description": "geography_id is not a UUID", "content": _MDS_ERROR},
        **problems(422),
    },
    summary="MDS 2.0 Geography: one geography by its UUID (public)",
)
async def mds_geography(
    request: Request,
    geography_id: Annotated[
        str, Path(max_length=64, examples=["3c9604d6-b5ee-11e8-96f8-529269fb1459"])
    ],
) -> Response:
    if not _mds_acceptable(request.headers.get("accept")):
        return _mds_error(406, "unsupported_version", "this API serves MDS 2.0", ["Accept"])
    try:
        gid = str(uuid.UUID(geography_id))
    except ValueError:
        return _mds_error(
            400, "bad_param", "geography_id is not a UUID", [f"geography_id: {geography_id!r}"]
        )
    try:
        cache = await _mds(request)
    except Problem as exc:
        if exc.status != 404:
            raise
        return _mds_error(404, "not_found", exc.detail, [])
    geo = cache.mds_by_id.get(gid)
    if geo is None:
        return _mds_error(404, "not_found", "no geography with this id", [f"geography_id: {gid}"])
    return Response(orjson.dumps(geography_document(geo)), media_type=MEDIA_TYPE)


# --------------------------------------------------------------------------- GBFS


def _last_updated(activated: datetime, parsed: _Parsed, now: datetime) -> datetime:
    """When the feed's data last changed: the activation, or a later zone window bound."""
    past = [t for t in parsed.bounds if activated < t <= now]
    return max(past) if past else activated


@router.get(
    "/gbfs/{version}/{feed}.json",
    summary="GBFS 3.0 / 2.3 feeds of the active zone set (public; start at gbfs.json)",
    response_model=GbfsFile,
    responses={304: {"description": "Not modified (If-None-Match)"}, **problems(404, 422, 503)},
)
async def gbfs_feed(
    request: Request,
    version: Annotated[str, Path(examples=["3.0"], description="3.0 or 2.3")],
    feed: Annotated[str, Path(examples=["gbfs"], description=", ".join(FEEDS))],
) -> Response:
    if version not in VERSIONS:
        raise Problem(404, "not-found", f"GBFS versions served: {', '.join(VERSIONS)}")
    if feed not in FEEDS:
        raise Problem(404, "not-found", f"GBFS {version} files served: {', '.join(FEEDS)}")
    st = ready_state(request)
    store = _store(request)
    cache = _cache(request)
    active = st.active.version
    settings = st.settings
    base = settings.feed_base_url or str(request.base_url)
    base_url = f"{base.rstrip('/')}/gbfs/{version}/"
    now = datetime.now(UTC)
    history = await run_in_threadpool(store.activation_history)
    activated = max((at for _, v, at in history if v == active), default=now)
    async with cache.gbfs_lock:
        parsed = await run_in_threadpool(_parse, cache, store, active)
        last = _last_updated(activated, parsed, now)
        key = (version, active, base_url, last)
        docs = cache.gbfs.get(key)
        if docs is None:
            from zones.districts import service_area

            for warning in settings.feed_meta().warnings():  # once per build
                log.warning("GBFS feed: %s", warning)
            built = await run_in_threadpool(
                lambda: build_feeds(
                    parsed.zones,
                    parsed.geoms,
                    version=version,
                    meta=settings.feed_meta(),
                    now=now,
                    last_updated=last,
                    ttl=settings.feed_ttl_seconds,
                    base_url=base_url,
                    service_area=service_area(),
                )
            )
            docs = {}
            for name, doc in built.items():
                body = orjson.dumps(doc)
                docs[name] = (body, _etag(body))
            cache.gbfs = {k: v for k, v in cache.gbfs.items() if k[1] == active}
            cache.gbfs[key] = docs
    body, etag = docs[feed]
    ttl = settings.feed_ttl_seconds
    if feed == "station_status":
        ttl = min(ttl, STATUS_MAX_TTL)
    return await cacheable(
        request,
        body,
        media_type="application/json",
        etag=etag,
        last_modified=last,
        cache_control=f"public, max-age={ttl}",
        gzipped=cache.gzip.compressor((key, feed)),
    )
