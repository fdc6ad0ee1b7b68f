"""``X-API-Key`` authentication and the two roles.

Keys are stored only as SHA-256 hashes (:mod:`api.storage`). A presented key is
hashed and looked up by hash; the stored hash is compared with
``hmac.compare_digest``. Verified keys are cached for ``key_cache_seconds`` (default
1 s) so that a check costs no database read; a key revoked with ``geofence keys
revoke`` stops working within that time. Unknown keys are never cached (each costs
one indexed read).

No key, an unknown key or a revoked key: 401. A key whose role may not use the
route: 403. The operator of a check is its key's operator.

Throttling (:mod:`api.ratelimit`): every unknown or revoked key is charged to the
client address it came from; an address out of allowance gets 429 before its key is
looked up, unless the key is one this process has verified before (its look-up still
runs, so a revocation still takes effect within the TTL). With a per-key rate
(``GEOFENCE_KEY_RATE_PER_S``), each verified request is charged to its key.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from api import ratelimit
from api.errors import Problem
from api.storage import ApiKey, Store, hash_key

__all__ = [
    "SECURITY",
    "KeyCache",
    "Principal",
    "admin",
    "any_role",
    "authenticate",
    "authenticate_scope",
    "operator",
    "operator_of",
    "require_admin",
    "require_operator",
]

_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `geofence keys create` (operator or admin role).",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, role and (for operator keys) operator."""

    key_id: str
    role: str
    operator: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class KeyCache:
    """Hash -> verified key record, each trusted for ``ttl`` seconds."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._lock = threading.Lock()
        #: hash -> (verified at, record, its principal: one object for all its requests)
        self._cache: dict[str, tuple[float, ApiKey, Principal]] = {}
        #: look-ups inline on the event loop (a local SQLite file), or in a worker
        #: thread (a database over the network: an outage must not stall the loop)
        self.inline = store.dialect == "sqlite"
        #: (failed-authentication meter, per-key meter), made from the app's settings
        self.meters: tuple[ratelimit.Meter | None, ratelimit.Meter | None] | None = None

    def known(self, key: str) -> bool:
        """True when ``key`` was verified by this process before (however long ago)."""
        return hash_key(key) in self._cache

    def cached(self, key: str) -> ApiKey | None:
        """The record of ``key`` if verified within the TTL, else None (no I/O)."""
        hit = self._hit(key)
        return None if hit is None else hit[1]

    def _hit(self, key: str) -> tuple[float, ApiKey, Principal] | None:
        h = hash_key(key)
        hit = self._cache.get(h)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            if hmac.compare_digest(hit[1].key_hash, h):
                return hit
        return None

    def verify(self, key: str) -> ApiKey | None:
        """Look ``key`` up in the store (blocking); caches a known, unrevoked key."""
        rec = self.store.lookup_key(key)
        h = hash_key(key)
        with self._lock:
            if rec is None or rec.revoked:
                self._cache.pop(h, None)
                return None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[h] = (time.monotonic(), rec, Principal(rec.id, rec.role, rec.operator))
        return rec


async def authenticate(request: Request, key: str | None) -> Principal:
    """The caller of ``request`` presenting ``key`` (401 unless known and unrevoked)."""
    return await authenticate_scope(request.app.state.geofence, request.scope, key)


async def authenticate_scope(st: Any, scope: Scope, key: str | None) -> Principal:
    """:func:`authenticate` of the request ``scope`` to the app whose state is ``st``
    (:class:`api.app.AppState`): the hot routes' form, with no Request object.

    A key verified within the cache's TTL is one dictionary read (and the per-key
    meter's charge when there is one): the client's address is read only when a key
    has to be looked up or is refused."""
    if not key:
        raise Problem(
            401,
            "unauthorized",
            "send an API key in the X-API-Key header",
            headers={"WWW-Authenticate": 'APIKey header="X-API-Key"'},
        )
    cache: KeyCache | None = st.keys
    if cache is None:
        raise Problem(503, "not-ready", "the service is starting")
    meters = cache.meters
    if meters is None:
        s = st.settings
        meters = cache.meters = (
            ratelimit.auth_meter(s.auth_failures_per_min),
            ratelimit.key_meter(s.key_rate_per_s, s.key_rate_burst),
        )
    failures, per_key = meters
    hit = cache._hit(key)
    if hit is None:
        p = await _look_up(cache, failures, scope, key)
    else:
        p = hit[2]
    if per_key is not None:
        wait, _, _ = per_key.charge(p.key_id)
        if wait > 0:
            raise ratelimit.throttled(per_key, wait, "this key's request rate is exceeded")
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    state["principal"] = p
    return p


async def _look_up(
    cache: KeyCache, failures: ratelimit.Meter | None, scope: Scope, key: str
) -> Principal:
    """A key not verified within the TTL: throttled per address, then looked up."""
    client = scope.get("client")
    address = client[0] if client else "-"
    if failures is not None and not cache.known(key):
        wait = failures.wait(address)
        if wait > 0:
            raise ratelimit.throttled(
                failures, wait, f"too many failed authentications from {address}"
            )
    if cache.inline:
        # an indexed read, done inline: once per key per TTL, it costs less than a hop to
        # a worker thread, whose Python code would contend with the engine for the GIL
        rec = cache.verify(key)
    else:
        rec = await run_in_threadpool(cache.verify, key)
    if rec is None:
        if failures is not None:
            failures.charge(address)
        raise Problem(
            401,
            "unauthorized",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'APIKey header="X-API-Key"'},
        )
    return Principal(rec.id, rec.role, rec.operator)


def require_operator(p: Principal) -> Principal:
    """403 unless ``p`` is an operator key."""
    if p.role != "operator" or not p.operator:
        raise Problem(
            403, "forbidden", "this route takes an operator key (checks are per operator)"
        )
    return p


def require_admin(p: Principal) -> Principal:
    """403 unless ``p`` is an admin key."""
    if p.role != "admin":
        raise Problem(403, "forbidden", "this route takes an admin key")
    return p


async def operator_of(request: Request) -> Principal:
    """The operator calling ``request``: the hot routes' auth without dependency injection
    (they declare :data:`SECURITY` in their OpenAPI entry instead)."""
    return require_operator(await authenticate(request, request.headers.get("x-api-key")))


#: ``openapi_extra`` security entry of routes that authenticate with :func:`operator_of`.
SECURITY = [{"APIKeyHeader": []}]


async def _principal(
    request: Request, key: Annotated[str | None, Security(_header)] = None
) -> Principal:
    return await authenticate(request, key)


async def _operator(p: Annotated[Principal, Depends(_principal)]) -> Principal:
    return require_operator(p)


async def _admin(p: Annotated[Principal, Depends(_principal)]) -> Principal:
    return require_admin(p)


any_role = Annotated[Principal, Depends(_principal)]
operator = Annotated[Principal, Depends(_operator)]
admin = Annotated[Principal, Depends(_admin)]
