"""The app factory: ``create_app(settings) -> FastAPI``.

The lifespan opens the store (creating or migrating the schema), then, in the
background so that ``/healthz`` answers at once, seeds an empty database from the
bundled zone set (and a store without policy versions from ``GEOFENCE_POLICY``), loads
the active zone-set version into a :class:`geofence.ZoneIndex` with the active policy,
warms the compiled kernels, and only then turns ``/readyz`` ready. Until then the
``/v1`` routes answer 503. A poller re-reads both active versions (one query) every
``active_poll_seconds`` (0.5 s) so that every process sharing the database (the
workers of ``geofence serve --workers N``, servers on other hosts) follows an
activation made through any one of them: it builds the new index (or reads the new
policy) off the event loop while it keeps serving the old one, then swaps. Polling
rather than PostgreSQL's LISTEN/NOTIFY: the same on SQLite, nothing lost across a
reconnection or a failover, no connection held per process, and one read of two
primary keys per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.audit import AuditWriter
from api.auth import KeyCache
from api.habits import (
    CORS_EXPOSED_HEADERS,
    CORS_REQUEST_HEADERS,
    HabitsMiddleware,
    decode_body,
    reject_unknown_query,
    unknown_query_problem,
)
from api.metrics import AccessLog, Metrics, MetricsMiddleware
from api.openapi import build as build_openapi
from api.openapi import operation_id
from api.responses import JSONResponse
from api.service import Active, Districts, build_active, load_policy, seed, seed_policy
from api.settings import Settings
from api.storage import Store

__all__ = ["AppState", "BodyLimitMiddleware", "HotRoutes", "create_app", "create_app_from_env"]

log = logging.getLogger("geofence.api")

DESCRIPTION = """\
Park-in-box settlement decisions for Zhuhai's shared bikes, the city's versioned
zone sets and decision policies, and the audit log of every decision.

Every `/v1` route takes an `X-API-Key` header. Operator keys post checks and read
their own; admin keys (the city) upload and activate zone sets and policies and read
statistics.
Each operation states the role it needs (`x-role`; public routes have `security: []`).
Errors are RFC 9457 problem documents (`application/problem+json`, schema `Problem`);
each `type` links to a page that explains it (`/problems/{type}`). Request bodies
are limited to `GEOFENCE_MAX_BODY_BYTES` (64 MiB by default, 413 beyond) and a batch
to `GEOFENCE_BATCH_LIMIT` checks (10,000; 413 beyond).

Interactive docs: `/docs` (Swagger UI, served by this server: it works offline).
"""


class AppState:
    """Everything the routes read, in ``app.state.geofence``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store: Store | None = None
        self.writer: AuditWriter | None = None
        self.active: Active | None = None
        self.districts: Districts | None = None
        self.keys: KeyCache | None = None
        self.swap_lock = asyncio.Lock()
        self.load_error: BaseException | None = None
        self.started_at = time.time()
        self.ready_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.active is not None and self.writer is not None and self.writer.alive

    def set_active(self, active: Active) -> None:
        """Swap the active index (one reference assignment: atomic for readers).

        Then, with ``gc_freeze``, the objects alive now (the index: hundreds of
        thousands of them) leave the cyclic garbage collector's care: a full
        collection otherwise walks them all, a 50-170 ms pause (measured) that every
        request in flight would wait for. The index is freed by reference counting
        when it is swapped out.
        """
        self.active = active
        if self.settings.gc_freeze:
            gc.freeze()
        m = self.metrics
        m.active_version.set(active.version or 0)
        m.active_policy_version.set(active.policy_version or 0)
        m.zones.set(len(active.zone_set))
        m.build_seconds.set(active.build_seconds)


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with 413 (declared or streamed), and
    decodes ``Content-Encoding: gzip`` bodies (the limit then applies to the decoded
    size; another coding is 415: :func:`api.habits.decode_body`)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = encoding = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"content-encoding":
                encoding = value
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.limit:
                resp = errors.problem_response(
                    413,
                    "body-too-large",
                    f"the body is {size} bytes; the limit is {self.limit} "
                    "(GEOFENCE_MAX_BODY_BYTES)",
                    headers={"Connection": "close"},
                )
                await resp(scope, receive, send)
                return
        seen = 0
        limit = self.limit

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise errors.Problem(
                        413,
                        "body-too-large",
                        f"the body exceeds the limit of {limit} bytes (GEOFENCE_MAX_BODY_BYTES)",
                    )
            return message

        inner: Any = limited
        if encoding is not None:
            try:
                scope, inner = decode_body(scope, limited, encoding, limit)
            except errors.Problem as exc:
                resp = errors.problem_of(exc)
                assert resp is not None
                await resp(scope, receive, send)
                return
        await self.app(scope, inner, send)


