"""RFC 3339 times, strictly: the one parser of every time a client sends.

``datetime.fromisoformat`` takes ISO 8601 at large (a space for ``T``, week and
ordinal dates, minutes without seconds, no offset) and refuses the leap second
``23:59:60`` that RFC 3339 §5.6 allows; and a time near the ends of the calendar
(``0001-01-01T00:00:00+08:00``) parses but cannot be converted to UTC, which the
store and the stale-fix arithmetic need. So the grammar is RFC 3339's ``date-time``
(``T``/``t``, ``Z``/``z`` or ``±hh:mm``, seconds required, any fraction, of which
microseconds are kept as ``fromisoformat`` keeps them), matched by a regular
expression of ASCII digits, and:

- a leap second (``:60``) is accepted where RFC 3339 allows it, the last second of
  a UTC day (``23:59:60Z``, ``07:59:60+08:00``), and read as the first second of the
  next day: POSIX time has no 61st second and counts it so (``timegm``);
- the instant must lie in the years 0001-9999 *in UTC*, so every accepted time has a
  UTC datetime; others are refused with the same ValueError as a malformed one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["parse_rfc3339"]

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)

_ONE_SECOND = timedelta(seconds=1)


def parse_rfc3339(value: str) -> datetime:
    """``value`` as an aware datetime (its own offset); ValueError saying why if it is
    not an RFC 3339 date-time or its instant is outside the years 0001-9999 UTC."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError("not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm))")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac = m.group(7)
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    if m.group(8):
        tz = UTC
    else:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError("the UTC offset is out of range")
        offset = timedelta(hours=oh, minutes=om)
        tz = timezone(-offset if m.group(9) == "-" else offset)
    leap = second == 60
    try:
        dt = datetime(year, month, day, hour, minute, 59 if leap else second, micro, tzinfo=tz)
        utc = dt.astimezone(UTC)
        if leap:
            if (utc.hour, utc.minute) != (23, 59):
                raise ValueError("a leap second (:60) is only the last second of a UTC day")
            dt += _ONE_SECOND
            utc = dt.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside the years 0001-9999 in UTC") from None
    if not 1 <= utc.year <= 9999:  # pragma: no cover - astimezone raises first
        raise ValueError("the time is outside the years 0001-9999 in UTC")
    return dt
