"""The pipes between the server and the writer process: frames, and what they carry.

Frames on both pipes: an 8-byte big-endian length, then a pickle (the two ends are
the same code, so pickle is safe here).

Server -> writer: a list of ``(unit_id, rows or BatchUnit)``. Writer -> server: ``(answers,
stats)`` with ``answers`` a list of ``(unit_id, result)``, ``result`` being
:data:`COMMITTED`, :data:`CONFLICT` or an error message, and ``stats`` ``(n_rows,
n_units, seconds)`` of the commit.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

__all__ = ["COMMITTED", "CONFLICT"]

COMMITTED = "committed"
CONFLICT = "conflict"
_HEADER = struct.Struct("!Q")
_PIPE_BYTES = 1 << 20


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data
