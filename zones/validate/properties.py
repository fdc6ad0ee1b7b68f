"""The property rules of DESIGN §3: ``kind``, ``fenced``, ``district``, ``name``,
``capacity``, ``operators``, ``beacons``, ``heading_deg`` and the active period
(RFC 3339 times with a UTC offset, ``active_from`` before ``active_to``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from zones.validate.loading import _a_type, _is_number, _is_seq, _short, _type_name
from zones.validate.report import _Collector
from zones.validate.rules import KINDS

_MAX_INT32 = 2**31 - 1


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _parse_time(v: str) -> float | None:
    if not _RFC3339.match(v):
        return None
    try:
        return datetime.fromisoformat(v).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _check_properties(props: Any, label: str, index: int, out: _Collector) -> str | None:
    """Check DESIGN §3 properties; return the kind (None when missing or unknown)."""
    if props is None:
        out.error(
            "unknown-kind",
            "has no properties (so no kind)",
            feature=label,
            index=index,
        )
        return None
    if not isinstance(props, Mapping):
        out.error(
            "bad-properties",
            f"properties is {_a_type(props)}, not an object",
            feature=label,
            index=index,
        )
        return None

    def bad(name: str, want: str, v: Any) -> None:
        out.error(
            "bad-property-type",
            f"property {name!r} must be {want}, got {_type_name(v)} {_short(v)}",
            feature=label,
            index=index,
            hint=f"set {name!r} to {want}",
        )

    kind_v = props.get("kind")
    kind: str | None = None
    if "kind" not in props or kind_v is None:
        out.error("unknown-kind", "has no 'kind' property", feature=label, index=index)
    elif not isinstance(kind_v, str) or kind_v not in KINDS:
        out.error(
            "unknown-kind",
            f"kind {_short(kind_v)} is not 'parking' or 'no_parking'",
            feature=label,
            index=index,
        )
    else:
        kind = kind_v

    if "fenced" in props:
        if props["fenced"] is not None and not isinstance(props["fenced"], bool):
            bad("fenced", "a boolean", props["fenced"])
    elif kind == "parking":
        out.warning(
            "missing-property",
            "parking box has no 'fenced' property: it will be treated as not fenced",
            feature=label,
            index=index,
        )
    for name in ("district", "name"):
        v = props.get(name)
        if v is not None and not isinstance(v, str):
            bad(name, "a string", v)
    cap = props.get("capacity")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= _MAX_INT32
    ):
        bad("capacity", "an integer >= 0", cap)
    for name in ("operators", "beacons"):
        v = props.get(name)
        if v is not None and (not _is_seq(v) or not all(isinstance(s, str) for s in v)):
            bad(name, "a list of strings", v)
    h = props.get("heading_deg")
    if h is not None and not (_is_number(h) and math.isfinite(h) and 0 <= h < 360):
        bad("heading_deg", "a number in [0, 360) or null", h)
    times: dict[str, float | None] = {}
    for name in ("active_from", "active_to"):
        v = props.get(name)
        times[name] = None
        if v is None:
            continue
        t = _parse_time(v) if isinstance(v, str) else None
        if t is None:
            bad(name, "an RFC 3339 time with a UTC offset (e.g. 2024-05-01T00:00:00+08:00)", v)
        times[name] = t
    a, b = times["active_from"], times["active_to"]
    if a is not None and b is not None and a >= b:
        out.error(
            "bad-active-period",
            f"active_from {props['active_from']!r} is not before active_to {props['active_to']!r}",
            feature=label,
            index=index,
        )
    return kind
