"""Response classes: JSON, GeoJSON and RFC 9457 problem documents, serialized by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["GeoJSONResponse", "JSONResponse", "ProblemResponse", "dumps"]

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    """JSON bytes (NaN and infinities are written as null, numpy values as numbers)."""
    return orjson.dumps(content, option=_OPTS)


class JSONResponse(Response):
    """``application/json`` rendered with orjson."""

    media_type = "application/json"

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
