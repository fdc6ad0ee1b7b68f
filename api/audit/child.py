"""The writer process (``python -m api.audit``): read units, commit them in groups, answer.

One request's rows (a whole batch) are one unit: they are committed together or not
at all. If a commit fails because of one unit (an idempotency key used twice
concurrently), the writer retries the units one by one, so the others still commit;
the unit that conflicts is answered :data:`CONFLICT` and writes nothing.

The child inserts the rows with the database driver's ``executemany`` and one prepared
statement, not SQLAlchemy's per-row bind processing (measured: that was most of the
writer's CPU per row); on SQLite it writes the timestamps in the text format
SQLAlchemy's ``DateTime`` reads back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from api.audit.frames import _HEADER, _PIPE_BYTES, COMMITTED, CONFLICT, _frame
from api.audit.units import BATCH_COLUMNS, COLUMNS, ZSTD_LEVEL, BatchUnit

__all__: list[str] = []

_TIMES = (COLUMNS.index("ended_at"), COLUMNS.index("decided_at"))
_TEXT = (COLUMNS.index("body"), COLUMNS.index("decision"))
#: text committed between checkpoints: with the pages each commit rewrites (the table's
#: and the indexes'), about SQLite's automatic 1,000 pages of log (measured 2.5-5x)
_CHECKPOINT_BYTES = 1 << 20


def _same(value: Any) -> Any:
    return value


class _Child:
    """The writer process: read units, commit them in groups, answer."""

    def __init__(self, url: str, sync: str, window_s: float, max_rows: int) -> None:
        import zstandard

        from api.storage import make_engine
        from api.storage import schema as t

        assert tuple(c.name for c in t.checks.columns) == COLUMNS + BATCH_COLUMNS
        self.engine = make_engine(url, sqlite_synchronous=sync)
        dialect = self.engine.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def insert_sql(table: str, cols: Sequence[str]) -> str:
            return (
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
            )

        self.sql = insert_sql(t.checks.name, COLUMNS)
        self.sql_batch = insert_sql(t.checks.name, COLUMNS + BATCH_COLUMNS)
        self.sql_body = insert_sql(t.batch_bodies.name, [c.name for c in t.batch_bodies.columns])
        self.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self.sqlite = dialect.name == "sqlite"
        dbapi = dialect.loaded_dbapi
        self.integrity_error: type[Exception] = dbapi.IntegrityError
        #: errors that are one row's, not the connection's: the database's refusal of a
        #: value (DataError), or the driver's before sending it (e.g. sqlite3's
        #: OverflowError for an integer of more than 64 bits)
        self.row_errors: tuple[type[Exception], ...] = (
            dbapi.IntegrityError,
            dbapi.DataError,
            OverflowError,
            ValueError,
            TypeError,
        )
        self.conn: Any = None
        self.logged = 0  # bytes of text committed since the last checkpoint
        self.unwhole = 0  # ... since the log was last wholly copied (see checkpoint())
        self._checkpointer: threading.Thread | None = None  # see checkpoint()
        self._copying = threading.Event()  # the thread is asked to copy, or copying
        self._copied = threading.Event()  # it is done: the remainder on self.conn
        self._closing = False
        self._stamps: dict[Any, str | None] = {}
        self.window_s = window_s
        self.max_rows = max_rows
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.carry: tuple[int, Any] | None = None
        self.out = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)  # nothing else may write to the answer pipe
        sys.stdout = sys.stderr

    def read_loop(self) -> None:
        fin = os.fdopen(os.dup(0), "rb", buffering=_PIPE_BYTES)
        try:
            while True:
                head = fin.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    break
                (n,) = _HEADER.unpack(head)
                data = fin.read(n)
                if len(data) < n:
                    break
                for unit in pickle.loads(data):
                    self.q.put(unit)
        finally:
            self.q.put(None)  # end of input: the server closed the pipe or died

    def take(self) -> tuple[list[tuple[int, Any]], bool]:
        units: list[tuple[int, Any]] = []
        first = self.carry if self.carry is not None else self.q.get()
        self.carry = None
        if first is None:
            return units, True
        units.append(first)
        n = len(first[1])
        stop = False
        deadline = time.perf_counter() + self.window_s
        while n < self.max_rows:
            try:
                left = deadline - time.perf_counter()
                item = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            if n + len(item[1]) > self.max_rows:
                self.carry = item
                break
            units.append(item)
            n += len(item[1])
        return units, stop

    def _stamp(self, value: Any) -> str | None:
        """A timestamp as SQLite's ``DateTime`` stores it (UTC, no offset); cached."""
        s = self._stamps.get(value)
        if s is None and value is not None:
            v = value.astimezone(UTC)
            s = (
                f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
                f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
            )
            if len(self._stamps) >= 4096:
                self._stamps.clear()
            self._stamps[value] = s
        return s

    def params(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The driver's parameters of ``rows`` (tuples in :data:`COLUMNS` order)."""
        out = [r if type(r) is tuple else tuple(r[c] for c in COLUMNS) for r in rows]
        if self.sqlite:
            i, j = _TIMES
            stamp = self._stamp
            out = [(*r[:i], stamp(r[i]), stamp(r[j]), *r[j + 1 :]) for r in out]
        return out

    def prepare(self, unit: Any) -> tuple[list[Any], list[Any], list[Any], int]:
        """A unit's driver parameters: ``(rows, batch rows, batch body rows, text
        bytes)``; a batch's body compressed here, on the writer's core."""
        if not isinstance(unit, BatchUnit):
            rows = self.params(unit)
            body, decision = _TEXT
            size = sum(len(r[body]) + len(r[decision]) for r in rows)
            return rows, [], [], size
        stamp = self._stamp if self.sqlite else _same
        packed = self.zstd.compress(unit.raw)
        head = (unit.batch_id, unit.operator, stamp(unit.decided_at), unit.n, packed)
        if unit.rows is not None:  # built by the server: its times as any row's
            rows = self.params(unit.rows)
            size = sum(len(r[_TEXT[1]]) for r in rows)
            return [], rows, [head], len(packed) + size
        return [], unit.check_rows(stamp), [head], len(packed) + len(unit.payload)

    def _connect(self) -> Any:
        """The writer's connection; on SQLite without automatic checkpoints
        (:meth:`checkpoint` runs them after the answers are sent)."""
        conn = self.engine.raw_connection()
        if self.sqlite:
            cur = conn.cursor()
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()
        return conn

    def checkpoint(self, force: bool = False) -> None:
        """SQLite: copy the write-ahead log into the database once ``_CHECKPOINT_BYTES``
        of rows were committed, off the commit path.

        SQLite otherwise checkpoints inside the commit that takes the log past 1,000
        pages, and the requests waiting for that commit wait for the copy and the
        database's fsync too (measured: ~20 % of the writer's CPU for 50-fix batches).
        Run on the writer's connection after the answers are sent, the copy still held
        up the units that arrived meanwhile: at 1,000 checks/s a checkpoint took 8-30 ms
        (most of it the database file's fsync) every ~1.2 s, and the requests it held
        were a third of those over 10 ms (measured, ``bench/single_tail.py``). So a
        thread of this process copies the log on a connection of its own (a passive
        checkpoint runs beside the commits; sqlite3 releases the GIL in it), and when it
        is done the writer's connection checkpoints the pages committed in the meantime,
        after the answers of a commit when no unit is waiting (or at four times
        ``_CHECKPOINT_BYTES``), so that the log is wholly copied and the next
        transaction restarts it from its start (as after an automatic checkpoint; a log
        that is never wholly copied only grows). Measured under load (400 checks/s,
        load average 6-7): the writer's own checkpoint took 4.6-8.6 ms (median of a
        round) instead of 16-33 ms. The log is durable (synchronous=FULL) whether or
        not it has been copied yet.
        """
        if not self.sqlite or self.conn is None:
            return
        if force:
            self._stop_checkpointer()
            self.logged = self.unwhole = 0
            self._checkpoint_on(self.conn)
            return
        busy = not self.q.empty() or self.carry is not None
        if self._copied.is_set() and (not busy or self.unwhole >= 4 * _CHECKPOINT_BYTES):
            # the thread's copy is done: the remainder here, the log is then wholly copied
            self._copied.clear()
            self.unwhole = 0
            self._checkpoint_on(self.conn)
            return
        if self.logged < _CHECKPOINT_BYTES or self._copying.is_set():
            return
        self.logged = 0
        self._copied.clear()
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="audit-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._copying.set()

    @staticmethod
    def _checkpoint_on(conn: Any) -> None:
        try:
            cur = conn.cursor()
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            cur.close()
        except Exception:  # the next commit finds out whether the database is sound
            logging.getLogger("geofence.audit").exception("checkpoint failed")

    def _checkpoint_loop(self) -> None:
        """The checkpoint thread: a passive checkpoint on its own connection each time
        :meth:`checkpoint` asks (``_copying``), then ``_copied`` for the remainder."""
        conn = None
        while True:
            self._copying.wait()
            if self._closing:
                break
            try:
                if conn is None:
                    conn = self.engine.raw_connection()
                self._checkpoint_on(conn)
            except Exception:
                logging.getLogger("geofence.audit").exception("checkpoint failed")
                conn = None
            self._copied.set()
            self._copying.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _stop_checkpointer(self) -> None:
        thread = self._checkpointer
        if thread is None:
            return
        while self._copying.is_set():  # a copy under way: let it end
            time.sleep(0.001)
        self._closing = True
        self._copying.set()
        thread.join()
        self._checkpointer = None

    def insert(self, parts: Sequence[tuple[list[Any], list[Any], list[Any], int]]) -> None:
        """Insert the units' ``parts`` (:meth:`prepare`) in one transaction and commit, on
        the driver's connection (kept for the life of the process: no pool checkout and no
        SQLAlchemy layer per commit). After any error the transaction is rolled back; after
        an error other than a constraint's, the connection is dropped and the next commit opens one.

        A kept connection that fails before the commit is sent (the database restarted
        or failed over since the last commit) is replaced and the insert tried once more,
        as the pool's pre-ping would have done; a failure of the commit itself is not
        retried (it may have committed)."""
        for retry in (False, True):
            conn = self.conn
            fresh = conn is None
            if fresh:
                conn = self.conn = self._connect()
            committing = False
            try:
                cur = conn.cursor()
                try:
                    for k, sql in enumerate((self.sql, self.sql_batch, self.sql_body)):
                        params = [r for p in parts for r in p[k]]
                        if params:
                            cur.executemany(sql, params)
                finally:
                    cur.close()
                committing = True
                conn.commit()
                return
            except Exception as exc:
                keep = isinstance(exc, self.integrity_error)
                try:
                    conn.rollback()
                except Exception:
                    keep = False
                if not keep:
                    self.conn = None
                    with contextlib.suppress(Exception):
                        conn.invalidate()
                if keep or fresh or committing or retry:
                    raise

    def commit(self, units: list[tuple[int, Any]]) -> None:
        t0 = time.perf_counter()
        answers: list[tuple[int, str]] = []
        ready: list[tuple[int, Any]] = []
        for uid, unit in units:
            try:
                ready.append((uid, self.prepare(unit)))
            except Exception as exc:  # a value the unit's rows cannot be made of
                answers.append((uid, f"{type(exc).__name__}: {exc}"))
        n_rows = sum(len(p[0]) + len(p[1]) for _, p in ready)
        try:
            self.insert([p for _, p in ready])
            answers += [(uid, COMMITTED) for uid, _ in ready]
        except self.row_errors as exc:
            # one unit's row (an idempotency conflict, or a value the driver or the
            # database refused): each unit alone, so that it fails its own request only
            if not isinstance(exc, self.integrity_error):
                logging.getLogger("geofence.audit").warning(
                    "a row was refused (%s: %s); committing the %d units one by one",
                    type(exc).__name__,
                    exc,
                    len(units),
                )
            for uid, part in ready:
                try:
                    self.insert([part])
                    answers.append((uid, COMMITTED))
                except self.integrity_error:
                    answers.append((uid, CONFLICT))
                except Exception as exc:
                    answers.append((uid, f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # the database is down: every waiting request fails
            logging.getLogger("geofence.audit").exception("commit failed (%d rows)", n_rows)
            answers += [(uid, f"{type(exc).__name__}: {exc}") for uid, _ in ready]
        self.out.write(_frame((answers, (n_rows, len(units), time.perf_counter() - t0))))
        if self.sqlite:
            size = sum(p[3] for _, p in ready)
            self.logged += size
            self.unwhole += size
            self.checkpoint()

    def run(self) -> None:
        threading.Thread(target=self.read_loop, name="audit-reader", daemon=True).start()
        stop = False
        while not stop:
            units, stop = self.take()
            if units:
                self.commit(units)
        if self.carry is not None:
            self.commit([self.carry])
        if self.conn is not None:
            self.checkpoint(force=True)
            self.conn.close()
        self.engine.dispose()


def _main(argv: list[str]) -> None:
    url, sync, window_s, max_rows = argv[0], argv[1], float(argv[2]), int(argv[3])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        _Child(url, sync, window_s, max_rows).run()
    except BrokenPipeError:  # the server is gone: what was committed stays committed
        pass