class HotRoutes:
    """Serves the hot routes (``POST /v1/checks``, ``POST /v1/checks/batch``) without
    FastAPI's routing: a dictionary look-up on the path instead of matching every route,
    and none of the dependency-injection and exception-handling layers, which cost
    more than the rest of a bare request. Everything else goes to ``app``.

    It sits inside the metrics and body-limit middlewares (those still apply) and sets
    ``scope["route"]`` as the router would, so the metrics and the access log name the
    route template. The endpoints are the routes' own functions (they take the
    :class:`~starlette.requests.Request` only), so the OpenAPI document, the errors and
    the answers are the same; errors become problem documents as the app's handlers
    make them (:func:`api.errors.problem_of`), anything else goes up to the 500 handler.
    """

    def __init__(self, app: ASGIApp, routes: Any, paths: tuple[str, ...]) -> None:
        self.app = app
        self.routes: dict[str, tuple[Any, Any]] = {}
        for route in routes:
            if getattr(route, "path", None) in paths and "POST" in getattr(route, "methods", ()):
                self.routes[route.path] = (route, route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :]
            hit = self.routes.get(path)
            if hit is not None:
                route, endpoint = hit
                scope["route"] = route
                scope["endpoint"] = endpoint
                try:
                    if scope["query_string"]:  # these routes take no query parameter
                        names = Request(scope).query_params.keys()
                        raise unknown_query_problem(list(dict.fromkeys(names)), ())
                    response = await endpoint(Request(scope, receive))
                except Exception as exc:
                    cap = scope["app"].state.geofence.settings.max_problem_errors
                    response = errors.problem_of(exc, cap)
                    if response is None:
                        raise
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _seed(store: Store, path: Any, policy: Any) -> Any:
    """:func:`api.service.seed` and :func:`api.service.seed_policy` under the store's
    setup lock (servers starting together on an empty shared database seed it once)."""
    with store.exclusive("setup"):
        return seed(store, path), seed_policy(store, policy)


async def _load(app_state: AppState) -> None:
    """Seed, load the active zone set and policy, warm the kernels; then the app is ready."""
    s = app_state.settings
    store = app_state.store
    assert store is not None
    try:
        seeded, seeded_policy = await run_in_threadpool(_seed, store, s.seed_file, s.policy)
        if seeded is not None:
            log.info("seeded zone set version %d from %s", seeded[0].version, s.seed_file)
        if seeded_policy is not None:
            log.info("seeded policy version %d from GEOFENCE_POLICY", seeded_policy.version)
        version, policy_version = await run_in_threadpool(store.active_versions)
        if version is None:
            raise RuntimeError("the database has zone sets but none is active")
        if policy_version is None:
            raise RuntimeError("the database has policy versions but none is active")
        policy = await run_in_threadpool(load_policy, store, policy_version)
        zs = seeded[1] if seeded is not None and seeded[0].version == version else None
        active = await run_in_threadpool(
            build_active, store, version, policy, policy_version=policy_version, zone_set=zs
        )
        app_state.districts = await run_in_threadpool(Districts)
        app_state.set_active(active)
        app_state.ready_at = time.time()
        app_state.metrics.ready.set(1)
        log.info(
            "ready: zone set version %d (%d zones), policy version %d, index built in %.3f s, "
            "%.2f s after start",
            version,
            len(active.zone_set),
            policy_version,
            active.build_seconds,
            app_state.ready_at - app_state.started_at,
        )
    except Exception as exc:  # readiness stays false; /readyz says why
        app_state.load_error = exc
        log.exception("could not load the active zone set")


def _start_writer(app_state: AppState) -> AuditWriter:
    s = app_state.settings
    return AuditWriter(
        s.database_url,
        sqlite_synchronous=s.sqlite_synchronous,
        window_s=s.commit_window_ms / 1e3,
        max_rows=s.commit_max_rows,
        on_commit=app_state.metrics.on_commit,
    )


