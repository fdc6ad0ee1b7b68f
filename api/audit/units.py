"""What the server hands the audit writer: rows, and a batch as one :class:`BatchUnit`.

A row is a tuple of the ``checks`` table's values in :data:`COLUMNS` order (a mapping
by column name is accepted too). A batch is one :class:`BatchUnit`: its request body as
received, which the writer compresses (zstd) and stores once in ``batch_bodies``, and
its checks' values as a few columns (arrays, one text per kind), from which the writer
builds the rows, each pointing into the body (``body_start``, ``body_end``; no body of
its own). Why: the verbatim body of every row was most of the audit log's bytes and of
the writer's CPU per batch, and pickling 10,000 row tuples cost the server ~9 µs a
check (measured, 10-fix checks); arrays and a few large texts pickle as copies, and the
row tuples are built on the writer's core. Why zstd (the ``zstandard`` package): a
batch's checks repeat their keys and much of their values, and zstd at level 1
compresses them ~6.7x at ~500 MB/s (measured, :data:`ZSTD_LEVEL`), decompressing faster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["BATCH_COLUMNS", "COLUMNS", "ZSTD_LEVEL", "BatchUnit"]

#: The ``checks`` columns, in the order of a row tuple (the table's order)
COLUMNS: tuple[str, ...] = (
    "check_id",
    "operator",
    "trip_id",
    "bike_id",
    "idempotency_key",
    "batch_id",
    "body",
    "decision",
    "outcome",
    "zone_id",
    "district",
    "zone_set_version",
    "policy_id",
    "ended_at",
    "decided_at",
    "decided_day",
    "policy_version",
    "device_class",
)
#: the columns after :data:`COLUMNS`: where a batch's check's body lies in its batch's
BATCH_COLUMNS: tuple[str, ...] = ("body_start", "body_end")
#: zstd level of the batch bodies. Measured on the bench's 10,000-check bodies (10 and 50
#: fixes, 2-core machine under load): level 1 stores 6.7x less than the text at ~500 MB/s;
#: level 3 6.3-6.4x at 160-280 MB/s, level 6 6.9-7.3x at ~60 MB/s (zlib level 1: 5.6-5.9x
#: at ~200 MB/s). The writer's CPU is the batch route's bound: level 1.
ZSTD_LEVEL = 1


@dataclass(slots=True)
class BatchUnit:
    """One batch for the writer: its body, stored once, and its checks' rows as columns.

    ``spans`` is an ``(n, 6)`` int64 array of byte ranges in ``raw``: the check's JSON
    text, its ``trip_id`` and ``bike_id`` strings (without quotes; plain ASCII, as
    :mod:`api._jsonscan` reads them). ``ended``: each check's ``ended_at`` (UTC; the
    same object for the same time, which pickles once). ``ids``: the check ids, concatenated
    (all of ``id_width`` characters). ``payload``: the response, decision ``i`` being
    ``payload[offsets[i]:offsets[i + 1] - 1]``. ``outcomes``, ``zones``, ``districts``:
    per check. ``class_codes``: per check, an index in ``classes`` or -1 (None: no
    check names a device class).

    ``rows`` instead of the columns (the slow paths, which parse every check anyway):
    the rows, in :data:`COLUMNS` + :data:`BATCH_COLUMNS` order, ``body`` empty.
    """

    batch_id: str
    operator: str
    raw: bytes
    decided_at: datetime
    n: int
    rows: list[tuple[Any, ...]] | None = None
    key: str | None = None
    spans: np.ndarray | None = None
    ids: str = ""
    id_width: int = 0
    payload: bytes = b""
    offsets: np.ndarray | None = None
    ended: list[datetime | None] | None = None
    outcomes: list[str] | None = None
    zones: list[str | None] | None = None
    districts: list[str | None] | None = None
    zone_set_version: int | None = None
    policy_id: str = ""
    policy_version: int | None = None
    day: str = ""
    class_codes: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.n

    def check_rows(self, stamp: Callable[[Any], Any]) -> list[Any]:
        """The checks' rows (:data:`COLUMNS` + :data:`BATCH_COLUMNS`), the times through
        ``stamp`` (the driver's form of a datetime)."""
        if self.rows is not None:
            return self.rows
        assert self.spans is not None and self.offsets is not None
        assert self.outcomes is not None and self.zones is not None
        assert self.districts is not None and self.ended is not None
        raw, w, ids, op, batch = self.raw, self.id_width, self.ids, self.operator, self.batch_id
        payload = self.payload
        offsets = self.offsets.tolist()
        ended = [stamp(e) for e in self.ended]
        key = self.key
        keys: list[str | None] = [None] * self.n
        if key is not None:
            keys = [key] + [f"{key}/{i}" for i in range(1, self.n)]
        classes = self.classes
        codes = [-1] * self.n if self.class_codes is None else self.class_codes.tolist()
        decided = stamp(self.decided_at)
        version, policy, pv, day = (
            self.zone_set_version,
            self.policy_id,
            self.policy_version,
            self.day,
        )
        return [
            (
                ids[i * w : i * w + w],
                op,
                raw[t0:t1].decode("ascii"),
                raw[b0:b1].decode("ascii"),
                keys[i],
                batch,
                "",
                payload[offsets[i] : offsets[i + 1] - 1].decode(),
                self.outcomes[i],
                self.zones[i],
                self.districts[i],
                version,
                policy,
                ended[i],
                decided,
                day,
                pv,
                None if codes[i] < 0 else classes[codes[i]],
                c0,
                c1,
            )
            for i, (c0, c1, t0, t1, b0, b1) in enumerate(self.spans.tolist())
        ]
