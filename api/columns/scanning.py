"""A batch body read by the compiled reader (:mod:`api._jsonscan`) straight from its
bytes into the engine's arrays, with each check's byte ranges kept for the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import orjson

import geofence
from api import _jsonscan
from api.columns.reading import (
    _VEHICLE_BYTES,
    _arrays,
    _classes,
    parse_time_cached,
)
from api.models import MAX_FIXES
from geofence.decisions.inputs import Q_UNKNOWN
from geofence.rfc3339 import parse_rfc3339


def _convert(text: bytes, slow: np.ndarray, columns: tuple[np.ndarray, ...]) -> None:
    """Converts the numbers the reader left (``text``: comma-separated; ``slow``: rows
    ``(column, position)``) with orjson, into their columns."""
    values = np.array(orjson.loads(b"[" + text + b"]"), np.float64)
    for c, col in enumerate(columns):
        mine = slow[:, 0] == c
        if mine.any():
            col[slow[mine, 1]] = values[mine]


class Scanned(NamedTuple):
    """A batch read by :func:`scan_batch`: its arrays, each check's byte ranges in the
    body (``(n, 6)``: the check's JSON text, its ``trip_id`` and its ``bike_id``, plain
    ASCII) and each check's ``ended_at`` in UTC (one object per distinct time)."""

    batch: geofence.CheckBatch
    spans: np.ndarray
    ended: list[datetime]


def scan_batch(
    raw: bytes, operator: str | None, limit: int, *, max_fixes: int = MAX_FIXES
) -> Scanned | None:
    """The arrays of a batch body read straight from its bytes (:mod:`api._jsonscan`),
    and where each check lies in it; None unless the body is in the plain form that
    reader takes and every check is plainly valid (as :func:`check_batch` judges)."""
    n_bytes = len(raw)
    cap_checks = min(limit, n_bytes // 60 + 1)  # a check takes more than 60 bytes
    cap_fixes = n_bytes // 17 + 1  # {"lon":0,"lat":0}
    lon, lat, acc = (np.empty(cap_fixes) for _ in range(3))
    qual = np.empty(cap_fixes, np.int8)
    nfix = np.empty(cap_checks, np.int64)
    heading = np.empty(cap_checks)
    spans = np.empty((cap_checks, _jsonscan.N_SPANS, 2), np.int64)
    slow = np.empty((n_bytes // 16 + 1, 2), np.int64)  # numbers of 16 digits or more
    text = np.empty(n_bytes + n_bytes // 16 + 1, np.uint8)
    buf = np.frombuffer(raw, np.uint8)
    try:
        n, n_slow, n_text = _jsonscan.scan_batch(
            buf, cap_checks, max_fixes, lon, lat, acc, qual, nfix, heading, spans, slow, text
        )
    except IndexError:  # pragma: no cover - the reader's bounds are checked first
        return None
    if n <= 0:
        return None
    if n_slow:
        _convert(text[: n_text - 1].tobytes(), slow[:n_slow], (lon, lat, acc, heading))
    nfix, heading, spans = nfix[:n], heading[:n], spans[:n]
    lengths = spans[:, :, 1] - spans[:, :, 0]
    ids = lengths[:, _jsonscan.SPAN_TRIP : _jsonscan.SPAN_BIKE + 1]
    if not ((ids > 0) & (ids <= 256)).all():
        return None
    vehicles = _texts_of(buf, spans[:, _jsonscan.SPAN_VEHICLE], 5)
    if vehicles is None or not set(np.unique(vehicles).tolist()) <= _VEHICLE_BYTES:
        return None
    ends = _texts_of(buf, spans[:, _jsonscan.SPAN_ENDED], 64)
    if ends is None:
        return None
    distinct, which = np.unique(ends, return_inverse=True)
    seconds: list[float] = []
    utc: list[datetime] = []
    for end in distinct.tolist():
        text = end.decode()
        t = parse_time_cached(text)
        if t is None:
            return None
        seconds.append(t)
        utc.append(parse_rfc3339(text).astimezone(UTC))
    ended = np.array(seconds)[which]
    names: list[str | None] = [None] * n
    named = np.flatnonzero(spans[:, _jsonscan.SPAN_CLASS, 0] >= 0)
    if len(named):
        for k, (d0, d1) in zip(
            named.tolist(), spans[named, _jsonscan.SPAN_CLASS].tolist(), strict=True
        ):
            names[k] = raw[d0:d1].decode()
    classes = _classes(names)
    if classes is None:
        return None
    f = int(nfix.sum())
    quality = qual[:f] if (qual[:f] != Q_UNKNOWN).any() else None
    batch = _arrays(
        lon[:f],
        lat[:f],
        acc[:f],
        np.full(f, np.nan),
        nfix,
        ended,
        heading,
        operator,
        flat_quality=quality,
        classes=classes,
    )
    if batch is None:
        return None
    where = spans[:, : _jsonscan.SPAN_BIKE + 1].reshape(n, 6)
    return Scanned(batch, where, [utc[k] for k in which.tolist()])


def _texts_of(buf: np.ndarray, spans: np.ndarray, width: int) -> np.ndarray | None:
    """The byte strings at ``spans`` (``(n, 2)``) of ``buf`` as one ``S{width}`` array
    (one gather, no Python object per string); None if one is longer than ``width``."""
    lengths = spans[:, 1] - spans[:, 0]
    if len(lengths) and int(lengths.max()) > width:
        return None
    cols = np.arange(width)
    at = np.minimum(spans[:, :1] + cols, len(buf) - 1)
    out = np.where(cols < lengths[:, None], buf[at], 0).astype(np.uint8)
    return out.view(f"S{width}").ravel()
