"""Bounds on a JSON request body, checked on its bytes before anything parses it.

Parsing a body makes Python objects (orjson), then validation objects and errors
(pydantic): a 1 MB body of 333,000 empty checks once made a 136 MB answer and a 2.9 GB
peak before the batch limit was looked at (issue 19). :func:`check` walks the bytes
once (a compiled loop, no object per value, ~1 GB/s) and refuses, before any parsing:

- an array with more items than its limit: the batch's ``checks`` (the array at depth
  1: ``GEOFENCE_BATCH_LIMIT``, 413 as before), a check's ``fixes``
  (``GEOFENCE_MAX_FIXES``), any other array (:data:`MAX_ITEMS`, the schema's longest:
  64 beacons);
- an object with more members than :data:`MAX_MEMBERS` (the schema's widest object
  has 8: 100,000 unknown keys are refused here, not listed one error each);
- a string or a bare scalar longer than :data:`MAX_TOKEN_BYTES` (the longest field,
  an id of 256 characters, escaped, fits);
- more containers (objects and arrays) than the batch could hold when valid, and a
  nesting deeper than :data:`MAX_DEPTH` (orjson's own limit: refused as not JSON).

Zone-set uploads are walked the same way with their own bounds
(:func:`zone_set_bounds`: features per set, vertices), so that 333,000 empty features
are refused before the validator parses them.

Each refusal names the place as a JSON Pointer, as the schema's errors do. Every
bound is looser than the schema (a body the schema accepts always passes), so this
changes what a hostile body costs, never the answer to a valid one. Malformed JSON is
left to the parser that words the error (the walk is lenient; it only counts).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba as nb
import numpy as np
import orjson

from api.errors import Problem

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_MEMBERS",
    "MAX_TOKEN_BYTES",
    "Bounds",
    "check",
    "item_spans",
    "item_texts",
    "zone_set_bounds",
]

#: items of an array other than ``checks`` and ``fixes`` (a check's beacons: 64)
MAX_ITEMS = 64
#: members of any object (a check has 8 fields, a fix 6)
MAX_MEMBERS = 16
#: bytes of a string (quotes excluded) or a number, true, false, null
MAX_TOKEN_BYTES = 4096
#: nesting of objects and arrays (orjson refuses deeper documents)
MAX_DEPTH = 1024

# statuses of the walk
_OK, _ITEMS, _MEMBERS, _TOKEN, _CONTAINERS, _DEPTH, _BATCH = range(7)
_FIXES = np.frombuffer(b"fixes", np.uint8).copy()


@dataclass(frozen=True, slots=True)
class Bounds:
    """The limits of one route's bodies: ``batch`` None for a single check's body.

    The defaults are those of check bodies; a zone-set upload passes its own
    (:func:`zone_set_bounds`). ``containers`` None: as many as ``batch`` valid checks
    hold. ``outer``: the name of the array ``batch`` bounds, for the 413."""

    batch: int | None
    fixes: int
    items: int = MAX_ITEMS
    members: int = MAX_MEMBERS
    token_bytes: int = MAX_TOKEN_BYTES
    containers: int | None = None
    outer: str = "checks"


def zone_set_bounds(zones: int, set_vertices: int, zone_vertices: int) -> Bounds:
    """Bounds of a zone-set upload: ``zones`` features, every vertex an array of its own;
    members, strings and other arrays generously (the validator words the rules)."""
    return Bounds(
        batch=zones,
        fixes=zone_vertices,
        items=max(zone_vertices, 4096),
        members=4096,
        token_bytes=1 << 20,
        containers=set_vertices + 64 * zones + 64,
        outer="features",
    )


@nb.njit(cache=True, nogil=True, boundscheck=True)
def _walk(
    b: np.ndarray,
    batch: int,
    fixes: int,
    max_items: int,
    max_members: int,
    max_token: int,
    max_containers: int,
    kind: np.ndarray,
    count: np.ndarray,
    key0: np.ndarray,
    key1: np.ndarray,
) -> tuple[int, int, int]:
    """Walks ``b``: ``(status, depth, limit)``, ``depth`` the levels of the stack that lead
    to the place refused; ``kind``/``count``/``key0``/``key1`` are the stack (1 object,
    2 array; items so far; the current key's byte span). ``batch`` < 0: no batch array."""
    n = len(b)
    depth = 0
    containers = 0
    expect_key = np.zeros(len(kind), np.bool_)
    need_value = np.zeros(len(kind), np.bool_)
    limit = np.zeros(len(kind), np.int64)
    i = 0
    while i < n:
        c = b[i]
        if c == 32 or c == 10 or c == 13 or c == 9 or c == 58:  # blanks, ':'
            if c == 58 and depth > 0:
                expect_key[depth - 1] = False
            i += 1
            continue
        if c == 44:  # ','
            if depth > 0:
                if kind[depth - 1] == 1:
                    expect_key[depth - 1] = True
                else:
                    need_value[depth - 1] = True
            i += 1
            continue
        if c == 125 or c == 93:  # '}' ']'
            if depth > 0:
                depth -= 1
            i += 1
            continue
        # a value or a key starts here
        if depth > 0:
            top = depth - 1
            if kind[top] == 2 and need_value[top]:
                need_value[top] = False
                count[top] += 1
                if count[top] > limit[top]:
                    if top == 1 and batch >= 0 and kind[0] == 1:
                        return _BATCH, top, limit[top]
                    return _ITEMS, top, limit[top]
            elif kind[top] == 1 and expect_key[top] and c == 34:
                count[top] += 1
                if count[top] > max_members:
                    return _MEMBERS, top, max_members
        if c == 123 or c == 91:  # '{' '['
            containers += 1
            if containers > max_containers:
                return _CONTAINERS, depth, max_containers
            if depth >= len(kind):
                return _DEPTH, depth, len(kind)
            kind[depth] = 1 if c == 123 else 2
            count[depth] = 0
            key0[depth] = -1
            key1[depth] = -1
            expect_key[depth] = c == 123
            need_value[depth] = c == 91
            lim = max_items
            if c == 91:
                if depth == 1 and batch >= 0 and kind[0] == 1:
                    lim = batch
                elif depth > 0 and kind[depth - 1] == 1:
                    s, e = key0[depth - 1], key1[depth - 1]
                    if e - s == 5:
                        same = True
                        for j in range(5):
                            if b[s + j] != _FIXES[j]:
                                same = False
                        if same:
                            lim = min(fixes, max_items)
            limit[depth] = lim
            depth += 1
            i += 1
            continue
        if c == 34:  # a string: to its closing quote
            s = i + 1
            j = s
            while j < n:
                d = b[j]
                if d == 92:
                    j += 2
                    continue
                if d == 34:
                    break
                j += 1
            if j - s > max_token:
                return _TOKEN, depth, max_token
            if depth > 0 and kind[depth - 1] == 1 and expect_key[depth - 1]:
                key0[depth - 1] = s
                key1[depth - 1] = j
            i = j + 1
            continue
        # a bare scalar: to the next structural byte or blank
        s = i
        while i < n:
            d = b[i]
            if d == 44 or d == 125 or d == 93 or d == 58 or d == 32 or d == 10 or d == 13:
                break
            if d == 9 or d == 34 or d == 123 or d == 91:
                break
            i += 1
        if i - s > max_token:
            return _TOKEN, depth, max_token
        if i == s:
            i += 1
    return _OK, 0, 0


def _pointer(raw: bytes, depth: int, kind: np.ndarray, count: np.ndarray, k0, k1) -> str:
    parts = []
    for d in range(depth):
        if kind[d] == 2:
            parts.append(str(max(int(count[d]) - 1, 0)))
        elif k0[d] >= 0:
            text = raw[k0[d] - 1 : k1[d] + 1]
            try:
                name = orjson.loads(text)
            except orjson.JSONDecodeError:
                name = text[1:-1].decode("utf-8", "replace")
            parts.append(str(name).replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(parts) if parts else ""


_STACKS = threading.local()


def _stack() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This thread's stack arrays of :func:`_walk` (it writes each level as it enters it
    and reads only the levels above, so they are reused, not zeroed: four fresh
    1,025-item arrays cost ~1 us a check)."""
    got = getattr(_STACKS, "arrays", None)
    if got is None:
        n = MAX_DEPTH + 1
        got = _STACKS.arrays = (
            np.zeros(n, np.int8),
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
        )
    return got


def check(raw: bytes, bounds: Bounds, *, prefix: str = "") -> None:
    """Raise a :class:`~api.errors.Problem` when ``raw`` exceeds ``bounds`` (see the
    module docstring); return None otherwise (which says nothing of its validity)."""
    batch = -1 if bounds.batch is None else bounds.batch
    max_containers = bounds.containers
    if max_containers is None:
        per_check = 3 + max(bounds.fixes, 0) + MAX_ITEMS
        max_containers = 1 + (batch if batch > 0 else 1) * per_check
    kind, count, k0, k1 = _stack()
    status, depth, limit = _walk(
        np.frombuffer(raw, np.uint8),
        batch,
        bounds.fixes,
        bounds.items,
        bounds.members,
        bounds.token_bytes,
        max_containers,
        kind,
        count,
        k0,
        k1,
    )
    if status == _OK:
        return
    if status == _BATCH and bounds.outer == "checks":
        raise Problem(
            413,
            "batch-too-large",
            f"more than {limit} checks in one batch; the limit is {limit} (GEOFENCE_BATCH_LIMIT)",
        )
    if status == _BATCH:
        msg = f"more than {limit} {bounds.outer} (GEOFENCE_ZONE_SET_ZONES_MAX)"
        raise Problem(
            422,
            "invalid-zone-set",
            f"{msg}; nothing was stored",
            errors=[{"feature": None, "rule": "too-many-zones", "message": msg}],
        )
    if status == _DEPTH:
        raise Problem(400, "malformed-json", f"the body nests deeper than {limit} levels")
    where = prefix + _pointer(raw, depth, kind, count, k0, k1)
    if status == _ITEMS:
        fixes = where.endswith("/fixes") and limit == min(bounds.fixes, bounds.items)
        setting = " (GEOFENCE_MAX_FIXES)" if fixes else ""
        kind_, msg = "too_long", f"an array of more than {limit} items{setting}"
    elif status == _MEMBERS:
        kind_, msg = "too_many_members", f"an object of more than {limit} members"
    elif status == _TOKEN:
        kind_, msg = "too_long", f"a string or value longer than {limit} bytes"
    else:
        kind_, msg = "too_large", f"more than {limit} objects and arrays in one body"
    raise Problem(
        422,
        "validation",
        f"{where or 'the body'}: {msg}",
        errors=[{"pointer": where, "type": kind_, "message": msg}],
    )


@nb.njit(cache=True, nogil=True, boundscheck=True)
def _spans(b: np.ndarray, out: np.ndarray) -> int:
    """Byte spans of the items of the array at depth 1 of ``b`` (a parsed, valid
    document): rows of ``out``; the number of items, or -1 when ``out`` is too short."""
    n = len(b)
    depth = 0
    k = 0
    i = 0
    start = -1
    while i < n:
        c = b[i]
        if c == 34:  # a string
            s = i
            i += 1
            while i < n and b[i] != 34:
                i += 2 if b[i] == 92 else 1
            i += 1
            if depth == 2:  # an item of the array
                if k >= len(out):
                    return -1
                out[k, 0], out[k, 1] = s, i
                k += 1
            continue
        if c == 123 or c == 91:
            if depth == 2:
                start = i
            depth += 1
        elif c == 125 or c == 93:
            depth -= 1
            if depth == 2 and start >= 0:
                if k >= len(out):
                    return -1
                out[k, 0], out[k, 1] = start, i + 1
                k += 1
                start = -1
        elif depth == 2 and c != 32 and c != 10 and c != 13 and c != 9 and c != 44:
            s = i  # a bare scalar
            while i < n and b[i] not in (44, 93, 32, 10, 13, 9):
                i += 1
            if k >= len(out):
                return -1
            out[k, 0], out[k, 1] = s, i
            k += 1
            continue
        i += 1
    return k


def item_spans(raw: bytes, n: int) -> np.ndarray | None:
    """The byte ranges ``(n, 2)`` of the ``n`` items of the array at depth 1 of the valid
    document ``raw`` (a batch's checks); None if there are not ``n``."""
    out = np.empty((n, 2), np.int64)
    if _spans(np.frombuffer(raw, np.uint8), out) != n:
        return None
    return out


def item_texts(raw: bytes, n: int) -> list[str] | None:
    """The JSON text, as received, of each of the ``n`` items of the array at depth 1
    of the valid document ``raw`` (a batch's checks); None if there are not ``n``."""
    out = item_spans(raw, n)
    return None if out is None else [raw[s:e].decode() for s, e in out.tolist()]
