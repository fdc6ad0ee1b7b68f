"""Errors as RFC 9457 problem documents (``application/problem+json``).

Every 4xx and 5xx answer of the service is a problem document with ``type``,
``title``, ``status``, ``detail`` and, for validation failures, ``errors`` (one
entry per broken field or feature, at most ``GEOFENCE_MAX_PROBLEM_ERRORS``, 100 by
default: the rest are counted in ``errors_omitted``, an extension member as RFC 9457
§3.2 allows, so that no rejected request answers more than a few tens of kilobytes
however many mistakes it holds). The engine raises its own exception classes;
:data:`DOMAIN_ERRORS` is the one table that maps them to HTTP statuses. The web
layer raises :class:`Problem` for what only it knows (auth, limits, not found).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api.responses import ProblemResponse
from geofence.errors import CheckError, CRSError, GeofenceError, PolicyError, ZoneDataError

__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DOMAIN_ERRORS",
    "PROBLEM_TYPES",
    "Problem",
    "capped",
    "install",
    "policy_error",
    "problem_of",
    "problem_response",
    "validation_errors",
]

log = logging.getLogger("geofence.api")

#: error items of a problem document at most (``GEOFENCE_MAX_PROBLEM_ERRORS``)
DEFAULT_MAX_ERRORS = 100

#: Problem ``type`` URIs (relative references, documented in the README): slug -> title.
PROBLEM_TYPES: dict[str, str] = {
    "malformed-json": "The request body is not valid JSON",
    "validation": "The request does not match the schema",
    "invalid-check": "The check's evidence cannot be decided",
    "invalid-zone-set": "The zone set breaks validation rules",
    "invalid-policy": "The policy document breaks validation rules",
    "unknown-crs": "Unknown coordinate reference system",
    "geofence-error": "The engine refused the request",
    "unauthorized": "A valid API key is required",
    "forbidden": "This key's role may not use this route",
    "not-found": "Not found",
    "body-too-large": "The request body is too large",
    "batch-too-large": "Too many checks in one batch",
    "too-many-requests": "Too many requests",
    "client-disconnected": "The client disconnected mid-request",
    "request-timeout": "The request did not arrive in time",
    "too-many-connections": "Too many open connections",
    "idempotency-conflict": "The Idempotency-Key was used for a different request",
    "unsupported-media-type": "Unsupported media type",
    "not-ready": "The service is starting",
    "unavailable": "The service cannot record decisions",
    "internal": "Internal server error",
}

#: The one table from engine exception classes to (HTTP status, problem slug); the most
#: specific class wins (looked up along the exception's MRO).
DOMAIN_ERRORS: dict[type[GeofenceError], tuple[int, str]] = {
    CheckError: (422, "invalid-check"),
    ZoneDataError: (422, "invalid-zone-set"),
    PolicyError: (422, "invalid-policy"),
    CRSError: (422, "unknown-crs"),
    GeofenceError: (422, "geofence-error"),
}


class Problem(Exception):
    """An HTTP-layer failure answered as a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.title = title
        self.extra = dict(extra or {})


