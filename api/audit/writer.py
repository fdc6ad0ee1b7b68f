"""The server's side of the group commit: :class:`AuditWriter`, in the event loop.

It starts the writer process (:mod:`api.audit.child`) and talks to it through two
pipes without ever blocking the event loop. With no commit window (the default), at most
one frame is in flight: units queued while the writer commits wait in the server and
go as one frame when its answers come back (they would have waited for that commit
anyway), so a busy server writes to the pipe, and wakes the writer, once per commit
rather than once per request. With a window, units are sent as they come (the writer
waits for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from api.audit.frames import _HEADER, _PIPE_BYTES, COMMITTED, CONFLICT, _frame
from api.audit.units import BatchUnit

__all__ = ["AuditWriteError", "AuditWriter", "WriterClosed", "log"]

log = logging.getLogger("geofence.audit")


class WriterClosed(RuntimeError):
    """The audit writer is stopped: nothing can be recorded."""


class AuditWriteError(RuntimeError):
    """The database refused a commit (the message is the writer's)."""


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
