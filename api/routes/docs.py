"""``/docs`` (Swagger UI) and ``/problems/{type}`` (a page per problem type): public.

Swagger UI is vendored under ``api/static/vendor/swagger-ui/`` (swagger-ui-dist from
the npm registry; version, provenance and licence beside it), as the map vendors
Leaflet: the page, its script and its style come from this server, so ``/docs`` works
with no network. FastAPI's own ``/docs`` and ``/redoc`` (which load from a CDN) are
off; ReDoc is not served (one viewer is enough, and it would be another 1 MB vendored).

Every problem document's ``type`` is a relative link, ``/problems/{slug}``; it answers
a short HTML page: the title, what happened, the fields to read and what to do. The
slugs are :data:`api.errors.PROBLEM_TYPES`; :data:`EXPLAIN` holds the text of each (a
test holds every type to its text; the types of branches not yet merged are there too).
The route is in the OpenAPI document with the slugs as an enum, so the types are listed
there too.
"""

from __future__ import annotations

import html
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from api.errors import PROBLEM_TYPES
from api.models import problems

__all__ = ["EXPLAIN", "install", "router"]

router = APIRouter()

SWAGGER_DIR = "vendor/swagger-ui"

#: slug -> (what it means, what to do)
EXPLAIN: dict[str, tuple[str, str]] = {
    "malformed-json": (
        "The body could not be parsed as JSON (HTTP 400). `detail` says where parsing stopped.",
        "Send a UTF-8 JSON document with `Content-Type: application/json`.",
    ),
    "validation": (
        "The request is JSON but breaks the schema in the OpenAPI document (HTTP 422): a "
        "missing or unknown field, a wrong type, a value out of range, a bad header or "
        "query parameter. `errors` lists every broken field: `pointer` (a JSON Pointer "
        "into the body, or `query:NAME`, `path:NAME`, `header:NAME`), `type` (the rule) "
        "and `message`.",
        "Fix each field `errors` names; the request schema is in `/openapi.json`.",
    ),
    "invalid-check": (
        "The check is well-formed but its evidence cannot be decided (HTTP 422): for "
        "example fixes out of time order or an end time far from the last fix. "
        "`errors[0].pointer` names the field, `errors[0].type` the rule; in a batch the "
        "pointer starts with `/checks/{index}`.",
        "Fix the named check; a batch is recorded all or none, so resend it whole.",
    ),
    "invalid-zone-set": (
        "The uploaded zone set breaks validation rules (HTTP 422); nothing was stored. "
        "`errors` lists each feature and rule, `report` the whole validation report.",
        "Fix the features named and upload again (`geofence zones validate` checks a file "
        "offline).",
    ),
    "invalid-policy": (
        "The policy document breaks validation rules (HTTP 422); nothing was stored. "
        "`errors` lists every bad field (`field`, `pointer`, `rule`, `message`).",
        "Fix the fields named and upload again.",
    ),
    "unknown-crs": (
        "A coordinate reference system the engine does not know (HTTP 422).",
        "Use one of wgs84, cgcs2000, gcj02, bd09.",
    ),
    "geofence-error": (
        "The engine refused the request for a reason without a more specific type "
        "(HTTP 422); `detail` says why.",
        "Correct the request as `detail` says.",
    ),
    "unauthorized": (
        "No `X-API-Key` header, or a key that is unknown or revoked (HTTP 401).",
        "Send a valid key in `X-API-Key` (`geofence keys create` makes one).",
    ),
    "forbidden": (
        "The key is valid but its role may not use this route (HTTP 403): checks take an "
        "operator key, zone sets, policies and statistics an admin key. Each operation's "
        "role is in the OpenAPI document (`x-role`).",
        "Use a key of the role the route needs.",
    ),
    "not-found": (
        "No such resource (HTTP 404): a check id of another operator is not found either.",
        "Check the id or version in the path.",
    ),
    "body-too-large": (
        "The body is over `GEOFENCE_MAX_BODY_BYTES` (HTTP 413); the connection is closed.",
        "Send less per request (split a batch).",
    ),
    "batch-too-large": (
        "A batch has more checks than `GEOFENCE_BATCH_LIMIT` (HTTP 413); nothing was "
        "decided. The limit is `maxItems` of `BatchRequest.checks` in the document.",
        "Split the batch.",
    ),
    "idempotency-conflict": (
        "The `Idempotency-Key` was already used by this operator for a different request "
        "(HTTP 422), or a concurrent request holds it (HTTP 409).",
        "Use a new key for a new request; on 409 retry the same request.",
    ),
    "unsupported-media-type": (
        "The body's `Content-Type` (or `Content-Encoding`) is not one the route takes "
        "(HTTP 415); `detail` names it.",
        "Send `application/json` (zone sets: `application/geo+json` too).",
    ),
    # the types of the habits and harden branches (issue 15 items 4-8; merged separately)
    "malformed-body": (
        "The body cannot be decoded (HTTP 400): for example a `Content-Encoding: gzip` "
        "body that is not gzip.",
        "Send the body as its `Content-Encoding` header says (gzip or none).",
    ),
    "stale-cursor": (
        "The page `cursor` no longer applies (HTTP 422): it is malformed, or was made for "
        "another query or another zone-set version.",
        "Start again from the first page (no `cursor`), then follow the `next` links.",
    ),
    "too-many-requests": (
        "This key (or this client, before its key is verified) is over its rate limit "
        "(HTTP 429). `Retry-After` says how many seconds to wait; the `RateLimit` and "
        "`RateLimit-Policy` headers state the quota.",
        "Wait `Retry-After` seconds, then retry; spread requests, or send batches.",
    ),
    "client-disconnected": (
        "The client closed the connection before its request was read whole; nothing "
        "was decided or recorded.",
        "Retry with the same `Idempotency-Key`.",
    ),
    "request-timeout": (
        "The request did not arrive in time (HTTP 408); the connection is closed.",
        "Send the request whole without pauses; retry.",
    ),
    "too-many-connections": (
        "The server holds as many connections as it takes (HTTP 503); the new one is "
        "refused at once.",
        "Retry after `Retry-After` seconds; reuse keep-alive connections.",
    ),
    "not-ready": (
        "The service is starting: the zone index is loading (HTTP 503, `Retry-After`).",
        "Retry after `Retry-After` seconds; `/readyz` says when it is ready.",
    ),
    "unavailable": (
        "The audit log could not record the decision, or the service is shutting down "
        "(HTTP 503); nothing was recorded, so the decision was not answered.",
        "Retry with the same `Idempotency-Key`.",
    ),
    "internal": (
        "An unexpected error (HTTP 500); it was logged with the request.",
        "Retry later; report it with the time and `X-Request-ID` if it persists.",
    ),
}

