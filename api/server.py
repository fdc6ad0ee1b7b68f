"""``geofence serve``: prepare the database, print first-run keys, run uvicorn.

On a fresh database the command creates the schema, seeds the bundled zone set as
version 1 (active), and creates an admin key and one operator key for each demo
operator, printing them once (only hashes are stored). Then uvicorn serves
``api.app:create_app_from_env`` (a factory, so every worker process builds its app
from the same ``GEOFENCE_*`` settings).

Connection hygiene (issue 19: idle connections and headers sent a byte every 0.5 s
were never closed; 20,000 of them exhausted the file descriptors). uvicorn closes an
idle keep-alive connection after ``timeout_keep_alive`` (``GEOFENCE_KEEPALIVE_TIMEOUT_S``)
but has no timeout on receiving a request: its keep-alive timer is re-armed on every
byte, and a fresh connection that sends nothing is never timed (uvicorn issue #157,
"--timeout-request-start / --timeout-request-complete", closed unimplemented). Its
documented extension point is the HTTP protocol class (the ``http`` option), so
:class:`GuardedHttpToolsProtocol` is uvicorn's own httptools protocol with three
additions and nothing else re-implemented:

- a request's line and headers must arrive within ``GEOFENCE_HEADER_TIMEOUT_S`` of its
  first byte (or of the connection's opening): else ``408`` and the connection closes;
- its body within ``GEOFENCE_BODY_TIMEOUT_S`` after the headers: else the connection
  closes (the app sees a disconnect);
- at most ``GEOFENCE_MAX_CONNECTIONS`` open connections per process: one over it gets
  ``503`` with ``Retry-After`` and is closed at once, so its descriptor is freed (the
  soft ``RLIMIT_NOFILE`` is raised toward the hard one to leave room for the cap).

Closes for these reasons are counted and logged at most once per 10 s per reason (a
flood writes a line, not a line per connection). The two timeouts are deadlines checked
by one periodic sweep per server, not timers armed per request (see the class).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import Settings

__all__ = [
    "DEMO_OPERATORS",
    "ConnectionLimits",
    "GuardedHttpToolsProtocol",
    "configure_logging",
    "prepare",
    "run",
    "uvicorn_options",
]

log = logging.getLogger("geofence.server")

DEMO_OPERATORS = ("meituan", "hellobike", "qingju")


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """JSON lines on stderr for the service's loggers (the access log included)."""
    from api.metrics import AccessLogFormatter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(AccessLogFormatter())
    for name in ("geofence", "uvicorn.error"):  # geofence.server's lines included
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def prepare(settings: Settings, out: TextIO | None = None) -> dict[str, Any]:
    """Migrate, seed an empty database, create demo keys if there are none.

    Returns ``{"seeded": version or None, "keys": {name: key}}`` and prints what it
    did to ``out`` (the keys only this once).
    """
    from api.storage import Store

    out = out or sys.stdout
    store = Store.open(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with store.exclusive("setup"):  # several servers starting on one empty database
            return _prepare(store, settings, out)
    finally:
        store.close()


def _prepare(store: Any, settings: Settings, out: TextIO) -> dict[str, Any]:
    from api.service import seed

    seeded = seed(store, settings.seed_file)
    info = None if seeded is None else seeded[0]
    if info is not None:
        print(
            f"seeded zone set version {info.version} ({info.n_zones} zones, "
            f"{info.n_fenced} fenced) from {settings.seed_file}",
            file=out,
        )
    keys: dict[str, str] = {}
    if not store.has_keys():
        key, _ = store.create_key("admin")
        keys["admin"] = key
        for name in DEMO_OPERATORS:
            key, _ = store.create_key("operator", name)
            keys[name] = key
        print("API keys (shown once, only their hashes are stored):", file=out)
        for name, key in keys.items():
            role = "admin" if name == "admin" else "operator"
            print(f"  {role:<8} {name:<10} {key}", file=out)
    out.flush()
    return {"seeded": None if info is None else info.version, "keys": keys}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The timeouts and the connection cap of :class:`GuardedHttpToolsProtocol`."""

    header_s: float = 10.0
    body_s: float = 60.0
    max_connections: int = 1000

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.header_timeout_s, settings.body_timeout_s, settings.max_connections)


class _Tally:
    """Closes per reason, logged at most once per ``every`` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.counts: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.logged = 0.0

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.total[reason] = self.total.get(reason, 0) + 1
        now = time.monotonic()
        if now - self.logged >= self.every:
            self.logged = now
            what = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items()))
            log.warning("connections closed: %s (in the last %.0f s at most)", what, self.every)
            self.counts.clear()


