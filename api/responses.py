"""Response classes: JSON, GeoJSON and RFC 9457 problem documents, serialized by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response

__all__ = ["GeoJSONResponse", "JSONResponse", "ProblemResponse", "dumps"]

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
