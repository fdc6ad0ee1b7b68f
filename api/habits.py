"""HTTP habits every route shares: ``X-Request-ID``, trailing slashes, ``HEAD``, and
compressed request bodies (issue 15).

:class:`HabitsMiddleware` is the outermost layer of the app (pure ASGI, no body
buffering; its cost when a client uses none of this is one scan of the request
headers, a random id and one extra header on the answer):

- ``X-Request-ID``: a client's id (1-128 printable ASCII characters, no space) is kept,
  anything else (absent, too long, control characters) is replaced by a fresh random
  one (32 hex digits, from a PRNG seeded once per process); either way it is echoed on
  every answer, errors and 304s included, and logged (``request_id`` in the access
  log). Replaced rather than refused: a tracing header is no reason to fail a trip end.
- Trailing slashes: ``/v1/checks/`` is served as ``/v1/checks`` (every method, POST
  included), instead of Starlette's 307 to an absolute URL built from the request,
  which is ``http://`` behind a TLS-terminating proxy (a downgrade, and a POST body
  resent in clear). Both forms answer the same; the document lists the form without
  the slash.
- ``HEAD``: answered as ``GET`` without the body (same status and headers, the
  ``Content-Length`` of the body), on every ``GET`` route; the OpenAPI document keeps
  listing ``GET`` only (FastAPI would list a ``head`` operation per route otherwise).

:func:`gunzip_receive` decodes ``Content-Encoding: gzip`` request bodies for
:class:`api.app.BodyLimitMiddleware`, with the body limit applied to the decoded size
(a gzip bomb answers 413 after at most ``limit`` bytes of output: ``zlib``'s
``max_length`` bounds each step) so the routes, the fast readers of the check routes
included, read the decoded bytes as if they had been sent plain.
"""

from __future__ import annotations

import random
import re
import secrets
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem

__all__ = [
    "CORS_EXPOSED_HEADERS",
    "CORS_REQUEST_HEADERS",
    "HabitsMiddleware",
    "content_codings",
    "decode_body",
    "gunzip_receive",
    "reject_unknown_query",
    "unknown_query_problem",
]

#: what a browser may send (CORS preflight) and read from the answers
CORS_REQUEST_HEADERS = (
    "X-API-Key",
    "Content-Type",
    "Content-Encoding",
    "Idempotency-Key",
    "X-Request-ID",
    "If-None-Match",
    "If-Modified-Since",
)
CORS_EXPOSED_HEADERS = (
    "X-Request-ID",
    "Location",
    "Link",
    "ETag",
    "Last-Modified",
    "Idempotent-Replayed",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
)
#: public feeds read by trip planners and caches that may add their own parameters
#: (cache busters); their errors have their own shapes (MDS error objects)
LENIENT_QUERY_PREFIXES = ("/mds/", "/gbfs/")

_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
#: request ids need uniqueness, not secrecy: a PRNG seeded from the OS once per process,
#: not a system call (os.urandom) per request
_RID_RANDOM = random.Random(secrets.randbits(128))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