_RESPONSE_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_RESPONSE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _raw(template: bytes, status: int, slug: str, title: str, detail: str) -> bytes:
    import orjson

    body = orjson.dumps(
        {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    )
    return template % (len(body), body)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request timeouts and a connection cap (see the
    module docstring). ``limits``: set by :func:`run`; a worker process started by
    uvicorn's supervisor (which imports this class by name) reads them from its
    ``GEOFENCE_*`` environment on its first connection, as its app does.

    The timeouts are deadlines, not timers: a request's phases set ``_due`` (the event
    loop's clock, one C call), and one sweep per server, every quarter of the shorter
    timeout (0.05-1 s), closes the connections past theirs. A timer armed and cancelled
    per phase cost two ``call_later`` and two cancellations per request (~4.7 us CPU a
    request measured on uvloop, on a loaded machine); a deadline may be overrun by up
    to the sweep's interval.
    """

    limits: ClassVar[ConnectionLimits | None] = None
    tally: ClassVar[_Tally] = _Tally()
    #: loop time by which the current phase must be over (0: none), and its reason
    _due: float = 0.0
    _reason: str = "header_timeout"

    @classmethod
    def _limits(cls) -> ConnectionLimits:
        if cls.limits is None:
            cls.limits = ConnectionLimits.of(Settings())
        return cls.limits

    def _expired(self, reason: str) -> None:
        self._due = 0.0
        if self.transport.is_closing():
            return
        self.tally.add(reason)
        if reason == "header_timeout":
            self.transport.write(
                _raw(
                    _RESPONSE_408,
                    408,
                    "request-timeout",
                    "Request Timeout",
                    "the request's headers did not arrive in time (GEOFENCE_HEADER_TIMEOUT_S)",
                )
            )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self._limits()
        if len(self.connections) > limits.max_connections:
            self.tally.add("over_max_connections")
            transport.write(
                _raw(
                    _RESPONSE_503,
                    503,
                    "too-many-connections",
                    "Service Unavailable",
                    "too many open connections (GEOFENCE_MAX_CONNECTIONS); retry",
                )
            )
            transport.close()
            return
        self._due = self.loop.time() + limits.header_s
        self._reason = "header_timeout"
        _sweeping(self.loop, self.server_state, limits)

    def connection_lost(self, exc: Exception | None) -> None:
        self._due = 0.0
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._due:
            self._due = self.loop.time() + self._limits().header_s
            self._reason = "header_timeout"

    def on_headers_complete(self) -> None:
        self._due = self.loop.time() + self._limits().body_s
        self._reason = "body_timeout"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._due = 0.0
        super().on_message_complete()


def _sweeping(loop: asyncio.AbstractEventLoop, server_state: Any, limits: ConnectionLimits) -> None:
    """Start the sweep of ``server_state``'s connections (once per server)."""
    if getattr(server_state, "geofence_sweep", False):
        return
    server_state.geofence_sweep = True
    every = min(max(min(limits.header_s, limits.body_s) / 4, 0.05), 1.0)
    loop.call_later(every, _sweep, loop, server_state.connections, every)


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any], every: float) -> None:
    """Close the connections past their deadline; again in ``every`` seconds."""
    now = loop.time()
    try:
        for proto in [c for c in connections if 0.0 < getattr(c, "_due", 0.0) <= now]:
            proto._expired(proto._reason)
    finally:
        if not loop.is_closed():
            loop.call_later(every, _sweep, loop, connections, every)


def _raise_fd_limit(want: int) -> None:
    """Raise the soft limit on open files toward ``want`` (at most the hard limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options ``geofence serve`` uses (the HTTP benchmark serves its
    baseline app with the same ones)."""
    opts: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_level": settings.log_level,
        "access_log": False,  # the app writes its own JSON access log
        "proxy_headers": False,
        "server_header": False,
        "date_header": True,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": settings.keepalive_timeout_s,
        "backlog": 2048,
    }
    try:
        import uvloop  # noqa: F401 - only probing that it is installed

        opts["loop"] = "uvloop"
    except ImportError:
        opts["loop"] = "asyncio"
    # httptools is a dependency: the guarded protocol is uvicorn's httptools one
    opts["http"] = "api.server:GuardedHttpToolsProtocol"
    return opts


def run(settings: Settings) -> None:
    """Serve until interrupted (blocking)."""
    import uvicorn

    # worker processes (and the factory) read their settings from the environment
    env = {
        "GEOFENCE_HOST": settings.host,
        "GEOFENCE_PORT": str(settings.port),
        "GEOFENCE_WORKERS": str(settings.workers),
    }
    os.environ.update(env)
    configure_logging(settings.log_level)
    GuardedHttpToolsProtocol.limits = ConnectionLimits.of(settings)
    _raise_fd_limit(settings.max_connections + 1024)
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        log_config=None,
        **uvicorn_options(settings),
    )
