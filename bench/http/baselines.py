"""The baselines the service is measured against, each a FastAPI app under the very
uvicorn options ``geofence serve`` uses (:func:`api.server.uvicorn_options`), run as
``python -m bench.http --serve-bare PORT [AUDIT_URL]`` in its own process: "bare" (one
POST route answering a constant) and "bare + audit" (the same route committing one
audit row per request through the service's audit writer before it answers).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http.harness import Proc, module_env, wait_ready


def start_bare(workdir: Path, port: int, *, audit: bool = False) -> Proc:
    env = module_env()
    args = [sys.executable, "-m", "bench.http", "--serve-bare", str(port)]
    if audit:
        args.append(f"sqlite:///{workdir / f'bare-audit-{port}.db'}")
    p = Proc(args, env, workdir, f"bare-{port}")
    wait_ready(f"http://127.0.0.1:{port}/healthz", p.proc)
    return p


def serve_bare(port: int, audit_url: str | None = None) -> None:
    """The baseline: a bare FastAPI POST endpoint under ``geofence serve``'s uvicorn options.

    With ``audit_url`` (the second baseline, "bare + audit"): the endpoint also commits
    one audit row per request through the service's own audit writer (the same
    process, group commit and SQLite settings, schema from :class:`api.storage.Store`)
    before it answers, and nothing else: no key, no parsing, no decision. It bounds
    what any service that commits each decision before answering can reach here.
    """
    import uuid
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.responses import Response

    from api.audit import AuditWriter
    from api.server import uvicorn_options
    from api.settings import Settings
    from api.storage import Store, china_day

    settings = Settings(port=port)
    writer: list[AuditWriter] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if audit_url is not None:
            Store.open(audit_url, sqlite_synchronous=settings.sqlite_synchronous).close()
            writer.append(
                AuditWriter(
                    audit_url,
                    sqlite_synchronous=settings.sqlite_synchronous,
                    window_s=settings.commit_window_ms / 1e3,
                    max_rows=settings.commit_max_rows,
                )
            )
        yield
        for w in writer:
            await w.aclose()

    # FastAPI's built-in telemetry off, as in the service (api.app): the baseline must
    # not pay for what the service does not do
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False}, lifespan=lifespan)
    # this module postpones annotations: the route's annotations are resolved in the
    # module's namespace, so the names must be there
    globals().update(Request=Request, Response=Response)

    @app.post("/bare")
    async def bare(request: Request) -> Response:
        body = await request.body()
        if writer:
            now = datetime.now(UTC)
            row = (
                uuid.uuid4().hex, "bench", "trip", "bike", None, None, body.decode(),
                '{"outcome":"review"}', "review", None, None, 1, "bare", now, now,
                china_day(now), 1, None,  # policy_version, device_class (migration 4)
            )  # fmt: skip
            await writer[0].write([row])
        return Response(b'{"ok":true}', media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    uvicorn.run(app, **uvicorn_options(settings))