class HabitsMiddleware:
    """``X-Request-ID``, trailing slashes and ``HEAD`` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value
                break
        if rid is None or _REQUEST_ID.fullmatch(rid) is None:
            rid = b"%032x" % _RID_RANDOM.getrandbits(128)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = rid.decode()
        path = scope["path"]
        head = scope["method"] == "HEAD"
        if head or (len(path) > 1 and path[-1] == "/"):
            scope = dict(scope)  # the server's own scope keeps the method it read
            if head:
                scope["method"] = "GET"
                state["http_method"] = "HEAD"
            if len(path) > 1 and path[-1] == "/":
                stripped = path.rstrip("/") or "/"
                scope["path"] = stripped
                raw = scope.get("raw_path")
                if raw:
                    scope["raw_path"] = raw.rstrip(b"/") or b"/"
        header = (b"x-request-id", rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            elif head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_with_id)


def content_codings(value: bytes) -> list[str]:
    """The codings of a ``Content-Encoding`` header, ``identity`` left out."""
    codings = (c.strip().lower() for c in value.decode("latin-1").split(","))
    return [c for c in codings if c and c != "identity"]


def gunzip_receive(receive: Receive, limit: int) -> Callable[[], Awaitable[Message]]:
    """``receive`` with its body gzip-decoded (several members allowed, RFC 1952), at
    most ``limit`` decoded bytes (else 413); a corrupt or truncated body is 400."""
    d: Any = zlib.decompressobj(31)
    total = 0

    async def decoded() -> Message:
        nonlocal d, total
        message = await receive()
        if message["type"] != "http.request":
            return message
        data = message.get("body", b"")
        more = message.get("more_body", False)
        parts = []
        while data:
            if d.eof:  # the next member
                d = zlib.decompressobj(31)
            try:
                out = d.decompress(data, limit - total + 1)
            except zlib.error as exc:
                raise Problem(
                    400, "malformed-body", f"the body is not valid gzip ({exc})"
                ) from None
            total += len(out)
            if total > limit:
                raise Problem(
                    413,
                    "body-too-large",
                    f"the gzip body decodes to more than the limit of {limit} bytes "
                    "(GEOFENCE_MAX_BODY_BYTES)",
                )
            parts.append(out)
            data = d.unused_data if d.eof else d.unconsumed_tail
        if not more and not d.eof:
            raise Problem(400, "malformed-body", "the gzip body is truncated")
        return {"type": "http.request", "body": b"".join(parts), "more_body": more}

    return decoded


def decode_body(scope: Scope, receive: Receive, encoding: bytes, limit: int) -> Any:
    """``(scope, receive)`` for a request whose ``Content-Encoding`` is ``encoding``: as
    they are for ``identity``, gzip-decoded for ``gzip`` (the coding and length headers
    dropped), a 415 :class:`Problem` naming any other coding."""
    if scope["method"] not in _BODY_METHODS:
        return scope, receive
    codings = content_codings(encoding)
    if not codings:
        return scope, receive
    if codings not in (["gzip"], ["x-gzip"]):
        raise Problem(
            415,
            "unsupported-media-type",
            f"Content-Encoding {', '.join(codings)} is not supported: send gzip or identity",
            headers={"Accept-Encoding": "gzip, identity"},
        )
    scope = dict(scope)
    scope["headers"] = [
        (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
    ]
    return scope, gunzip_receive(receive, limit)


_known_query: dict[int, frozenset[str]] = {}


def _query_names(route: Any) -> frozenset[str]:
    """The query parameters a FastAPI route takes (its dependencies' too), by alias."""
    names: set[str] = set()
    todo = [route.dependant]
    while todo:
        dep = todo.pop()
        names.update(f.alias for f in dep.query_params)
        todo.extend(dep.dependencies)
    return frozenset(names)


def unknown_query_problem(names: list[str], known: frozenset[str] | tuple[()]) -> Problem:
    """422 naming each query parameter the route does not take."""
    takes = ", ".join(sorted(known)) or "none"
    return Problem(
        422,
        "validation",
        f"unknown query parameter(s): {', '.join(names)} (this route takes: {takes})",
        errors=[
            {"pointer": f"query:{n}", "type": "unknown_parameter", "message": "not a parameter"}
            for n in names
        ],
    )


async def reject_unknown_query(request: Request) -> None:
    """The app-wide dependency: 422 for a query parameter the route does not take (a
    misspelt ``limt=`` or ``form=`` would otherwise be ignored silently). Async, so it
    costs no thread; nothing to do without a query string."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    if request.url.path.startswith(LENIENT_QUERY_PREFIXES):
        return
    known = _known_query.get(id(route))
    if known is None:
        known = _known_query[id(route)] = _query_names(route)
    unknown = [n for n in dict.fromkeys(request.query_params.keys()) if n not in known]
    if unknown:
        raise unknown_query_problem(unknown, known)
