"""Cacheable GET answers: ``ETag``, ``Last-Modified``, 304 and gzip (issue 15 item 4).

:func:`cacheable` answers a body the route already has (built or read once):

- ``ETag`` (strong; the gzip variant's is the same tag with ``-gz``, since a strong
  validator names one representation) and, when the route knows it,
  ``Last-Modified``;
- ``If-None-Match`` (weak comparison, RFC 9110 13.1.2: ``W/`` ignored, ``*`` matches,
  either variant's tag matches) answers 304 with the validators and no body; without
  it, ``If-Modified-Since`` does, at one-second resolution (HTTP dates);
- gzip when ``Accept-Encoding`` accepts it (``q=0`` refuses) and the body is worth it
  (over 1,400 bytes: one packet), with ``Vary: Accept-Encoding``.

Compression is per route's choice: a stored zone set's GeoJSON (7.6 MB for Zhuhai,
0.83 MB gzipped, in 0.2 s) is compressed once per version and kept
(:class:`GzipCache`); lists are compressed per answer at level 1 (fast; they are small
beside the download). The hot check routes' answers are never compressed: a decision
is ~600 bytes, under one packet.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["GzipCache", "accepts_gzip", "cacheable", "etag_of", "not_modified"]

#: below this, gzip saves nothing worth a header (one TCP packet)
MIN_GZIP_BYTES = 1400


def etag_of(body: bytes) -> str:
    """A strong ETag of ``body``: 128 bits of its SHA-256."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def accepts_gzip(request: Request) -> bool:
    """True when the request's ``Accept-Encoding`` accepts gzip (``gzip`` or ``*``, not
    at ``q=0``)."""
    value = request.headers.get("accept-encoding")
    if not value:
        return False
    star = None
    for part in value.lower().split(","):
        coding, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        coding = coding.strip()
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return bool(star)


def _tags(value: str) -> set[str]:
    out = set()
    for t in value.split(","):
        t = t.strip()
        if t.startswith("W/"):
            t = t[2:]
        out.add(t)
    return out


def not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """True when the request's validators say the client's copy is current."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = _tags(inm)
        return "*" in tags or etag in tags or _gz_tag(etag) in tags
    ims = request.headers.get("if-modified-since")
    if ims is None or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(ims)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified.replace(microsecond=0) <= since


def _gz_tag(etag: str) -> str:
    return etag[:-1] + '-gz"'


async def cacheable(
    request: Request,
    body: bytes | Callable[[], Awaitable[bytes]],
    *,
    media_type: str,
    etag: str | None = None,
    last_modified: datetime | None = None,
    cache_control: str | None = None,
    gzipped: Callable[[bytes], bytes] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``body`` with validators, 304 when the client's copy is current, gzipped when
    accepted. ``body`` may be a coroutine function, called only when the answer needs
    the bytes (with ``etag`` given, a 304 reads nothing); ``gzipped(body)`` gives the
    compressed bytes (default: level 1 now), in a worker thread past 64 KiB."""
    h = dict(headers or {})
    h["Vary"] = ", ".join(v for v in (h.get("Vary"), "Accept-Encoding") if v)
    if last_modified is not None:
        h["Last-Modified"] = format_datetime(last_modified.astimezone(UTC), usegmt=True)
    if cache_control is not None:
        h["Cache-Control"] = cache_control
    if etag is not None and not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=h | {"ETag": etag})
    if etag is not None and gzipped is not None and accepts_gzip(request):
        # a body compressed before under its ETag: neither built nor compressed again
        hit = getattr(gzipped, "cached", lambda: None)()
        if hit is not None:
            gz = h | {"ETag": _gz_tag(etag), "Content-Encoding": "gzip"}
            return Response(hit, media_type=media_type, headers=gz)
    data = body if isinstance(body, bytes) else await body()
    etag = etag or etag_of(data)
    h["ETag"] = etag
    if not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=h)
    if len(data) >= MIN_GZIP_BYTES and accepts_gzip(request):
        compress = gzipped or _gzip_fast
        if len(data) > 1 << 16:
            data = await run_in_threadpool(_one_at_a_time, compress, data)
        else:
            data = compress(data)
        h["ETag"] = _gz_tag(etag)
        h["Content-Encoding"] = "gzip"
    return Response(data, media_type=media_type, headers=h)


#: large answers are compressed in worker threads one at a time: zlib lets go of the
#: GIL, so clients looping large pages would otherwise keep every core compressing and
#: starve the event loop (the checks) of CPU; they wait for the compressor instead
_COMPRESSING = threading.Lock()


def _one_at_a_time(compress: Callable[[bytes], bytes], body: bytes) -> bytes:
    with _COMPRESSING:
        return compress(body)


def _gzip_fast(body: bytes) -> bytes:
    return gzip.compress(body, 1, mtime=0)


class GzipCache:
    """The gzip (``level``, 6 by default) of immutable bodies by key, the ``size`` most
    recent kept (a stored zone-set version never changes: compressed once, ~0.3 s for
    Zhuhai; a ``/v1/zones`` page is keyed by its ETag)."""

    def __init__(self, size: int = 2, level: int = 6) -> None:
        self.size = size
        self.level = level
        self._items: OrderedDict[object, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def compressor(self, key: object) -> Callable[[bytes], bytes]:
        """``gzipped`` for :func:`cacheable`: the body's gzip under ``key``."""

        def compress(body: bytes) -> bytes:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
            data = gzip.compress(body, self.level, mtime=0)
            with self._lock:
                self._items[key] = data
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return data

        def cached() -> bytes | None:
            with self._lock:
                return self._items.get(key)

        compress.cached = cached  # type: ignore[attr-defined]
        return compress
