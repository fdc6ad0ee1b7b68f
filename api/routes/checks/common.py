"""What the check routes share: the router, the ``Idempotency-Key``, reading a body
(its media type and limit), handing rows to the audit writer, and answering a retry
from the decision first recorded."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from api.audit import BatchUnit, WriterClosed
from api.auth import SECURITY
from api.errors import Problem, from_pydantic
from api.models import (
    batch_adapter,
)
from api.responses import JSONResponse
from api.storage import Idempotent

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
