"""The OpenAPI document (``/openapi.json``): FastAPI's, made into the contract clients
generate from.

FastAPI writes the paths, parameters and the ``response_model`` schemas of the route
decorators; this module adds what it cannot know and fixes what it gets wrong for this
service, in one pass after generation (cached: the document is built once per app):

- the hot routes' request bodies (``CheckRequest``, ``BatchRequest``): they parse their
  own bytes (no injection), so their schemas come from :func:`api.models.request_schemas`
  and ``BatchRequest.checks.maxItems`` from ``GEOFENCE_BATCH_LIMIT``;
- errors: FastAPI attaches ``responses={...: {"model": ...}}`` to ``application/json``
  and adds its own ``HTTPValidationError`` for 422; every error the service sends is
  ``application/problem+json`` with the ``Problem`` schema, so every 4xx/5xx entry is
  rewritten to that and FastAPI's validation schemas are dropped;
- roles: read from each route's dependencies (:data:`api.auth.admin`,
  :data:`api.auth.operator`, :data:`api.auth.any_role`) or, for the hot routes that
  authenticate without injection, from their ``security`` entry. A keyed route gets the
  ``X-API-Key`` requirement, ``x-role``, a "Role:" line in its description and the
  401, 403 (one role only) and 429 (per-key rate limit, ``Retry-After``) it can answer;
  a public route gets ``security: []``;
- every route but the public feeds' (``/mds/``, ``/gbfs/``) answers 422 naming a query
  parameter it does not take (:func:`api.habits.reject_unknown_query`);
- ``servers`` (relative: the document is right behind any proxy), licence, contact.

Operation ids are the route functions' names (:func:`operation_id`): ``post_check``, not
FastAPI's ``post_check_v1_checks_post``; a generated client's functions read as the
routes do.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from api import auth, models
from api.habits import LENIENT_QUERY_PREFIXES
from api.models import PROBLEM_JSON, MdsDocument, MdsError, Problem, problems, request_schemas
from api.settings import Settings

__all__ = ["ROLE_ADMIN", "ROLE_ANY", "ROLE_OPERATOR", "build", "operation_id", "role_of"]

ROLE_ADMIN, ROLE_OPERATOR, ROLE_ANY = "admin", "operator", "operator or admin"

_REF = "#/components/schemas/{model}"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

#: the rate limiter's answer headers (api/ratelimit.py)
_RATE_HEADERS = {
    "Retry-After": {
        "description": "Seconds to wait before the next request",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit": {
        "description": "The key's remaining quota (IETF draft RateLimit header fields)",
        "schema": {"type": "string"},
    },
    "RateLimit-Policy": {
        "description": "The quota and its window (IETF draft RateLimit header fields)",
        "schema": {"type": "string"},
    },
}


def operation_id(route: APIRoute) -> str:
    """The route function's name (routes sharing a function set ``operation_id``)."""
    return route.name


def _calls(dependant: Any) -> set[Any]:
    out = set()
    for d in dependant.dependencies:
        out.add(d.call)
        out |= _calls(d)
    return out


def _dependency(alias: Any) -> Any:
    return alias.__metadata__[0].dependency


def role_of(route: APIRoute) -> str | None:
    """The role a route needs (None: public)."""
    calls = _calls(route.dependant)
    if _dependency(auth.admin) in calls:
        return ROLE_ADMIN
    if _dependency(auth.operator) in calls:
        return ROLE_OPERATOR
    if _dependency(auth.any_role) in calls:
        return ROLE_ANY
    if (route.openapi_extra or {}).get("security") == auth.SECURITY:
        return ROLE_OPERATOR  # the hot routes: api.auth.operator_of
    return None


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}}


def _is_problem(content: dict[str, Any]) -> bool:
    """An error entry that is a problem document: declared so, FastAPI's own 422, or
    declared without content (everything but the MDS routes' errors, which declare
    MDS's error object)."""
    if not content or PROBLEM_JSON in content:
        return True
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    return ref.endswith(("/Problem", "/HTTPValidationError"))


def _restore_examples(schemas: dict[str, Any]) -> None:
    """The response models' examples as written: FastAPI drops every ``None`` from the
    document (``exclude_none``), which made examples with a null field invalid."""
    for name, model in vars(models).items():
        if name in schemas and isinstance(model, type) and issubclass(model, BaseModel):
            examples = model.model_json_schema(mode="serialization").get("examples")
            if examples:
                schemas[name]["examples"] = examples


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The document of ``app`` (see the module docstring)."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=TAGS,
        servers=[{"url": "/", "description": "This server (relative to the document)"}],
        contact={"name": "Zhuhai shared-bike parking geofence"},
        license_info={"name": "MIT", "identifier": "MIT"},
    )
    # after FastAPI's models: they would check the address with email-validator
    schema["info"]["contact"]["email"] = settings.feed_contact_email
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    _restore_examples(schemas)
    schemas.update(request_schemas())
    for model in (Problem, MdsDocument, MdsError):  # referenced by `$ref` in `responses=`
        s = model.model_json_schema(ref_template=_REF, mode="serialization")
        schemas.update(s.pop("$defs", {}))
        schemas.setdefault(model.__name__, s)
    schemas["BatchRequest"]["properties"]["checks"]["maxItems"] = settings.batch_limit
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    scheme = next(iter(schema["components"]["securitySchemes"]))

    roles = {
        (ctx.path_format, method.lower()): role_of(ctx.original_route)
        for ctx in iter_route_contexts(app.routes)
        if isinstance(ctx.original_route, APIRoute)
        for method in ctx.methods
    }
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            role = roles.get((path, method))
            responses = op.setdefault("responses", {})
            if role is None:
                op["security"] = []
            else:
                op["security"] = [{scheme: []}]
                op["x-role"] = role
                line = f"**Role:** {role} key (`X-API-Key`)."
                op["description"] = line + (
                    "\n\n" + op["description"] if "description" in op else ""
                )
                wanted = [401, 429] if role == ROLE_ANY else [401, 403, 429]
                for code, entry in problems(*wanted).items():
                    responses.setdefault(str(code), entry)
                responses["429"]["headers"] = _RATE_HEADERS
            if not path.startswith(LENIENT_QUERY_PREFIXES):  # an unknown query parameter
                responses.setdefault("422", problems(422)[422])
            for code, entry in responses.items():
                if code[0] in "45" and _is_problem(entry.get("content") or {}):
                    entry["content"] = _problem_content()
            op["responses"] = dict(sorted(responses.items()))
    return schema


TAGS: list[dict[str, Any]] = [
    {"name": "checks", "description": "Trip-end checks in, decisions out (operator keys)"},
    {"name": "zones", "description": "The active zone set's zones"},
    {"name": "zone sets", "description": "Versioned zone sets: upload, activate, roll back"},
    {"name": "policies", "description": "Versioned decision policies (admin keys)"},
    {"name": "stats", "description": "Checks and in-box rates (admin keys)"},
    {"name": "map", "description": "The city map's data"},
    {"name": "health", "description": "Liveness, readiness and metrics (public)"},
    {"name": "standards (public)", "description": "MDS 2.0 Geography and GBFS feeds"},
    {
        "name": "problems",
        "description": "A page per problem `type`: what it means and what to do (public)",
    },
]
