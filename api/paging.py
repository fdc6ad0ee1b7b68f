"""Cursor pagination of the list routes (issue 15 items 6, 7).

A page answers its items and ``next``: the relative URL of the next page (the same
path and query, ``cursor`` replaced), or null on the last page; the same URL is in a
``Link: <…>; rel="next"`` header (RFC 8288). Relative, so that a client behind a
TLS-terminating proxy follows it on the scheme and host it used.

Cursors are opaque to clients: base64url of a small JSON array, the list's name
first, then the sort key of the last item answered (keyset pagination: the next page
is "after this key" in a stable total order, so an item inserted meanwhile never
shifts the pages: no gap, no repeat). A cursor of another list, or not one at all, is
422 naming ``query:cursor``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request

from api.errors import Problem
from geofence.rfc3339 import parse_rfc3339

__all__ = [
    "cursor_problem",
    "decode_cursor",
    "encode_cursor",
    "next_link",
    "page_headers",
    "time_cursor",
]


def encode_cursor(kind: str, *key: Any) -> str:
    """The opaque cursor after ``key`` in list ``kind``."""
    return base64.urlsafe_b64encode(orjson.dumps([kind, *key])).rstrip(b"=").decode()


def decode_cursor(text: str, kind: str, n: int) -> list[Any]:
    """The ``n`` key values of a cursor of list ``kind``; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        value = None
    if type(value) is not list or len(value) != n + 1 or value[0] != kind:
        raise cursor_problem()
    return value[1:]


def cursor_problem() -> Problem:
    """422 naming ``query:cursor``."""
    return Problem(
        422,
        "validation",
        "cursor is not a cursor of this list: pass the 'next' link of a page as it is",
        errors=[{"pointer": "query:cursor", "type": "cursor", "message": "not a cursor"}],
    )


def next_link(request: Request, cursor: str | None) -> str | None:
    """The relative URL of the next page (``cursor`` replaced), or None."""
    if cursor is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    path = request.scope.get("root_path", "") + request.scope["path"]
    return f"{path}?{urlencode(params)}"


def page_headers(link: str | None) -> dict[str, str]:
    """``Link: <next>; rel="next"`` when there is a next page."""
    return {"Link": f'<{link}>; rel="next"'} if link else {}


def time_cursor(text: str, kind: str) -> tuple[datetime, str]:
    """The ``(decided_at, check_id)`` of a cursor of a newest-first list of checks."""
    at, cid = decode_cursor(text, kind, 2)
    try:
        when = parse_rfc3339(at) if type(at) is str and type(cid) is str else None
    except ValueError:
        when = None
    if when is None:
        raise cursor_problem()
    return when, cid
