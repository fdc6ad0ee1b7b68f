"""Group commit for the audit log, in a writer process of its own.

Requests hand their rows to :meth:`AuditWriter.write` and wait. A child process
(``python -m api.audit``) takes everything queued (up to ``max_rows``, optionally
waiting ``window_s`` for more), inserts it in one transaction, commits, and answers;
the waiting requests are then woken. A response is therefore sent only after its
rows are committed, and many requests share one commit (one fsync), so durability
costs little throughput.

Why a process and not a thread: the engine's compiled kernels release the GIL, and a
writer thread running SQLAlchemy code would take it at each kernel call and hold it
for a switch interval, which measured 3x slower per check on a 2-core machine. The
child has its own interpreter; the server's event loop only writes frames to a pipe
and reads acknowledgements from another (``loop.add_writer`` / ``add_reader``: it
never blocks, even on a 10,000-check batch). If the server is killed, the child
reads end-of-file, commits what it already received and exits.

One request's rows (a whole batch) are one unit: they are committed together or not
at all. If a commit fails because of one unit (an idempotency key used twice
concurrently), the writer retries the units one by one, so the others still commit;
the unit that conflicts is answered :data:`CONFLICT` and writes nothing.

Frames on both pipes: an 8-byte big-endian length, then a pickle (the two ends are
the same code, so pickle is safe here). With no commit window (the default), at most
one frame is in flight: units queued while the writer commits wait in the server and
go as one frame when its answers come back (they would have waited for that commit
anyway), so a busy server writes to the pipe, and wakes the writer, once per commit
rather than once per request. With a window, units are sent as they come (the writer
waits for them).

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

The child inserts the rows with the database driver's ``executemany`` and one prepared
statement, not SQLAlchemy's per-row bind processing (measured: that was most of the
writer's CPU per row); on SQLite it writes the timestamps in the text format
SQLAlchemy's ``DateTime`` reads back.

Server -> writer: a list of ``(unit_id, rows or BatchUnit)``. Writer -> server: ``(answers,
stats)`` with ``answers`` a list of ``(unit_id, result)``, ``result`` being
:data:`COMMITTED`, :data:`CONFLICT` or an error message, and ``stats`` ``(n_rows,
n_units, seconds)`` of the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = [
    "BATCH_COLUMNS",
    "COLUMNS",
    "COMMITTED",
    "CONFLICT",
    "ZSTD_LEVEL",
    "AuditWriteError",
    "AuditWriter",
    "BatchUnit",
    "WriterClosed",
]

log = logging.getLogger("geofence.audit")

COMMITTED = "committed"
CONFLICT = "conflict"
_HEADER = struct.Struct("!Q")
_PIPE_BYTES = 1 << 20

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
_TIMES = (COLUMNS.index("ended_at"), COLUMNS.index("decided_at"))
_TEXT = (COLUMNS.index("body"), COLUMNS.index("decision"))
#: text committed between checkpoints: with the pages each commit rewrites (the table's
#: and the indexes'), about SQLite's automatic 1,000 pages of log (measured 2.5-5x)
_CHECKPOINT_BYTES = 1 << 20


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


class WriterClosed(RuntimeError):
    """The audit writer is stopped: nothing can be recorded."""


class AuditWriteError(RuntimeError):
    """The database refused a commit (the message is the writer's)."""


def _same(value: Any) -> Any:
    return value


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _grow_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer (fewer wake-ups); harmless where unsupported."""
    with contextlib.suppress(Exception):
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)


class AuditWriter:
    """The server's side of the writer process. Create it inside the running event loop.

    Parameters
    ----------
    url : str
        The database URL (the child opens its own connection).
    sqlite_synchronous : str
        SQLite ``PRAGMA synchronous`` of the child's connection.
    window_s : float
        After taking the first queued unit, wait up to this long for more (0: take
        only what is already queued; the time a commit takes already groups the
        requests that arrive meanwhile).
    max_rows : int
        Rows per transaction at most (a unit is never split).
    on_commit : callable(n_rows, n_units, seconds), optional
        Called in the event loop after each commit (metrics).
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        window_s: float = 0.0,
        max_rows: int = 20_000,
        on_commit: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.on_commit = on_commit
        self._loop = asyncio.get_running_loop()
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.audit",
                url,
                sqlite_synchronous,
                repr(float(window_s)),
                str(int(max_rows)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._out_fd = self._proc.stdin.fileno()
        self._in_fd = self._proc.stdout.fileno()
        for fd in (self._out_fd, self._in_fd):
            os.set_blocking(fd, False)
            _grow_pipe(fd)
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[str]] = {}
        self._pending: list[tuple[int, Any]] = []
        self._flush_scheduled = False
        self._in_flight = 0  # units sent to the writer and not answered yet
        self._hold = window_s <= 0  # hold units while a frame is in flight
        self._out: deque[memoryview] = deque()
        self._writer_registered = False
        self._inbuf = bytearray()
        self._closed = False
        self._dead = False
        self._loop.add_reader(self._in_fd, self._on_readable)

    # ------------------------------------------------------------------ API
    async def write(self, rows: Sequence[tuple[Any, ...] | Mapping[str, Any]] | BatchUnit) -> str:
        """Queue ``rows`` or a batch (one unit) and wait until committed: returns :data:`COMMITTED`,
        or :data:`CONFLICT` if the idempotency constraint refused the unit. Raises
        :class:`WriterClosed` when the writer is stopped and :class:`AuditWriteError`
        when the database refused the commit."""
        if self._closed or self._dead:
            raise WriterClosed("the audit log is closed")
        self._next_id += 1
        uid = self._next_id
        fut: asyncio.Future[str] = self._loop.create_future()
        self._waiting[uid] = fut
        self._pending.append((uid, rows))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return await fut

    @property
    def alive(self) -> bool:
        """False once the child's answer pipe closed (it exited); no system call."""
        return not self._dead

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def aclose(self, timeout: float = 60.0) -> None:
        """Commit what is queued, wait for the answers, stop the process."""
        if self._closed:
            return
        self._closed = True
        if self._pending:
            self._flush(force=True)
        deadline = time.monotonic() + timeout
        while self._out and self.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        with contextlib.suppress(OSError):
            self._remove_writer()
            self._proc.stdin.close()  # type: ignore[union-attr]
        while self._waiting and self.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        try:
            left = max(0.1, deadline - time.monotonic())
            await asyncio.wait_for(asyncio.to_thread(self._proc.wait), left)
        except TimeoutError:
            self._proc.kill()
            await asyncio.to_thread(self._proc.wait)
        self._on_dead("the audit log is closed")

    # ------------------------------------------------------------------ sending
    def _flush(self, force: bool = False) -> None:
        self._flush_scheduled = False
        if not self._pending or (self._in_flight and self._hold and not force):
            return  # sent when the writer answers the units in flight
        units, self._pending = self._pending, []
        self._in_flight += len(units)
        self._out.append(memoryview(_frame(units)))
        self._send()

    def _send(self) -> None:
        try:
            while self._out:
                head = self._out[0]
                try:
                    n = os.write(self._out_fd, head)
                except BlockingIOError:
                    break
                if n == len(head):
                    self._out.popleft()
                else:
                    self._out[0] = head[n:]
        except OSError as exc:  # the child is gone
            self._on_dead(f"the audit writer process is gone ({exc})")
            return
        if self._out and not self._writer_registered:
            self._loop.add_writer(self._out_fd, self._send)
            self._writer_registered = True
        elif not self._out:
            self._remove_writer()

    def _remove_writer(self) -> None:
        if self._writer_registered:
            self._loop.remove_writer(self._out_fd)
            self._writer_registered = False

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        try:
            data = os.read(self._in_fd, _PIPE_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._on_dead(f"the audit writer process is gone ({exc})")
            return
        if not data:
            self._on_dead("the audit writer process exited")
            return
        buf = self._inbuf
        buf += data
        at = 0
        while len(buf) - at >= _HEADER.size:
            (n,) = _HEADER.unpack_from(buf, at)
            if len(buf) - at - _HEADER.size < n:
                break
            answers, stats = pickle.loads(buf[at + _HEADER.size : at + _HEADER.size + n])
            at += _HEADER.size + n
            self._answer(answers, stats)
        if at:
            del buf[:at]

    def _answer(self, answers: list[tuple[int, str]], stats: tuple[int, int, float]) -> None:
        self._in_flight -= len(answers)
        if self._in_flight <= 0:
            self._in_flight = 0
            if self._pending and not self._closed:
                self._flush()
        for uid, result in answers:
            fut = self._waiting.pop(uid, None)
            if fut is None or fut.done():  # cancelled meanwhile; its rows are committed
                continue
            if result in (COMMITTED, CONFLICT):
                fut.set_result(result)
            else:
                fut.set_exception(AuditWriteError(result))
        if stats[1] and self.on_commit is not None:
            self.on_commit(*stats)

    def _on_dead(self, why: str) -> None:
        if not self._dead:
            self._dead = True
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._in_fd)
            self._remove_writer()
            if not self._closed:
                log.error("%s: decisions cannot be recorded", why)
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(WriterClosed(why))


# ---------------------------------------------------------------------------- the child
class _Child:
    """The writer process: read units, commit them in groups, answer."""

    def __init__(self, url: str, sync: str, window_s: float, max_rows: int) -> None:
        import zstandard

        from api import schema as t
        from api.storage import make_engine

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


if __name__ == "__main__":
    # run as ``api.audit``, not ``__main__``: the units pickled by the server name
    # ``api.audit.BatchUnit``, the class the writer must recognise
    from api import audit

    audit._main(sys.argv[1:])
