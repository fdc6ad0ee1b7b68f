"""Prometheus metrics and the access log, as one pure ASGI middleware.

Each app has its own :class:`Metrics` (its own registry), so tests can build many
apps in one process. Requests are labelled by route template (``/v1/checks/{check_id}``,
not the raw path) so the label set stays small; unknown paths are ``<unmatched>``.

The access log is one JSON line per request on standard error: ``ts``, ``method``,
``path``, ``route``, ``status``, ``ms``, ``bytes_out``, ``client``, ``request_id``
(``X-Request-ID``, the client's or a generated one: :mod:`api.habits`) and, when known,
``key_id``, ``operator``, ``check_id``, ``n_checks`` and ``zone_set_version``. Lines
are buffered in memory and written by a background thread every 100 ms (one system
call for many requests, none on the request path); a crash can lose the last 100 ms
of access log, never the audit log.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "AccessLogFormatter", "Metrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class Metrics:
    """The service's metrics, in their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "geofence_http_requests",
            "HTTP requests by method, route template and status",
            ("method", "route", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "geofence_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "geofence_decisions", "Decisions recorded, by outcome", ("outcome",), registry=r
        )
        self.active_version = Gauge(
            "geofence_active_zone_set_version", "The zone-set version decisions use", registry=r
        )
        self.active_policy_version = Gauge(
            "geofence_active_policy_version", "The policy version decisions use", registry=r
        )
        self.zones = Gauge("geofence_active_zones", "Zones in the active zone set", registry=r)
        self.build_seconds = Gauge(
            "geofence_index_build_seconds",
            "Seconds the last zone index build took (ZoneSet + ZoneIndex)",
            registry=r,
        )
        self.ready = Gauge("geofence_ready", "1 when the index is loaded and warm", registry=r)
        self.commit_rows = Histogram(
            "geofence_audit_commit_rows",
            "Audit-log rows per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 512, 2048, 10_000, 50_000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "geofence_audit_commit_seconds",
            "Seconds per audit-log group commit",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.activations = Counter(
            "geofence_zone_set_activations", "Zone-set activations (and rollbacks)", registry=r
        )
        self._children = {}
        self._outcomes: dict[str, Any] = {}

    def on_commit(self, n_rows: int, n_units: int, seconds: float) -> None:
        self.commit_rows.observe(n_rows)
        self.commit_seconds.observe(seconds)

    def decided(self, outcome: str, n: int = 1) -> None:
        """Count ``n`` recorded decisions of ``outcome`` (the child bound once, cached)."""
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self.decisions.labels(outcome)
        child.inc(n)

    def request_children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The (counter, histogram) children of one label set, bound once and cached."""
        key = (method, route, status)
        hit = self._children.get(key)
        if hit is None:
            hit = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = hit
        return hit

    _children: dict[tuple[str, str, int], tuple[Any, Any]]


class AccessLog:
    """JSON lines buffered in memory, written to ``stream`` by a thread every ``interval`` s."""

    def __init__(self, stream: BinaryIO, interval: float = 0.1) -> None:
        self._stream = stream
        self._interval = interval
        self._lock = threading.Lock()
        self._buf: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)

    def start(self) -> None:
        """Start the writing thread (the app's lifespan does)."""
        if not self._thread.is_alive():
            self._thread.start()

    def emit(self, fields: dict[str, Any]) -> None:
        line = orjson.dumps(fields)
        with self._lock:
            self._buf.append(line)

    def flush(self) -> None:
        with self._lock:
            buf, self._buf = self._buf, []
        if buf:
            try:
                self._stream.write(b"\n".join(buf) + b"\n")
                self._stream.flush()
            except (OSError, ValueError):  # stderr closed: drop the lines, keep serving
                pass

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
        self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.flush()


class AccessLogFormatter(logging.Formatter):
    """Formats log records as JSON lines (a record's ``fields`` extra, if any, verbatim)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is None:
            fields = {
                "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
            if record.exc_info:
                fields["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(fields).decode()


class MetricsMiddleware:
    """Counts, times and logs every HTTP request (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, log: AccessLog | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        sent = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            dt = time.perf_counter() - t0
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"]
            state = scope.get("state")
            if state and "http_method" in state:  # HEAD, served as GET (api.habits)
                method = state["http_method"]
            count, hist = self.metrics.request_children(method, template, status)
            count.inc()
            hist.observe(dt)
            if self.log is not None:
                self.log.emit(self._fields(scope, method, template, status, dt, sent))

    @staticmethod
    def _fields(
        scope: Scope, method: str, template: str, status: int, dt: float, sent: int
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(),
            "method": method,
            "path": scope["path"],
            "route": template,
            "status": status,
            "ms": round(dt * 1e3, 3),
            "bytes_out": sent,
        }
        state = scope.get("state") or {}
        p = state.get("principal")
        if p is not None:
            fields["key_id"] = p.key_id
            if p.operator:
                fields["operator"] = p.operator
        for name in ("request_id", "check_id", "n_checks", "zone_set_version"):
            if name in state:
                fields[name] = state[name]
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        return fields
