"""``/v1/stats``: checks and in-box rate by operator, district, zone or day (admin)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import admin
from api.errors import Problem
from api.models import PROBLEM_RESPONSES, QueryTime, StatsPage
from api.responses import JSONResponse
from api.routes import app_state

__all__ = ["router"]

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get(
    "",
    response_model=StatsPage,
    responses=PROBLEM_RESPONSES,
    summary="Checks, settle/reject/review counts and in-box rate per group over a time range",
)
async def stats(
    request: Request,
    who: admin,
    group_by: Annotated[
        Literal["operator", "district", "zone", "day"],
        Query(description="day = calendar day in China Standard Time (UTC+8)"),
    ] = "operator",
    from_: Annotated[
        QueryTime | None,
        Query(alias="from", description="RFC 3339, inclusive", examples=["2026-11-01T00:00:00Z"]),
    ] = None,
    to: Annotated[
        QueryTime | None,
        Query(description="RFC 3339, exclusive", examples=["2026-12-01T00:00:00+08:00"]),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Groups at most")] = 1000,
) -> JSONResponse:
    st = app_state(request)
    if st.store is None:
        raise Problem(503, "not-ready", "the service is starting")
    if from_ is not None and to is not None and from_ >= to:
        raise Problem(422, "validation", "'from' must be before 'to'")
    result = await run_in_threadpool(st.store.stats, group_by, since=from_, until=to, limit=limit)
    return JSONResponse(result)
