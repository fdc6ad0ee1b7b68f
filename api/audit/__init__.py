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

This package is the public face: everything is imported from ``api.audit``. Its
modules:

* :mod:`~api.audit.units`: what the server hands the writer: a row's columns
  (:data:`COLUMNS`, :data:`BATCH_COLUMNS`) and a batch as one :class:`BatchUnit`,
  stored once and zstd-compressed (:data:`ZSTD_LEVEL`);
* :mod:`~api.audit.frames`: the frames on the two pipes and the answers they carry
  (:data:`COMMITTED`, :data:`CONFLICT`);
* :mod:`~api.audit.writer`: :class:`AuditWriter`, the server's side in its event loop,
  and its errors (:class:`WriterClosed`, :class:`AuditWriteError`);
* :mod:`~api.audit.child`: the writer process: read, group, insert with the driver's
  ``executemany``, answer, checkpoint SQLite's log;
* :mod:`~api.audit.__main__`: ``python -m api.audit``, the command that starts it.
"""

from __future__ import annotations

from api.audit.frames import COMMITTED, CONFLICT
from api.audit.units import BATCH_COLUMNS, COLUMNS, ZSTD_LEVEL, BatchUnit
from api.audit.writer import AuditWriteError, AuditWriter, WriterClosed
from api.audit.writer import log as log  # the "geofence.audit" logger, as before the split

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
