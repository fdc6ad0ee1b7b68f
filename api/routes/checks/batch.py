"""``POST /v1/checks/batch``: up to ``GEOFENCE_BATCH_LIMIT`` checks decided by one
``decide_arrays`` call and recorded as one unit (the body once, compressed).

Three readers, fastest first: the compiled reader of the plain form clients send
(:mod:`api._jsonscan`), orjson, and the request schema (which words the ``422``)."""

from __future__ import annotations

import gc
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from fastapi import Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

import geofence
from api import bounds, columns
from api.audit import COLUMNS, CONFLICT, BatchUnit
from api.auth import operator_of
from api.errors import Problem, from_domain, from_pydantic
from api.models import (
    BatchResponse,
    batch_adapter,
    check_adapter,
    problems,
)
from api.routes import ready_state
from api.routes.checks.common import (
    _hot_route,
    _idempotency_key,
    _read_json,
    _record,
    _replayed_batch,
    _row_key,
    router,
)
from api.service import audit_values, decided_now, new_id, new_ids
from api.storage import china_day


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
