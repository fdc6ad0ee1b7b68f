"""``/v1/checks``: trip-end checks in, decisions out, every decision in the audit log.

A decision is committed to the audit log (group commit) before its response is
sent. ``Idempotency-Key``: a retry by the same operator with the same key answers
the first recorded decision and records nothing; the same key with a different
body is refused (422). One key space per operator across the single and batch
routes: a key used on one and then on the other is 422 too, never a second decision
(a batch's first row carries the key itself, so the database's unique constraint
decides, race-free). A batch is decided and recorded all or none.

``GET /v1/checks`` searches the audit log (by trip, bike, outcome, time), newest
first, in cursor pages (:mod:`api.paging`); operators read their own checks only.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

import geofence
from api import bounds, columns
from api.audit import COLUMNS, CONFLICT, BatchUnit, WriterClosed
from api.auth import SECURITY, any_role, authenticate_scope, operator_of, require_operator
from api.errors import Problem, from_domain, from_pydantic
from api.models import (
    BatchResponse,
    CheckPage,
    CheckRecord,
    Decision,
    Outcome,
    QueryTime,
    batch_adapter,
    check_adapter,
    problems,
)
from api.paging import encode_cursor, next_link, page_headers, time_cursor
from api.responses import JSONResponse, PreparedJSONResponse, dumps
from api.routes import ready_state, store_of
from api.service import audit_values, decided_now, new_id, new_ids
from api.storage import Idempotent, china_day

__all__ = ["router"]

router = APIRouter(prefix="/v1/checks", tags=["checks"])
log = logging.getLogger("geofence.api")

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x2e\x30-\x7e]{1,128}")

_IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retries with the same key (same operator) answer the first decision. "
    "1-128 printable ASCII characters, no '/'.",
    "schema": {"type": "string", "maxLength": 128},
    "example": "6f1c1e0a-trip-T-20261126-000042",
}


def _hot_route(schema: str) -> dict[str, Any]:
    """OpenAPI of the hot routes, which parse their body and key themselves (no injection:
    it costs more than the rest of the web layer on a 2-core machine)."""
    return {
        "security": SECURITY,
        "parameters": [_IDEMPOTENCY_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
    }


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise Problem(
            422,
            "validation",
            "the Idempotency-Key header must be 1-128 printable ASCII characters without '/'",
            errors=[{"pointer": "header:Idempotency-Key", "type": "pattern", "message": "bad key"}],
        )
    return value


async def _read_json(request: Request, limit: int | None = None) -> bytes:
    """The JSON body; with ``limit``, 413 as soon as it is known to be longer (the
    declared length, or the bytes received so far: nothing more is read)."""
    ctype = request.headers.get("content-type")
    declared = request.headers.get("content-length")
    _media_type(None if ctype is None else ctype.encode("latin-1"))
    if limit is None:
        return await request.body()
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    return await _receive_body(request.receive, limit)


def _media_type(ctype: bytes | None) -> None:
    """415 unless the Content-Type (absent: JSON) is JSON (``application/json`` or
    ``+json``, parameters aside)."""
    if ctype is None or ctype == b"application/json":
        return
    media = ctype.decode("latin-1").split(";")[0].strip()
    if media and not (media == "application/json" or media.endswith("+json")):
        raise Problem(415, "unsupported-media-type", f"send application/json, not {media}")


async def _receive_body(receive: Receive, limit: int) -> bytes:
    """The request body from ``receive``, 413 once more than ``limit`` bytes have come
    (what :meth:`starlette.requests.Request.stream` reads, without its generator)."""
    chunks: list[bytes] = []
    n = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            n += len(chunk)
            if n > limit:
                raise _too_large(limit)
            if not message.get("more_body", False):
                if not chunks:
                    return chunk
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _too_large(limit: int) -> Problem:
    # made only when needed: an exception's construction is a cost on every check
    return Problem(
        413,
        "body-too-large",
        f"a check's body is at most {limit} bytes (GEOFENCE_MAX_CHECK_BYTES); "
        "send many checks to /v1/checks/batch",
        headers={"Connection": "close"},
    )


async def _record(st: Any, rows: list[tuple[Any, ...]] | BatchUnit) -> str:
    try:
        return await st.writer.write(rows)
    except WriterClosed:
        raise Problem(503, "unavailable", "the service is shutting down; retry") from None
    except Exception as exc:
        # the driver's text stays in the log: it names tables, values and hosts
        log.warning("the audit log could not record a decision: %s", exc)
        raise Problem(
            503, "unavailable", "the audit log could not record the decision; retry"
        ) from None


def _row_key(key: str | None, i: int) -> str | None:
    """The idempotency key of a batch's check ``i``: the key itself for the first (so a
    key is one claim across the single and batch routes), ``key/i`` for the others."""
    if key is None:
        return None
    return key if i == 0 else f"{key}/{i}"


def _conflict(detail: str) -> Problem:
    return Problem(422, "idempotency-conflict", detail)


def _replayed(prior: Idempotent, body: Mapping[str, Any]) -> Any:
    """The first decision of a single check's key (a retry), or 422 when the key was
    used for a batch or for another body."""
    if prior.batch_id is not None:
        raise _conflict(
            "this Idempotency-Key was already used for a batch (POST /v1/checks/batch); "
            "a key is one request's, across both routes"
        )
    if prior.body_values()[0] != dict(body):
        raise _conflict("this Idempotency-Key was already used for a different check body")
    decision = prior.decision_values()[0]
    return JSONResponse(
        decision,
        headers={
            "Idempotent-Replayed": "true",
            "Location": f"/v1/checks/{decision.get('check_id')}",
        },
    )


def _replayed_batch(prior: Idempotent, raw: bytes) -> Response:
    """A batch retry's recorded results (in order), or 422 when the key was used for a
    single check or for another batch (other checks, other order, another count)."""
    if prior.batch_id is None:
        raise _conflict(
            "this Idempotency-Key was already used for a single check (POST /v1/checks); "
            "a key is one request's, across both routes"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    checks = doc.get("checks") if type(doc) is dict else None
    if type(checks) is not list:
        try:  # the same error as without a key: 400 or 422 naming the field
            batch_adapter.validate_json(raw)
        except ValidationError as exc:
            raise from_pydantic(exc) from None
    if checks != prior.body_values():
        raise _conflict(
            f"this Idempotency-Key was already used for a different batch "
            f"({len(prior.bodies)} checks recorded)"
        )
    return Response(
        b'{"results":[' + ",".join(prior.decisions).encode() + b"]}",
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


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


class _GCPause:
    """The cyclic garbage collector off while a batch builds its objects (re-entrant
    across threads: on again when the last batch in progress leaves).

    Parsing a 10,000-check body makes millions of objects, none in a cycle; with the
    collector on, they trigger hundreds of collections, full ones among them (the
    index is frozen out of its count, so the young objects soon outnumber the rest),
    each walking every object parsed so far: measured 15 % of a 50-fix batch's CPU.
    They are freed by reference counting as usual.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._resume:
                gc.enable()


