"""Check bodies straight to the engine's arrays: the fast path of ``/v1/checks``.

:func:`check_batch` turns parsed check bodies (DESIGN §6, plain JSON values from
orjson) into a :class:`geofence.CheckBatch` in one pass: no pydantic instances, no
:class:`geofence.Check` per body. It only accepts what is plainly valid — every
field of the request schema (:mod:`api.models`) with its type and range, times that
parse, no beacons — and answers None for anything else; the caller then takes the
slow path (the pydantic schema and :meth:`geofence.Check.from_mapping`), which
decides the same checks and words the errors. So the fast path changes speed, never
an answer: a body it accepts is one the slow path accepts, and the arrays are the
ones :meth:`geofence.CheckBatch.from_checks` builds.

Modules (everything public is imported from ``api.columns``):

* :mod:`~api.columns.reading`: parsed bodies to arrays, one check or many;
* :mod:`~api.columns.scanning`: a batch's raw bytes to arrays (the compiled reader);
* :mod:`~api.columns.answers`: the decisions as answered (rounding, dicts, JSON texts).
"""

from __future__ import annotations

from api.columns.answers import decision_dicts, decision_texts, rounded
from api.columns.reading import check_batch, check_values, parse_time_cached
from api.columns.scanning import Scanned, scan_batch

__all__ = [
    "Scanned",
    "check_batch",
    "check_values",
    "decision_dicts",
    "decision_texts",
    "parse_time_cached",
    "rounded",
    "scan_batch",
]
