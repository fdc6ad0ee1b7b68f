"""``/v1/policies``: store, list and activate decision-policy versions (admin).

Versioned like zone sets. An upload is the JSON document ``geofence calibrate``
writes (``geofence.Policy.to_mapping()``, every field optional); it is validated
(every bad field named, not only the first) and stored as a new, inactive version
with its parameters filled in. Activation records the new active version and swaps
the policy of this process's :class:`api.service.Active` (nothing to build: the
index stays); the other processes follow within the poll interval. Rollback is
activating an older version. Every decision records the policy's id and version.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import admin
from api.errors import Problem, policy_error
from api.models import (
    PolicyActivation,
    PolicyInfo,
    PolicyList,
    policy_document_schema,
    problems,
)
from api.responses import JSONResponse
from api.routes import ready_state, store_of
from api.routes.versions import one_version, upload_media_type
from api.service import load_policy, policy_errors, policy_from, policy_params

__all__ = ["router"]

router = APIRouter(prefix="/v1/policies", tags=["policies"])

Version = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[2])]

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "A policy document (`geofence.Policy.to_mapping()`; every field "
        "optional, defaults for the others)",
        "content": {"application/json": {"schema": policy_document_schema()}},
    }
}


@router.post(
    "",
    status_code=201,
    response_model=PolicyInfo,
    responses=problems(400, 413, 415, 422, 503),
    openapi_extra=_UPLOAD_BODY,
    summary="Store a policy document as a new inactive version",
)
async def upload_policy(
    request: Request,
    who: admin,
    source: Annotated[
        str | None, Query(max_length=500, description="Where the document came from")
    ] = None,
) -> JSONResponse:
    store = store_of(request)
    upload_media_type(request, "application/json")
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "malformed-json", f"the request body is not valid JSON: {exc}") from None
    errs = policy_errors(doc)
    if errs:
        raise Problem(
            422,
            "invalid-policy",
            f"{len(errs)} error(s) in the policy document; nothing was stored",
            errors=[policy_error(e) for e in errs],
        )
    policy = policy_from(doc)
    info = await run_in_threadpool(
        store.add_policy,
        policy_params(policy),
        policy.id,
        source=source or "upload",
        actor=who.key_id,
    )
    return JSONResponse(
        info.to_dict(), status_code=201, headers={"Location": f"/v1/policies/{info.version}"}
    )


@router.get(
    "",
    response_model=PolicyList,
    responses=problems(503),
    summary="Every stored policy version, newest first, and the active one",
)
async def list_policies(request: Request, who: admin) -> JSONResponse:
    store = store_of(request)
    infos = await run_in_threadpool(store.policy_versions)
    active = next((i.version for i in infos if i.active), None)
    return JSONResponse({"active": active, "policies": [i.to_dict() for i in infos]})


@router.get(
    "/active",
    response_model=PolicyInfo,
    responses=problems(404, 503),
    summary="The active policy version (the one this server decides with)",
)
async def active_policy(request: Request, who: admin) -> JSONResponse:
    st = ready_state(request)
    version = st.active.policy_version
    info = None if version is None else await run_in_threadpool(st.store.policy_version, version)
    if info is None:
        raise Problem(404, "not-found", "no policy version is active")
    d = info.to_dict()
    d["active"] = True
    return JSONResponse(d)


@router.get(
    "/{version}",
    response_model=PolicyInfo,
    responses=problems(404, 422, 503),
    summary="One policy version and its document",
)
async def get_policy(request: Request, who: admin, version: Version) -> JSONResponse:
    info = await one_version(store_of(request).policy_version, version, "policy")
    return JSONResponse(info.to_dict())


@router.post(
    "/{version}/activate",
    response_model=PolicyActivation,
    responses=problems(404, 422, 503),
    summary="Make a policy version active, atomically (also rollback)",
)
async def activate_policy(request: Request, who: admin, version: Version) -> JSONResponse:
    st = ready_state(request)
    async with st.swap_lock:
        try:
            policy = await run_in_threadpool(load_policy, st.store, version)
        except KeyError:
            raise Problem(404, "not-found", f"no policy version {version}") from None
        previous = await run_in_threadpool(st.store.activate_policy, version, actor=who.key_id)
        st.set_active(st.active.with_policy(policy, version))
    info = await run_in_threadpool(st.store.policy_version, version)
    return JSONResponse({"active": version, "previous": previous, "policy": info.to_dict()})