_gc_paused = _GCPause()


def _decide_batch(st: Any, raw: bytes, op: str, key: str | None) -> _Decided:
    """:func:`_decide_batch_now` with the garbage collector paused."""
    with _gc_paused:
        return _decide_batch_now(st, raw, op, key)


#: a decided batch: what the audit writer records, the response, the outcomes' counts
_Decided = tuple[BatchUnit, bytes, Counter[str]]


def _decide_batch_now(st: Any, raw: bytes, op: str, key: str | None) -> _Decided:
    """Parse, validate and decide a batch (in a worker thread): its audit unit, the
    response, the outcomes.

    The fast paths read the body straight into one :class:`geofence.CheckBatch` and
    decide it with one call of :func:`geofence.decide_arrays`: a compiled reader of the
    bytes (:func:`api.columns.scan_batch`, the plain form clients send), else orjson and
    :func:`api.columns.check_batch`. A batch neither plainly accepts (or one over the
    limit) takes the schema's path, which words the errors. Every path records the
    body once, as received (:class:`api.audit.BatchUnit`), each check's row pointing
    at its bytes in it.

    The fast reader's checks go to the writer as columns (the writer builds the rows,
    on its own core): the check ids, the response and its decisions' offsets, the
    outcomes, zones and districts, each check's byte ranges.
    """
    limit, max_fixes = st.settings.batch_limit, st.settings.max_fixes
    scanned = columns.scan_batch(raw, op, limit, max_fixes=max_fixes)
    if scanned is None:
        return _decide_batch_parsed(st, raw, op, key)
    batch = scanned.batch
    n = len(scanned.ended)
    decided, ids, now = _decide_arrays(st, batch, n)
    active = st.active
    decided_at = datetime.fromtimestamp(now, UTC)
    stamp = decided_at.isoformat().replace("+00:00", "Z")
    # once: the response and the rows
    decisions = columns.decision_texts(decided, ids, stamp, active.policy_version)
    payload = b'{"results":[' + b",".join(decisions) + b"]}"
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = len(b'{"results":[')
    np.cumsum(np.fromiter(map(len, decisions), np.int64, n) + 1, out=offsets[1:])
    offsets[1:] += offsets[0]
    zones, districts = _zones_and_districts(st, batch, decided)
    names = geofence.OUTCOMES
    outcomes = [names[o] for o in decided.outcome.tolist()]
    unit = BatchUnit(
        batch_id=new_id("b_"),
        operator=op,
        raw=raw,
        decided_at=decided_at,
        n=n,
        key=key,
        spans=scanned.spans,
        ids="".join(ids),
        id_width=len(ids[0]),
        payload=payload,
        offsets=offsets,
        ended=scanned.ended,
        outcomes=outcomes,
        zones=zones,
        districts=districts,
        zone_set_version=decided.index.zone_set.version,
        policy_id=decided.policy.id,
        policy_version=active.policy_version,
        day=china_day(decided_at),
        class_codes=batch.device_class,
        classes=batch.device_classes,
    )
    return unit, payload, Counter(outcomes)


