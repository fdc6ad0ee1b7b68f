"""What every route shares: the RFC 9457 problem document, ``problems(*codes)`` (a
route's ``responses=`` with one description per status), a download's 304 and the
health answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ProblemError(BaseModel):
    """One broken field, header, feature or rule of a problem's ``errors``."""

    pointer: str | None = Field(
        default=None,
        description="JSON Pointer into the body (`/fixes/0/lat`), or `query:NAME`, "
        "`path:NAME`, `header:NAME`",
    )
    type: str | None = Field(default=None, description="The rule broken (pydantic's error type)")
    message: str
    field: str | None = Field(default=None, description="A policy document's field")
    feature: str | None = Field(default=None, description="A zone set's feature id")
    rule: str | None = Field(default=None, description="The zone-set or policy rule broken")


class Problem(BaseModel):
    """An RFC 9457 problem document (every 4xx and 5xx, `application/problem+json`).

    ``type`` is a relative reference to a page that explains the problem
    (`/problems/{slug}`, listed under the `problems` tag); ``about:blank`` for a plain
    HTTP status (an unknown route, a method not allowed).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/validation",
                    "title": "The request does not match the schema",
                    "status": 422,
                    "detail": "1 field(s) failed validation",
                    "errors": [
                        {
                            "pointer": "/fixes/0/lat",
                            "type": "less_than_equal",
                            "message": "Input should be less than or equal to 90",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(examples=["/problems/validation"])
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None
    errors: list[ProblemError] | None = None
    report: dict[str, Any] | None = Field(
        default=None, description="invalid-zone-set: the full validation report"
    )


class Health(BaseModel):
    status: Literal["ok", "ready"]
    zone_set_version: int | None = None


#: an error's description per status, for the document
_STATUS_TEXT: dict[int, str] = {
    400: "The body is not JSON (malformed-json)",
    401: "No API key, or an unknown or revoked one (unauthorized)",
    403: "This key's role may not use this route (forbidden)",
    404: "Not found (not-found)",
    409: "A concurrent request holds the Idempotency-Key; retry (idempotency-conflict)",
    413: "The body or the batch is over its limit (body-too-large, batch-too-large)",
    415: "The body's media type or encoding is not accepted (unsupported-media-type)",
    422: "The request breaks the schema or a rule (validation and the types it names)",
    429: "Too many requests for this key: wait `Retry-After` seconds",
    503: "The service is starting or cannot record decisions (not-ready, unavailable)",
}

PROBLEM_JSON = "application/problem+json"


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: the errors it really answers, each a problem document
    (the keyed routes' 401, 403 and 429 are added by :mod:`api.openapi` from the role)."""
    return {
        code: {
            "description": _STATUS_TEXT[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


#: a download's 304 (``If-None-Match`` / ``If-Modified-Since``: api/downloads.py)
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified since the `ETag` or `Last-Modified` the client holds"}
}