ProblemType = Enum("ProblemType", {s.replace("-", "_"): s for s in PROBLEM_TYPES}, type=str)  # type: ignore[misc]


def _md(text: str) -> str:
    """HTML of ``text`` with its `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def page(slug: str) -> str:
    """The HTML page of problem type ``slug``."""
    title = PROBLEM_TYPES[slug]
    what, todo = EXPLAIN.get(slug, ("", ""))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p><code>type</code>: <code>/problems/{html.escape(slug)}</code></p>"
        f"<h2>What happened</h2><p>{_md(what)}</p>"
        f"<h2>What to do</h2><p>{_md(todo)}</p>"
        "<h2>The problem document</h2><p>Every error is an RFC 9457 problem document "
        "(<code>application/problem+json</code>): <code>type</code> (this page), "
        "<code>title</code>, <code>status</code> (the HTTP status), <code>detail</code> "
        "(this occurrence, in words) and, when fields are at fault, <code>errors</code>. "
        'The schema is <code>Problem</code> in <a href="/openapi.json">/openapi.json</a>; '
        '<a href="/problems">every type</a>.</p></body></html>'
    )


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Zhuhai shared-bike parking geofence: API",
        swagger_js_url="/docs/static/swagger-ui-bundle.js",
        swagger_css_url="/docs/static/swagger-ui.css",
        swagger_favicon_url="/docs/static/favicon-32x32.png",
        # Swagger UI's default badge asks an online validator: nothing leaves the server
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(
    "/problems",
    tags=["problems"],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    summary="Every problem type, with a link to its page",
)
async def problem_index() -> HTMLResponse:
    items = "".join(
        f'<li><a href="/problems/{s}"><code>{s}</code></a>: {html.escape(t)}</li>'
        for s, t in PROBLEM_TYPES.items()
    )
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Problem types</title></head><body><h1>Problem types</h1>"
        f"<ul>{items}</ul></body></html>"
    )


@router.get(
    "/problems/{slug}",
    tags=["problems"],
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        **problems(422),
    },
    summary="What a problem type means and what to do about it",
)
async def problem_page(
    slug: Annotated[ProblemType, Path(description="The slug of a problem's `type`")],
) -> HTMLResponse:
    return HTMLResponse(page(slug.value))


def install(app: FastAPI) -> None:
    """Register the pages and Swagger UI's files on ``app``."""
    from api.routes.map import STATIC_DIR

    app.include_router(router)
    app.mount("/docs/static", StaticFiles(directory=STATIC_DIR / SWAGGER_DIR), name="docs-static")
