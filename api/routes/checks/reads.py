"""``GET /v1/checks`` (search, newest first, in cursor pages) and
``GET /v1/checks/{check_id}`` (one audit-log record): operators read their own checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.auth import any_role
from api.errors import Problem
from api.models import (
    CheckPage,
    CheckRecord,
    Outcome,
    QueryTime,
    problems,
)
from api.paging import encode_cursor, next_link, page_headers, time_cursor
from api.responses import JSONResponse
from api.routes import store_of
from api.routes.checks.common import (
    router,
)


@router.get(
    "",
    response_model=CheckPage,
    responses=problems(403, 422, 503),
    summary="Search recorded checks, newest first, paged (operators: their own only)",
)
async def search_checks(
    request: Request,
    who: any_role,
    trip_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    bike_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    outcome: Outcome | None = None,
    from_: Annotated[
        QueryTime | None, Query(alias="from", description="RFC 3339, inclusive (decided_at)")
    ] = None,
    to: Annotated[QueryTime | None, Query(description="RFC 3339, exclusive (decided_at)")] = None,
    operator: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Admin keys: one operator's checks (operator keys: their own only)",
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=300, description="The 'next' link's cursor of a page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Checks per page")] = 100,
) -> JSONResponse:
    """Each page is newest first (``decided_at``, then ``check_id``); ``next`` (and
    ``Link``) follows on after the last check answered, so a check recorded meanwhile
    is neither skipped nor repeated among the older ones."""
    store = store_of(request)
    if not who.is_admin:
        if operator is not None and operator != who.operator:
            raise Problem(
                403, "forbidden", "an operator key reads its own checks only: drop 'operator'"
            )
        operator = who.operator
    if from_ is not None and to is not None and from_ >= to:
        raise Problem(422, "validation", "'from' must be before 'to'")
    before = None if cursor is None else time_cursor(cursor, "checks")
    found = await run_in_threadpool(
        lambda: store.search_checks(
            operator=operator,
            trip_id=trip_id,
            bike_id=bike_id,
            outcome=outcome,
            since=from_,
            until=to,
            before=before,
            limit=limit + 1,
        )
    )
    page = found[:limit]
    link = None
    if len(found) > limit:
        last = page[-1]
        link = next_link(request, encode_cursor("checks", last["decided_at"], last["check_id"]))
    return JSONResponse({"checks": page, "next": link}, headers=page_headers(link))


@router.get(
    "/{check_id}",
    response_model=CheckRecord,
    responses=problems(404, 422, 503),
    summary="The recorded check and decision (operators: their own checks only)",
)
async def get_check(
    request: Request,
    who: any_role,
    check_id: Annotated[str, Path(max_length=64, examples=["c_01JDQ6V3M8T5W2ZK9Y4R7N0B1C"])],
) -> Response:
    st = request.app.state.geofence
    if st.store is None:
        raise Problem(503, "not-ready", "the service is starting")
    rec = await run_in_threadpool(st.store.get_check, check_id)
    if rec is None or (not who.is_admin and rec["operator"] != who.operator):
        raise Problem(404, "not-found", f"no check {check_id}")
    return JSONResponse(rec)
