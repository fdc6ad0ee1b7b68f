"""What the two versioned admin resources (``/v1/zone-sets``, ``/v1/policies``) share: the
upload's media-type check and the lookup of one stored version that answers 404.

Both resources are immutable versions with an upload, a list, the active one, one
version and an activation; their bodies and what activation does differ (a zone set
builds an index, a policy swaps parameters), so only these two steps are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api.errors import Problem

__all__ = ["one_version", "upload_media_type"]

T = TypeVar("T")


def upload_media_type(request: Request, *accepted: str) -> str:
    """The upload's media type (``application/json`` when the header is missing), or 415
    naming the accepted ones."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in accepted:
        raise Problem(415, "unsupported-media-type", f"send {' or '.join(accepted)}, not {ctype}")
    return ctype


async def one_version(lookup: Callable[[int], T | None], version: int, what: str) -> T:
    """``lookup(version)`` in a worker thread, or 404 ``no {what} version {version}``."""
    info = await run_in_threadpool(lookup, version)
    if info is None:
        raise Problem(404, "not-found", f"no {what} version {version}")
    return info