def _decide_arrays(st: Any, batch: geofence.CheckBatch, n: int) -> tuple[Any, list[str], float]:
    """The decisions of ``batch`` (``n`` checks), their ids, and ``now``."""
    active = st.active
    now = decided_now()
    try:
        decided = geofence.decide_arrays(active.index, batch, active.policy, now)
    except geofence.CheckError as exc:
        raise _batch_problem(exc, n) from None
    return decided, new_ids(n), now


def _zones_and_districts(
    st: Any, batch: geofence.CheckBatch, decided: geofence.DecisionBatch
) -> tuple[list[str | None], list[str | None]]:
    """Each check's zone id and district as the audit log records them (a check matched
    to no zone: the district of its last fix)."""
    n = len(decided.zone)
    last = batch.n_fixes - 1
    rows_n = np.arange(n)
    districts: list[str | None] = list(
        st.districts.of_points(batch.lon[rows_n, last], batch.lat[rows_n, last])
    )
    zones: list[str | None] = [None] * n
    zs = decided.index.zone_set
    of: dict[int, tuple[str, str | None]] = {}
    for i, z in enumerate(decided.zone.tolist()):
        if z >= 0:
            named = of.get(z)
            if named is None:
                named = of[z] = (str(zs.ids[z]), str(zs.district[z]) or None)
            zones[i], districts[i] = named
    return zones, districts


def _decide_batch_parsed(st: Any, raw: bytes, op: str, key: str | None) -> _Decided:
    """A batch the compiled reader did not take: orjson and
    :func:`api.columns.check_batch`, else :func:`_decide_batch_slow`."""
    limit, max_fixes = st.settings.batch_limit, st.settings.max_fixes
    # counted before anything parses the body (the compiled reader above is bounded)
    bounds.check(raw, bounds.Bounds(limit, max_fixes))
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    bodies = doc.get("checks") if type(doc) is dict and len(doc) == 1 else None
    batch = None
    if type(bodies) is list and len(bodies) <= limit:
        batch = columns.check_batch(bodies, op)
    if batch is None:
        return _decide_batch_slow(st, raw, op, key)
    assert bodies is not None
    n = len(bodies)
    decided, ids, now = _decide_arrays(st, batch, n)
    active = st.active
    decided_at = datetime.fromtimestamp(now, UTC)
    stamp = decided_at.isoformat().replace("+00:00", "Z")
    dicts = columns.decision_dicts(decided, ids, stamp, active.policy_version)
    decisions = list(map(orjson.dumps, dicts))
    _, districts = _zones_and_districts(st, batch, decided)
    unit = _parsed_unit(
        raw,
        bodies,
        dicts,
        ids,
        op,
        key,
        districts,
        decided_at=decided_at,
        decisions=decisions,
    )
    payload = b'{"results":[' + b",".join(decisions) + b"]}"
    return unit, payload, Counter(d["outcome"] for d in dicts)


def _parsed_unit(
    raw: bytes,
    bodies: list[Any],
    dicts: list[dict[str, Any]],
    ids: list[str],
    op: str,
    key: str | None,
    districts: list[str | None],
    *,
    decided_at: datetime | None = None,
    decisions: list[bytes] | None = None,
) -> BatchUnit:
    """The audit unit of a batch parsed into ``bodies``: its rows, each pointing at its
    check's bytes in ``raw`` (``decisions``: the decisions' JSON, when made already)."""
    n = len(bodies)
    batch_id = new_id("b_")
    at = _item_spans(raw, n)
    day = None if decided_at is None else china_day(decided_at)
    rows = [
        (
            *audit_values(
                check_id=ids[i],
                operator=op,
                body=bodies[i],
                body_json="",
                decision=dicts[i],
                idempotency_key=_row_key(key, i),
                batch_id=batch_id,
                district=districts[i],
                decided_at=decided_at,
                decision_json=None if decisions is None else decisions[i],
                decided_day=day,
            ),
            *at[i],
        )
        for i in range(n)
    ]
    when = rows[0][COLUMNS.index("decided_at")] if rows else datetime.now(UTC)
    return BatchUnit(batch_id=batch_id, operator=op, raw=raw, decided_at=when, n=n, rows=rows)


