"""``/healthz``, ``/readyz`` and ``/metrics`` (public)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import Problem
from api.models import Health, problems
from api.routes import app_state

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Liveness: the process answers",
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    responses=problems(503),
    summary="Readiness: the active zone set is loaded and the kernels are warm",
)
async def readyz(request: Request) -> dict[str, object]:
    st = app_state(request)
    if not st.ready:
        if st.load_error:
            why = f"loading failed: {st.load_error}"
        elif st.writer is not None and st.active is not None:
            why = "the audit log writer is not running: decisions cannot be recorded"
        else:
            why = "the zone index is loading"
        raise Problem(503, "not-ready", why, headers={"Retry-After": "1"})
    return {"status": "ready", "zone_set_version": st.active.version}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics(request: Request) -> Response:
    st = app_state(request)
    return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)
