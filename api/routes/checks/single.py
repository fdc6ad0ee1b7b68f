"""``POST /v1/checks``: one check, read straight into the engine's compiled single-check
call (:func:`api.columns.check_values`), recorded, answered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

import geofence
from api import bounds, columns
from api.audit import CONFLICT
from api.auth import authenticate_scope, require_operator
from api.errors import Problem, from_pydantic
from api.models import (
    Decision,
    check_adapter,
    problems,
)
from api.responses import PreparedJSONResponse, dumps
from api.routes import ready_state
from api.routes.checks.common import (
    _hot_route,
    _idempotency_key,
    _media_type,
    _receive_body,
    _record,
    _replayed,
    _too_large,
    router,
)
from api.service import audit_values, decided_now, new_id


def _decide_one(
    st: Any, raw: bytes, op: str
) -> tuple[Mapping[str, Any], dict[str, Any], str | None, datetime]:
    """Parse and decide one check: ``(body, decision, district of a check off every box,
    decided_at)``.

    The fast path reads the body with orjson straight into the numbers of the engine's
    single-check entry point (:func:`api.columns.check_values`,
    :func:`geofence.decide_values`: one compiled call, no :class:`geofence.Check`); a
    body it does not plainly accept goes through the request schema and
    :meth:`geofence.Check.from_mapping`, which word the errors.
    """
    active = st.active
    check_id = new_id()
    now = decided_now()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    got = columns.check_values(body) if type(body) is dict else None
    d = None
    if got is not None:
        vals, ended, heading, device_class = got
        d = geofence.decide_values(
            active.index,
            active.policy,
            now,
            vals,
            ended,
            heading,
            operator=op,
            device_class=device_class,
            check_id=check_id,
        )
    if d is None:
        if got is None:
            try:
                body = check_adapter.validate_json(raw)
            except ValidationError as exc:
                raise from_pydantic(exc) from None
        check = geofence.Check.from_mapping(body, operator=op)
        d = geofence.decide(active.index, check, active.policy, now, check_id=check_id)
    decision = d.to_dict()
    decision["policy_version"] = active.policy_version
    district = None
    if decision["zone"] is None:
        if got is None:
            district = st.districts.of_fixes(body["fixes"])
        else:
            district = st.districts.of_point(vals[-5], vals[-4])  # the last fix, WGS-84
    return body, decision, district, datetime.fromtimestamp(now, UTC)


@router.post(
    "",
    response_model=Decision,
    responses=problems(400, 409, 413, 415, 422, 503),
    openapi_extra=_hot_route("CheckRequest"),
    summary="Decide one trip-end check (settle, reject or review) and record it",
)
async def post_check(request: Request) -> Response:
    # the request's headers read in one pass over the raw list (first occurrence wins,
    # as Starlette's Headers.get): no Headers object, no per-header scan
    scope = request.scope
    api_key = idempotency = ctype = declared = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            if api_key is None:
                api_key = value
        elif name == b"content-type":
            if ctype is None:
                ctype = value
        elif name == b"content-length":
            if declared is None:
                declared = value
        elif name == b"idempotency-key" and idempotency is None:
            idempotency = value
    st = scope["app"].state.geofence
    who = require_operator(
        await authenticate_scope(st, scope, None if api_key is None else api_key.decode("latin-1"))
    )
    st = ready_state(request)
    key = _idempotency_key(None if idempotency is None else idempotency.decode("latin-1"))
    _media_type(ctype)
    limit = st.settings.max_check_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    raw = await _receive_body(request.receive, limit)
    max_fixes = st.settings.max_fixes
    single = _SINGLE_BOUNDS.get(max_fixes)
    if single is None:
        single = _SINGLE_BOUNDS[max_fixes] = bounds.Bounds(None, max_fixes)
    bounds.check(raw, single)
    # no look-up before deciding: a retry's row collides with the first one on the
    # (operator, idempotency_key) constraint, and the first decision is answered then
    body, decision, district, decided_at = _decide_one(st, raw, who.operator)
    check_id = decision["check_id"]
    payload = dumps(decision)  # once: the response and the audit row
    row = audit_values(
        check_id=check_id,
        operator=who.operator,
        body=body,
        body_json=raw.decode("utf-8"),
        decision=decision,
        idempotency_key=key,
        district=district,
        decided_at=decided_at,
        decision_json=payload,
    )
    if await _record(st, [row]) == CONFLICT:  # a retry: answer the first decision
        prior = await run_in_threadpool(st.store.find_idempotent, who.operator, key)
        if prior is None:  # pragma: no cover - the conflicting row is committed
            raise Problem(409, "idempotency-conflict", "retry: a concurrent request holds the key")
        return _replayed(prior, body)
    st.metrics.decided(decision["outcome"])
    state = scope["state"]  # the access log's fields (HabitsMiddleware made the dict)
    state["check_id"] = check_id
    state["zone_set_version"] = decision["zone_set_version"]
    return PreparedJSONResponse(payload, [(b"location", b"/v1/checks/" + check_id.encode())])


_SINGLE_BOUNDS: dict[int, bounds.Bounds] = {}  # a check body's bounds, per GEOFENCE_MAX_FIXES