def problem_response(
    status: int,
    slug: str | None,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
    instance: str | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ProblemResponse:
    """A problem document; ``slug`` None means ``about:blank`` (the plain HTTP status).

    At most ``max_errors`` items of ``errors``; the number left out in ``errors_omitted``.
    """
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title or (PROBLEM_TYPES.get(slug, phrase) if slug else phrase),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"], omitted = capped(errors, max_errors)
        if omitted:
            body["errors_omitted"] = omitted
    if extra:
        body.update(extra)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def capped(items: Sequence[Any], cap: int) -> tuple[list[Any], int]:
    """The first ``cap`` of ``items`` and how many were left out."""
    n = len(items)
    return list(items[:cap]), max(n - cap, 0)


def _loc(loc: Sequence[Any]) -> str:
    """``("body", "fixes", 0, "lat")`` -> ``/fixes/0/lat`` (a JSON Pointer into the body)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
        if where != "body":
            return f"{where}:{'/'.join(parts)}"
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validation_errors(errs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as ``[{pointer, type, message}]`` (no echo of the input)."""
    out = []
    for e in errs:
        out.append(
            {
                "pointer": _loc(e.get("loc", ())),
                "type": e.get("type", "invalid"),
                "message": e.get("msg", "invalid value"),
            }
        )
    return out


def from_pydantic(exc: ValidationError, *, prefix: Sequence[Any] = ()) -> Problem:
    """A Problem for a body that failed validation (400 when it is not JSON at all)."""
    errs = exc.errors(include_url=False, include_input=False)
    if any(e.get("type") == "json_invalid" for e in errs):
        msg = next(e["msg"] for e in errs if e.get("type") == "json_invalid")
        return Problem(400, "malformed-json", f"the request body is not valid JSON: {msg}")
    fixed = [{**e, "loc": (*prefix, *e.get("loc", ()))} for e in errs]
    return Problem(
        422,
        "validation",
        f"{len(errs)} field(s) failed validation",
        errors=validation_errors(fixed),
    )


def field_pointer(field: str) -> str:
    """An engine field name as a JSON Pointer: ``fixes[0].lat`` -> ``/fixes/0/lat``."""
    if not field:
        return ""
    return "/" + "/".join(p for p in re.sub(r"\[(\d+)\]", r".\1", field).split(".") if p)


def from_domain(exc: GeofenceError) -> Problem:
    """A Problem for an engine exception, by :data:`DOMAIN_ERRORS`."""
    status, slug = 422, "geofence-error"
    for cls in type(exc).__mro__:
        if cls in DOMAIN_ERRORS:
            status, slug = DOMAIN_ERRORS[cls]  # type: ignore[index]
            break
    err: dict[str, Any] = {"message": str(exc)}
    if isinstance(exc, CheckError):
        err = {"pointer": field_pointer(exc.field), **err, "type": exc.rule or "invalid"}
    elif isinstance(exc, ZoneDataError):
        err = {"feature": exc.feature_id, "rule": exc.rule, **err}
    elif isinstance(exc, PolicyError):
        err = policy_error(exc)
    return Problem(status, slug, str(exc), errors=[err])


def policy_error(exc: PolicyError) -> dict[str, Any]:
    """One error of a policy document: its field (``calibration[2].bias_m``), the same
    as a JSON Pointer, the rule broken and the message."""
    return {
        "field": exc.field,
        "pointer": field_pointer(exc.field),
        "rule": exc.rule or "invalid",
        "message": str(exc),
    }


def problem_of(exc: BaseException, max_errors: int = DEFAULT_MAX_ERRORS) -> ProblemResponse | None:
    """The problem document of a :class:`Problem`, an engine error or a pydantic
    validation error; None for anything else (what the app's handlers answer, for the
    routes served without FastAPI's routing)."""
    if isinstance(exc, GeofenceError):
        exc = from_domain(exc)
    elif isinstance(exc, ValidationError):
        exc = from_pydantic(exc)
    elif isinstance(exc, ClientDisconnect):
        exc = disconnected()
    if not isinstance(exc, Problem):
        return None
    return problem_response(
        exc.status,
        exc.slug,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        title=exc.title,
        extra=exc.extra,
        max_errors=max_errors,
    )


def disconnected() -> Problem:
    """A client that went away mid-request: one log line, no traceback (the answer,
    a 400, is never delivered)."""
    log.info("the client disconnected before its request was read whole")
    return Problem(400, "client-disconnected", "the client disconnected mid-request")


def install(app: FastAPI, max_errors: int = DEFAULT_MAX_ERRORS) -> None:
    """Register the handlers that turn every error into a problem document (each with
    at most ``max_errors`` error items)."""

    async def on_problem(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, Problem)
        response = problem_of(exc, max_errors)
        assert response is not None
        return response

    async def on_domain(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, GeofenceError)
        return await on_problem(request, from_domain(exc))

    async def on_request_validation(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, RequestValidationError)
        errs = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errs):
            return problem_response(400, "malformed-json", "the request body is not valid JSON")
        return problem_response(
            422,
            "validation",
            f"{len(errs)} field(s) failed validation",
            errors=validation_errors(errs[:max_errors]),
            extra={"errors_omitted": len(errs) - max_errors} if len(errs) > max_errors else None,
        )

    async def on_pydantic(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, ValidationError)
        return await on_problem(request, from_pydantic(exc))

    async def on_http(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(
            exc.status_code, None, detail, headers=getattr(exc, "headers", None) or None
        )

    async def on_disconnect(request: Request, exc: Exception) -> ProblemResponse:
        response = problem_of(disconnected())
        assert response is not None
        return response

    async def on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal", "an unexpected error occurred; it was logged")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(GeofenceError, on_domain)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(ValidationError, on_pydantic)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_unexpected)
