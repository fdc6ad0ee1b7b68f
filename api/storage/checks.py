"""The audit log's reads, and the cache of batch bodies they share.

Rows are written by :class:`api.audit.AuditWriter` (group commit, its own process);
:meth:`CheckStore.insert_checks` is the same insert for callers that own a transaction.
A batch's check's body (migration 6) is read from its batch's body, stored once and
zstd-compressed, which every reader here decompresses once per read (a page of checks
from one batch: once) and keeps for the next reads (the last few, up to
:data:`BODY_CACHE_BYTES`: the pages of a search or an export walk one batch after
another).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import Connection, Engine

from api import schema as t
from api.partitions import id_window
from api.storage.base import StoreBase
from api.storage.engine import as_utc, keyset_before, rfc3339
from api.storage.records import Idempotent

__all__ = ["BODY_CACHE_BYTES", "CheckStore", "GroupBy"]

GroupBy = Literal["operator", "district", "zone", "day"]

#: decompressed batch bodies kept by a store for the next reads, in bytes at most
BODY_CACHE_BYTES = 64 << 20


class CheckStore(StoreBase):
    """The audit log of :class:`api.storage.Store`, with its cache of batch bodies."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._bodies = _BodyCache(BODY_CACHE_BYTES)

    def insert_checks(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert audit-log rows on ``conn`` (the caller owns the transaction)."""
        if rows:
            conn.execute(sa.insert(t.checks), list(rows))

    def find_idempotent(self, operator: str, key: str) -> Idempotent | None:
        """What ``operator`` recorded under this idempotency key, or None.

        One key space per operator across ``POST /v1/checks`` and ``/v1/checks/batch``:
        a single check's row carries the key itself; a batch's first row carries the
        key too and its others ``key/1``, ``key/2``, … (a key has no ``/``), so the
        unique index on ``(operator, idempotency_key)`` refuses a key's second use on
        either route, race-free (on PostgreSQL the primary key of ``check_keys``, the
        checks table being partitioned: :mod:`api.partitions`). The first row is found
        by its exact key, a batch's others by its ``batch_id`` (indexed). Exact
        comparisons only, no ``LIKE`` pattern, so the result is the same on every
        backend and collation (case-sensitive, ``%`` and ``_`` taken literally). The
        bodies are read through the batch's stored body (migration 6) when the rows
        point into it.
        """
        c_ = t.checks.c
        cols = (c_.idempotency_key, c_.batch_id, c_.body, c_.decision, c_.body_start, c_.body_end)
        by_key = sa.select(*cols)
        with self.engine.connect() as c:
            if self.dialect == "postgresql":
                # partitioned: the key's check and time from check_keys, then the row
                # from its month's partition alone (pruned when the query is planned;
                # a join would plan every partition)
                k = t.check_keys.c
                claim = c.execute(
                    sa.select(k.check_id, k.decided_at).where(
                        k.operator == operator, k.idempotency_key == key
                    )
                ).first()
                if claim is None:
                    return None
                by_key = by_key.where(
                    c_.check_id == claim.check_id, c_.decided_at == claim.decided_at
                )
            else:
                by_key = by_key.where(c_.operator == operator, c_.idempotency_key == key)
            first = c.execute(by_key).first()
            if first is None:
                return None
            if first.batch_id is None:
                return Idempotent(None, self._body_texts(c, [first]), [first.decision])
            rows = c.execute(
                sa.select(*cols).where(c_.batch_id == first.batch_id, c_.operator == operator)
            ).all()
            texts = self._body_texts(c, rows)
        prefix = key + "/"
        found: dict[int, tuple[str, str]] = {}
        for r, b in zip(rows, texts, strict=True):
            k = r.idempotency_key
            if k == key:
                found[0] = (b, r.decision)
            elif k is not None and k.startswith(prefix) and k[len(prefix) :].isdigit():
                found[int(k[len(prefix) :])] = (b, r.decision)
        ordered = [found[i] for i in sorted(found)]
        return Idempotent(first.batch_id, [b for b, _ in ordered], [d for _, d in ordered])

    def _body_texts(self, c: Connection, rows: Sequence[Any]) -> list[str]:
        """Each row's check body as received: its own (``body``), or its bytes in its
        batch's stored body (``body_start``, ``body_end``)."""
        need = {r.batch_id for r in rows if r.body_start is not None}
        bodies = {b: raw for b in need if (raw := self._bodies.get(b)) is not None}
        missing = sorted(need - bodies.keys())
        if missing:
            bb = t.batch_bodies.c
            for batch_id, packed in c.execute(
                sa.select(bb.batch_id, bb.body).where(bb.batch_id.in_(missing))
            ):
                raw = zstandard.ZstdDecompressor().decompress(packed)
                bodies[batch_id] = raw
                self._bodies.put(batch_id, raw)
        return [
            r.body
            if r.body_start is None
            else bodies[r.batch_id][r.body_start : r.body_end].decode()
            for r in rows
        ]

    def get_check(self, check_id: str) -> dict[str, Any] | None:
        """One audit-log record, or None. On PostgreSQL (partitioned by month), looked
        for first around the time its id was drawn (:func:`api.partitions.id_window`)."""
        q = sa.select(t.checks).where(t.checks.c.check_id == check_id)
        window = id_window(check_id) if self.dialect == "postgresql" else None
        with self.engine.connect() as c:
            r = None
            if window is not None:  # partitioned: the month(s) of the id's time first
                at = t.checks.c.decided_at
                r = c.execute(q.where(at >= window[0], at < window[1])).first()
            if r is None:
                r = c.execute(q).first()
            return None if r is None else _check_record(r, self._body_texts(c, [r])[0])

    def search_checks(
        self,
        *,
        operator: str | None = None,
        trip_id: str | None = None,
        bike_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit-log records matching every filter given, newest first (``decided_at``
        then ``check_id``, descending: a total order), after ``before`` in that order.

        Served by an index: with a trip, ``ix_checks_trip_decided_at`` (migration 5);
        else the operator's and time's (``ix_checks_operator_decided_at``) or time's,
        newest first, the other filters read from the rows until the page is full (a
        bike is not indexed: give it a time range to bound that read).
        """
        c = t.checks.c
        conds = []
        if operator is not None:
            conds.append(c.operator == operator)
        if trip_id is not None:
            conds.append(c.trip_id == trip_id)
        if bike_id is not None:
            conds.append(c.bike_id == bike_id)
        if outcome is not None:
            conds.append(c.outcome == outcome)
        if since is not None:
            conds.append(c.decided_at >= since.astimezone(UTC))
        if until is not None:
            conds.append(c.decided_at < until.astimezone(UTC))
        if before is not None:
            conds.append(keyset_before(c.decided_at, c.check_id, before))
        q = (
            sa.select(t.checks)
            .where(*conds)
            .order_by(c.decided_at.desc(), c.check_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            texts = self._body_texts(conn, rows)
        return [_check_record(r, b) for r, b in zip(rows, texts, strict=True)]

    def count_checks(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t.checks)).scalar() or 0)

    def check_ids(self) -> set[str]:
        with self.engine.connect() as c:
            return set(c.execute(sa.select(t.checks.c.check_id)).scalars())

    def iter_checks(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        operator: str | None = None,
        device_class: str | None = None,
        chunk: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Audit-log records decided in ``[since, until)``, oldest first, in chunks
        (of one operator, one device class, when given)."""
        conds = []
        if device_class is not None:
            conds.append(t.checks.c.device_class == device_class)
        if since is not None:
            conds.append(t.checks.c.decided_at >= since.astimezone(UTC))
        if until is not None:
            conds.append(t.checks.c.decided_at < until.astimezone(UTC))
        if operator is not None:
            conds.append(t.checks.c.operator == operator)
        last: tuple[datetime, str] | None = None
        while True:
            q = sa.select(t.checks).where(*conds)
            if last is not None:
                q = q.where(
                    sa.or_(
                        t.checks.c.decided_at > last[0],
                        sa.and_(t.checks.c.decided_at == last[0], t.checks.c.check_id > last[1]),
                    )
                )
            q = q.order_by(t.checks.c.decided_at, t.checks.c.check_id).limit(chunk)
            with self.engine.connect() as c:
                rows = c.execute(q).all()
                texts = self._body_texts(c, rows)
            for r, b in zip(rows, texts, strict=True):
                yield _check_record(r, b)
            if len(rows) < chunk:
                return
            last = (rows[-1].decided_at, rows[-1].check_id)

    def stats(
        self,
        group_by: GroupBy,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """Checks, settle/reject/review counts and the in-box rate, per group.

        The in-box rate is ``settle / checks``: the share of trip ends that stood in a
        fenced box. Groups are sorted by key (days, operators, districts) or, for
        zones, by number of checks (the busiest first); ``truncated`` says that more
        than ``limit`` groups matched (``total`` counts every one).
        """
        col = {
            "operator": t.checks.c.operator,
            "district": t.checks.c.district,
            "zone": t.checks.c.zone_id,
            "day": t.checks.c.decided_day,
        }[group_by]
        conds = []
        if since is not None:
            conds.append(t.checks.c.decided_at >= since.astimezone(UTC))
        if until is not None:
            conds.append(t.checks.c.decided_at < until.astimezone(UTC))

        def count_of(outcome: str) -> Any:
            return sa.func.sum(sa.case((t.checks.c.outcome == outcome, 1), else_=0))

        n = sa.func.count().label("checks")
        aggs = (
            n,
            count_of("settle").label("settle"),
            count_of("reject").label("reject"),
            count_of("review").label("review"),
        )
        q = sa.select(col.label("key"), *aggs).where(*conds).group_by(col)
        q = q.order_by(n.desc(), col) if group_by == "zone" else q.order_by(col)
        with self.engine.connect() as c:
            rows = c.execute(q.limit(limit + 1)).all()
            total = c.execute(sa.select(*aggs).where(*conds)).first()
        truncated = len(rows) > limit
        rows = rows[:limit]

        def shape(r: Any) -> dict[str, Any]:
            checks = int(r.checks or 0)
            settle = int(r.settle or 0)
            return {
                "checks": checks,
                "settle": settle,
                "reject": int(r.reject or 0),
                "review": int(r.review or 0),
                "in_box_rate": (settle / checks) if checks else None,
            }

        return {
            "group_by": group_by,
            "from": rfc3339(since),
            "to": rfc3339(until),
            "groups": [{"key": r.key, **shape(r)} for r in rows],
            "total": shape(total),
            # more groups than ``limit``: ``total`` still counts them all
            "truncated": truncated,
        }


class _BodyCache:
    """Decompressed batch bodies by batch id, the most recently used kept up to
    ``max_bytes`` in all (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> bytes | None:
        with self._lock:
            raw = self._items.get(batch_id)
            if raw is not None:
                self._items.move_to_end(batch_id)
            return raw

    def put(self, batch_id: str, raw: bytes) -> None:
        if len(raw) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(batch_id, None)
            self._size += len(raw) - (0 if old is None else len(old))
            self._items[batch_id] = raw
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


def _check_record(r: Any, body: str) -> dict[str, Any]:
    return {
        "check_id": r.check_id,
        "operator": r.operator,
        "trip_id": r.trip_id,
        "bike_id": r.bike_id,
        "idempotency_key": r.idempotency_key,
        "batch_id": r.batch_id,
        "zone_set_version": r.zone_set_version,
        "policy": r.policy_id,
        "policy_version": r.policy_version,
        "decided_at": rfc3339(as_utc(r.decided_at)),
        "request": orjson.loads(body),
        "decision": orjson.loads(r.decision),
    }