async def _poll_active(app_state: AppState) -> None:
    """Follow activations made by other processes (multi-worker servers), and restart the
    audit writer process if it died (requests answer 503 meanwhile)."""
    store = app_state.store
    assert store is not None
    while True:
        await asyncio.sleep(app_state.settings.active_poll_seconds)
        writer = app_state.writer
        if writer is not None and not writer.alive:
            log.error("the audit writer process died; starting a new one")
            with contextlib.suppress(Exception):
                await writer.aclose(timeout=1.0)
            app_state.writer = _start_writer(app_state)
        if app_state.active is None or app_state.swap_lock.locked():
            continue
        try:
            # SQLite: inline, not in a worker thread (one indexed read of a local file per
            # interval); a database over the network: in a thread, so that an outage or
            # a slow connect cannot stall the event loop
            if store.dialect == "sqlite":
                versions = store.active_versions()
            else:
                versions = await run_in_threadpool(store.active_versions)
            if not _moved(app_state.active, *versions):
                continue
            async with app_state.swap_lock:
                # read again under the lock: an activation through this process may have
                # swapped meanwhile, and the versions read before would undo it
                versions = await run_in_threadpool(store.active_versions)
                await _follow(app_state, *versions)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("active version poll failed")


def _moved(active: Active | None, version: int | None, policy_version: int | None) -> bool:
    """True when the store's active versions differ from the ones ``active`` decides with."""
    if active is None:
        return False
    return (version is not None and version != active.version) or (
        policy_version is not None and policy_version != active.policy_version
    )


async def _follow(app_state: AppState, version: int | None, policy_version: int | None) -> None:
    """Swap to the store's active zone-set and policy versions (under the swap lock)."""
    active = app_state.active
    store = app_state.store
    assert store is not None
    if not _moved(active, version, policy_version):
        return
    assert active is not None
    policy, pv = active.policy, active.policy_version
    if policy_version is not None and policy_version != pv:
        policy = await run_in_threadpool(load_policy, store, policy_version)
        pv = policy_version
    if version is not None and version != active.version:
        new = await run_in_threadpool(build_active, store, version, policy, policy_version=pv)
    else:
        new = active.with_policy(policy, pv)
    app_state.set_active(new)
    log.info("followed activation: zone set version %s, policy version %s", new.version, pv)


def create_app(settings: Settings, *, access_stream: BinaryIO | None = None) -> FastAPI:
    """The FastAPI app for ``settings`` (nothing is read from the environment here).

    With ``settings.access_log``, one JSON line per request goes to ``access_stream``
    (standard error by default).
    """
    state = AppState(settings)
    access = None
    if settings.access_log:
        access = AccessLog(access_stream or sys.stderr.buffer)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if access is not None:
            access.start()
        state.store = await run_in_threadpool(
            Store.open,
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            pool_size=settings.db_pool_size,
        )
        state.keys = KeyCache(state.store, settings.key_cache_seconds)
        state.writer = _start_writer(state)
        loader = asyncio.create_task(_load(state), name="geofence-load")
        poller = asyncio.create_task(_poll_active(state), name="geofence-poll")
        try:
            yield
        finally:
            for task in (poller, loader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            writer, state.writer = state.writer, None
            if writer is not None:
                await writer.aclose()
            state.store.close()
            if access is not None:
                access.close()

    app = FastAPI(
        title="Zhuhai shared-bike parking geofence",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSONResponse,
        generate_unique_id_function=operation_id,
        docs_url=None,  # api.routes.docs: Swagger UI from the project, not a CDN
        redoc_url=None,
        # a trailing slash is served as the path without it (api.habits), never a 307
        # to an absolute http:// URL
        redirect_slashes=False,
        # every route answers 422 naming a query parameter it does not take
        dependencies=[Depends(reject_unknown_query)],
        # no OpenTelemetry: the service exports Prometheus metrics (/metrics); FastAPI's
        # built-in telemetry otherwise asks the OTel providers on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.geofence = state

    errors.install(app, settings.max_problem_errors)

    from api.routes import checks, health, policies, stats, zone_sets, zones
    from api.routes import map as map_routes

    app.include_router(map_routes.first)  # /v1/checks/recent, /v1/zones/density: not ids
    app.include_router(health.router)
    app.include_router(checks.router)
    app.include_router(zones.router)
    app.include_router(zone_sets.router)
    app.include_router(policies.router)
    app.include_router(stats.router)
    from api.routes import standards  # /mds/geographies, /gbfs/{version}/{feed}.json: public

    app.include_router(standards.router)
    from api.routes import docs

    docs.install(app)
    map_routes.install(app)  # /map, its files, the map's other data routes

    app.add_middleware(
        HotRoutes, routes=checks.router.routes, paths=("/v1/checks", "/v1/checks/batch")
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    origins = settings.cors_origin_list()
    if origins:  # off by default: nothing on the request path then
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            max_age=settings.cors_max_age_seconds,
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, log=access)
    app.add_middleware(HabitsMiddleware)  # outermost: X-Request-ID on every answer

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """``create_app(Settings())`` with JSON logging: the uvicorn factory of ``geofence serve``
    (``api.app:create_app_from_env``), called in each worker process."""
    from api.server import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)
