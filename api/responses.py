"""Response classes: JSON, GeoJSON and RFC 9457 problem documents, serialized by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response

__all__ = ["GeoJSONResponse", "JSONResponse", "PreparedJSONResponse", "ProblemResponse", "dumps"]

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    """JSON bytes (NaN and infinities are written as null, numpy values as numbers)."""
    return orjson.dumps(content, option=_OPTS)


class JSONResponse(_StarletteJSONResponse):
    """``application/json`` rendered with orjson (a subclass of Starlette's, so that
    FastAPI documents a route's ``response_model`` for it, not ``{"type": "string"}``)."""

    media_type = "application/json"
    __init__ = Response.__init__  # not Starlette's wrapper of it: one call less per answer

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return dumps(content)


class GeoJSONResponse(JSONResponse):
    """``application/geo+json`` (RFC 7946)."""

    media_type = "application/geo+json"


class ProblemResponse(JSONResponse):
    """``application/problem+json`` (RFC 9457)."""

    media_type = "application/problem+json"


class PreparedJSONResponse(Response):
    """A 200 ``application/json`` answer of bytes already serialized, with header fields
    already encoded (lower-case names): the single-check route's answer, which skips
    Starlette's header set-up (a mapping built, each name lowered and encoded, the
    fields searched for a content type: ~2 us a request)."""

    media_type = "application/json"

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.body = body
        self.background = None
        self.raw_headers = [
            *headers,
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
        ]