def _item_spans(raw: bytes, n: int) -> list[tuple[int, int]]:
    """Each check's byte range in the (parsed, valid) batch body ``raw``."""
    at = bounds.item_spans(raw, n)
    if at is None:  # pragma: no cover - a parsed body has its items
        raise Problem(422, "validation", "the batch's checks could not be delimited")
    return [(s, e) for s, e in at.tolist()]


def _batch_problem(exc: geofence.CheckError, n_parsed: int) -> Problem:
    """The problem of a batch whose check ``exc.check_index`` the engine refused."""
    at = getattr(exc, "check_index", None)
    at = n_parsed if at is None else at
    p = from_domain(exc)
    for e in p.errors or ():
        e["pointer"] = f"/checks/{at}" + str(e.get("pointer") or "")  # type: ignore[index]
    p.detail = f"check {at}: {p.detail}"
    return p


def _validate_batch(raw: bytes, cap: int) -> list[Any]:
    """The batch's checks through the request schema, one check at a time when the body
    is ``{"checks": [...]}``: the errors of the first checks are worded (``cap`` in
    all), the others only counted, so a batch of 10,000 empty checks makes 100 error
    objects, not 50,000 (measured: +99 MB and a 1.5 s stall before). Any other shape
    goes through the batch schema whole (the bounds walk has bounded it)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    items = doc.get("checks") if type(doc) is dict and len(doc) == 1 else None
    texts = bounds.item_texts(raw, len(items)) if type(items) is list and items else None
    if texts is None:
        try:
            return list(batch_adapter.validate_json(raw)["checks"])
        except ValidationError as exc:
            raise from_pydantic(exc) from None
    bodies: list[Any] = []
    errors: list[Any] = []
    total = 0
    for i, text in enumerate(texts):
        try:
            bodies.append(check_adapter.validate_json(text))
        except ValidationError as exc:
            total += exc.error_count()
            if len(errors) < cap:
                p = from_pydantic(exc, prefix=("checks", i))
                if p.errors is None:  # not JSON to the schema's parser: 400
                    raise p from None
                errors.extend(p.errors)
    if total:
        raise Problem(
            422,
            "validation",
            f"{total} field(s) failed validation",
            errors=errors[:cap],
            extra={"errors_omitted": total - len(errors[:cap])} if total > cap else None,
        )
    return bodies


def _decide_batch_slow(st: Any, raw: bytes, op: str, key: str | None) -> _Decided:
    """The batch through the request schema and a :class:`geofence.Check` per body."""
    bodies = _validate_batch(raw, st.settings.max_problem_errors)
    limit = st.settings.batch_limit
    if len(bodies) > limit:
        raise Problem(
            413,
            "batch-too-large",
            f"{len(bodies)} checks in one batch; the limit is {limit} (GEOFENCE_BATCH_LIMIT)",
        )
    checks = []
    try:
        for body in bodies:
            checks.append(geofence.Check.from_mapping(body, operator=op))
        active = st.active
        ids = new_ids(len(checks))
        decisions = geofence.decide_many(active.index, checks, active.policy, decided_now(), ids)
    except geofence.CheckError as exc:
        raise _batch_problem(exc, len(checks)) from None
    dicts = [d.to_dict() | {"policy_version": active.policy_version} for d in decisions]
    districts = [
        None if d.get("zone") else st.districts.of_fixes(b["fixes"])
        for d, b in zip(dicts, bodies, strict=True)
    ]
    unit = _parsed_unit(raw, bodies, dicts, ids, op, key, districts)
    payload = orjson.dumps({"results": dicts}, option=orjson.OPT_SERIALIZE_NUMPY)
    return unit, payload, Counter(d["outcome"] for d in dicts)


@router.post(
    "/batch",
    response_model=BatchResponse,
    responses=problems(400, 409, 413, 415, 422, 503),
    openapi_extra=_hot_route("BatchRequest"),
    summary="Decide up to 10,000 checks, recorded all or none; results in request order",
)
async def post_batch(request: Request) -> Response:
    who = await operator_of(request)
    st = ready_state(request)
    key = _idempotency_key(request.headers.get("idempotency-key"))
    raw = await _read_json(request)
    if key is not None:
        prior = await run_in_threadpool(st.store.find_idempotent, who.operator, key)
        if prior is not None:
            return _replayed_batch(prior, raw)
    unit, payload, outcomes = await run_in_threadpool(_decide_batch, st, raw, who.operator, key)
    if await _record(st, unit) == CONFLICT:  # the key was taken meanwhile
        prior = await run_in_threadpool(st.store.find_idempotent, who.operator, key)
        if prior is None:  # pragma: no cover
            raise Problem(409, "idempotency-conflict", "retry: a concurrent request holds the key")
        return _replayed_batch(prior, raw)
    for outcome, n in outcomes.items():
        st.metrics.decided(outcome, n)
    request.state.n_checks = len(unit)
    return Response(payload, media_type="application/json")


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
