"""Group commit for the audit log.

Requests hand their rows to :meth:`AuditWriter.write` and wait; one writer thread
takes everything queued (up to ``max_rows``, optionally waiting ``window_s`` for
more), inserts it in one transaction, commits, and wakes each waiting request. A
response is therefore sent only after its rows are durable, and many requests share
one commit (one fsync), so durability costs little throughput.

One request's rows (a whole batch) are one unit: they are committed together or
not at all. If a commit fails because of one unit (an idempotency key used twice
concurrently), the writer retries the units one by one, so the others still commit;
the unit that conflicts is answered :data:`CONFLICT` and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from api import schema as t

__all__ = ["COMMITTED", "CONFLICT", "AuditWriter", "WriterClosed"]

log = logging.getLogger("geofence.audit")

COMMITTED = "committed"
CONFLICT = "conflict"


class WriterClosed(RuntimeError):
    """The audit writer is stopped: nothing can be recorded."""


@dataclass(slots=True)
class _Unit:
    rows: Sequence[Mapping[str, Any]]
    done: Callable[[str | BaseException], None]
    queued_at: float = field(default_factory=time.perf_counter)


_STOP = object()


class AuditWriter:
    """One thread that commits queued audit-log rows in groups.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    window_s : float
        After taking the first queued unit, wait up to this long for more (0: take
        only what is already queued; the time a commit takes already groups the
        requests that arrive meanwhile).
    max_rows : int
        Rows per transaction at most (a unit is never split).
    on_commit : callable(n_rows, n_units, seconds), optional
        Called after each commit (metrics).
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        window_s: float = 0.0,
        max_rows: int = 20_000,
        on_commit: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.window_s = window_s
        self.max_rows = max_rows
        self.on_commit = on_commit
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._closed = False
        self._carry: _Unit | None = None
        self._thread.start()

    # ------------------------------------------------------------------ API
    async def write(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """Queue ``rows`` (one unit) and wait until committed: returns :data:`COMMITTED`,
        or :data:`CONFLICT` if the idempotency constraint refused the unit."""
        if self._closed:
            raise WriterClosed("the audit log is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()

        def resolve(result: str | BaseException) -> None:
            if fut.done():  # the request was cancelled meanwhile; its rows are committed
                return
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

        def done(result: str | BaseException) -> None:
            loop.call_soon_threadsafe(resolve, result)

        self._q.put(_Unit(rows, done))
        return await asyncio.shield(fut)

    def write_sync(self, rows: Sequence[Mapping[str, Any]], timeout: float = 60.0) -> str:
        """Blocking :meth:`write`, for code outside the event loop."""
        if self._closed:
            raise WriterClosed("the audit log is closed")
        box: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
        self._q.put(_Unit(rows, box.put))
        result = box.get(timeout=timeout)
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._q.put(_STOP)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the thread
    def _take(self) -> tuple[list[_Unit], bool]:
        """Block for one unit, then take more (window, row cap). Returns (units, stop)."""
        units: list[_Unit] = []
        n = 0
        stop = False
        first = self._carry if self._carry is not None else self._q.get()
        self._carry = None
        if first is _STOP:
            return units, True
        units.append(first)
        n += len(first.rows)
        deadline = time.perf_counter() + self.window_s
        while n < self.max_rows:
            try:
                if self.window_s > 0:
                    left = deadline - time.perf_counter()
                    item = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
                else:
                    item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            if n + len(item.rows) > self.max_rows:
                self._carry = item
                break
            units.append(item)
            n += len(item.rows)
        return units, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            units, stop = self._take()
            if units:
                self._commit(units)
        # stopped: commit what is left (a unit over the row cap, late arrivals), then exit
        rest = [self._carry] if self._carry is not None else []
        self._carry = None
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                rest.append(item)
        for i in range(0, len(rest), 64):
            self._commit(rest[i : i + 64])

    def _commit(self, units: list[_Unit]) -> None:
        t0 = time.perf_counter()
        rows = [r for u in units for r in u.rows]
        try:
            with self.engine.begin() as c:
                if rows:
                    c.execute(sa.insert(t.checks), rows)
        except sa.exc.IntegrityError:
            self._commit_one_by_one(units)
        except Exception as exc:  # the database is down: every waiting request fails
            log.exception("audit log commit failed (%d rows)", len(rows))
            for u in units:
                u.done(exc)
            return
        else:
            for u in units:
                u.done(COMMITTED)
        if self.on_commit is not None:
            self.on_commit(len(rows), len(units), time.perf_counter() - t0)

    def _commit_one_by_one(self, units: list[_Unit]) -> None:
        for u in units:
            try:
                with self.engine.begin() as c:
                    if u.rows:
                        c.execute(sa.insert(t.checks), list(u.rows))
            except sa.exc.IntegrityError:
                u.done(CONFLICT)
            except Exception as exc:
                log.exception("audit log commit failed")
                u.done(exc)
            else:
                u.done(COMMITTED)
