"""A compiled reader of a plain batch body: ``{"checks": [check, ...]}`` straight from the
request's bytes to arrays, with no Python object per check or fix.

It reads only the plain form of DESIGN §6's check (the form clients send): ASCII
strings without escapes; the fields ``trip_id``, ``bike_id``, ``vehicle_type``,
``ended_at``, ``fixes`` and optionally ``heading_deg`` (a number or null) and
``device_class`` (a string), each once; fixes with ``lon``, ``lat`` and optionally
``accuracy_m`` (a number or null) and ``quality`` (one of the engine's fix qualities, or
null), each once;
JSON numbers: those of at most 15 significant digits and a decimal exponent within
±22 it converts exactly (one correctly rounded IEEE operation, Clinger's fast path:
the same double as any correct parser, orjson's included), the others (a double's
17-digit round trip) it copies out, comma-separated, for one call of orjson. For anything else —
invalid JSON, another field, an escape, a non-ASCII byte, a longer number — it answers
a negative status and the caller reads the body the general way (orjson, then the
request schema), which decides or words the error. So it changes speed, never an
answer. The checks' values are then validated by :mod:`api.columns` like any other.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from geofence.decisions.inputs import Q_UNKNOWN, QUALITIES

__all__ = ["KEYS", "scan_batch"]

#: Key codes: check fields 0-6, fix fields 7-10
KEYS = (
    b"trip_id",
    b"bike_id",
    b"vehicle_type",
    b"ended_at",
    b"fixes",
    b"heading_deg",
    b"device_class",
    b"lon",
    b"lat",
    b"accuracy_m",
    b"quality",
)
_N_CHECK_KEYS = 7
_KEY_BYTES = np.zeros((len(KEYS), 16), np.uint8)
_KEY_LEN = np.array([len(k) for k in KEYS], np.int64)
for _i, _k in enumerate(KEYS):
    _KEY_BYTES[_i, : len(_k)] = np.frombuffer(_k, np.uint8)
#: the fix qualities, as the engine codes them (their position; Q_UNKNOWN: none)
_QUALITY_BYTES = np.zeros((len(QUALITIES), 16), np.uint8)
_QUALITY_LEN = np.array([len(q) for q in QUALITIES], np.int64)
for _i, _q in enumerate(QUALITIES):
    _QUALITY_BYTES[_i, : len(_q)] = np.frombuffer(_q.encode(), np.uint8)
_POW10 = np.array([10.0**e for e in range(23)])  # exact doubles
_CHECKS = np.frombuffer(b"checks", np.uint8).copy()

#: Per-check span columns of the ``spans`` output: each a [start, end) byte range (the
#: device class's is (-1, -1) when the check names none)
SPAN_CHECK, SPAN_TRIP, SPAN_BIKE, SPAN_VEHICLE, SPAN_ENDED, SPAN_CLASS = range(6)
N_SPANS = 6

#: bounds checked (an index error, never a write out of bounds; measured: no cost here)
_jit = nb.njit(cache=True, nogil=True, boundscheck=True)


@_jit
def _ws(b: np.ndarray, i: int) -> int:
    n = len(b)
    while i < n:
        c = b[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        i += 1
    return i


@_jit
def _string(b: np.ndarray, i: int) -> int:
    """End (after the closing quote) of a plain string starting at ``b[i] == '"'``, or -1."""
    n = len(b)
    if i >= n or b[i] != 34:
        return -1
    i += 1
    while i < n:
        c = b[i]
        if c == 34:
            return i + 1
        if c < 32 or c > 126 or c == 92:
            return -1
        i += 1
    return -1


@_jit
def _code(
    b: np.ndarray, s: int, e: int, names: np.ndarray, lens: np.ndarray, lo: int, hi: int
) -> int:
    """Position in [lo, hi) of ``b[s:e]`` among ``names`` (zero-padded rows of lengths
    ``lens``), or -1."""
    m = e - s
    for k in range(lo, hi):
        if lens[k] == m:
            same = True
            for j in range(m):
                if b[s + j] != names[k, j]:
                    same = False
                    break
            if same:
                return k
    return -1


@_jit
def _key(b: np.ndarray, s: int, e: int, lo: int, hi: int) -> int:
    """Code in [lo, hi) of the key between quotes ``b[s:e]``, or -1."""
    return _code(b, s, e, _KEY_BYTES, _KEY_LEN, lo, hi)


@_jit
def _quality(b: np.ndarray, s: int, e: int) -> int:
    """The code of the quality between quotes ``b[s:e]``, or -1 (not a quality)."""
    return _code(b, s, e, _QUALITY_BYTES, _QUALITY_LEN, 0, len(_QUALITY_LEN))


@_jit
def _number(b: np.ndarray, i: int, out: np.ndarray) -> int:
    """Reads a JSON number at ``i`` into ``out[0]``; returns the index after it, or -1
    (not a number). A number it does not convert exactly (more than 15 significant
    digits, or a larger exponent) is NaN in ``out[0]`` and ``out[1]`` is 1: the caller
    has it converted by Python, the number's bytes being ``b[i:end]``."""
    out[1] = 0.0
    n = len(b)
    neg = False
    if i < n and b[i] == 45:
        neg = True
        i += 1
    if i >= n:
        return -1
    mant = 0
    sig = 0  # significant digits (leading zeros not counted)
    frac = 0
    plain = True
    c = b[i]
    if c == 48:
        i += 1
    elif 49 <= c <= 57:
        while i < n and 48 <= b[i] <= 57:
            mant = mant * 10 + (b[i] - 48)
            sig += 1
            i += 1
    else:
        return -1
    if i < n and 48 <= b[i] <= 57:
        return -1  # a leading zero
    if i < n and b[i] == 46:
        plain = False
        i += 1
        start = i
        while i < n and 48 <= b[i] <= 57:
            if mant != 0 or b[i] != 48:
                sig += 1
            mant = mant * 10 + (b[i] - 48)
            frac += 1
            i += 1
        if i == start:
            return -1
    exp = 0
    if i < n and (b[i] == 101 or b[i] == 69):
        plain = False
        i += 1
        eneg = False
        if i < n and (b[i] == 43 or b[i] == 45):
            eneg = b[i] == 45
            i += 1
        start = i
        while i < n and 48 <= b[i] <= 57:
            exp = exp * 10 + (b[i] - 48)
            i += 1
            if i - start > 4:
                return -1
        if i == start:
            return -1
        if eneg:
            exp = -exp
    if exp > 999 or exp < -999:
        return -1
    e10 = exp - frac
    if sig > 15 or (mant != 0 and not -22 <= e10 <= 22):
        out[0] = np.nan
        out[1] = 1.0
        return i
    if mant == 0:
        v = 0.0
    elif e10 >= 0:
        v = float(mant) * _POW10[e10]
    else:
        v = float(mant) / _POW10[-e10]
    if neg and not (plain and mant == 0):  # JSON -0 is the integer 0
        v = -v
    out[0] = v
    return i


@_jit
def _value_end(b: np.ndarray, i: int, out: np.ndarray) -> int:
    """A number (into ``out[0]``) or null (NaN) at ``i``; the index after it, or -1."""
    n = len(b)
    if i + 4 <= n and b[i] == 110 and b[i + 1] == 117 and b[i + 2] == 108 and b[i + 3] == 108:
        out[0] = np.nan
        out[1] = 0.0
        return i + 4
    return _number(b, i, out)


@_jit
def _open(b: np.ndarray, i: int, ch: int) -> int:
    """The index after the opening ``ch`` (a brace or a bracket) at ``i`` and the blanks
    after it, or -1."""
    if i >= len(b) or b[i] != ch:
        return -1
    return _ws(b, i + 1)


@_jit
def _member(b: np.ndarray, i: int, lo: int, hi: int, seen: int) -> tuple[int, int]:
    """Reads ``"key" :`` at ``i``: ``(key code in [lo, hi), index of the value)``, or
    ``(-1, 0)`` (not a key there, another key, or one in ``seen`` already: a bit set
    over the codes from ``lo``)."""
    n = len(b)
    e = _string(b, i)
    if e < 0:
        return -1, 0
    code = _key(b, i + 1, e - 1, lo, hi)
    if code < 0 or seen & (1 << (code - lo)):
        return -1, 0
    i = _ws(b, e)
    if i >= n or b[i] != 58:
        return -1, 0
    return code, _ws(b, i + 1)


@_jit
def _after(b: np.ndarray, i: int, close: int) -> tuple[int, int]:
    """After a value of an object or array closed by ``close``: ``(1, index of the next
    value)`` after a comma, ``(0, index of the closing byte)``, or ``(-1, 0)``."""
    n = len(b)
    i = _ws(b, i)
    if i < n and b[i] == 44:
        return 1, _ws(b, i + 1)
    if i < n and b[i] == close:
        return 0, i
    return -1, 0


@_jit
def _keep(
    b: np.ndarray,
    start: int,
    end: int,
    column: int,
    pos: int,
    slow: np.ndarray,
    ns: int,
    text: np.ndarray,
    nt: int,
) -> tuple[int, int]:
    """Leaves the number ``b[start:end]`` (of ``column`` at ``pos``) to the caller: its row
    in ``slow``, its bytes and a comma in ``text``; the new counts, or ``(-1, 0)``."""
    m = end - start
    if ns >= len(slow) or nt + m >= len(text):
        return -1, 0
    slow[ns, 0], slow[ns, 1] = column, pos
    text[nt : nt + m] = b[start:end]
    text[nt + m] = 44
    return ns + 1, nt + m + 1


@_jit
def _fix(
    b: np.ndarray,
    i: int,
    f: int,
    lon: np.ndarray,
    lat: np.ndarray,
    acc: np.ndarray,
    qual: np.ndarray,
    num: np.ndarray,
    slow: np.ndarray,
    ns: int,
    text: np.ndarray,
    nt: int,
) -> tuple[int, int, int]:
    """Reads the fix object at ``i`` into position ``f``: ``(index of its closing brace,
    ns, nt)`` (see :func:`_keep`), or ``(-1, 0, 0)``."""
    i = _open(b, i, 123)
    if i < 0:
        return -1, 0, 0
    acc[f] = np.nan
    qual[f] = Q_UNKNOWN
    seen = 0
    n = len(b)
    lo = _N_CHECK_KEYS
    while True:
        code, i = _member(b, i, lo, len(KEYS), seen)
        if code < 0:
            return -1, 0, 0
        seen |= 1 << (code - lo)
        if code == lo + 3:  # quality: a string or null
            if i + 4 <= n and b[i] == 110 and b[i + 1] == 117 and b[i + 2] == 108:
                if b[i + 3] != 108:
                    return -1, 0, 0
                i += 4
            else:
                e = _string(b, i)
                if e < 0:
                    return -1, 0, 0
                q = _quality(b, i + 1, e - 1)
                if q < 0:
                    return -1, 0, 0
                qual[f] = q
                i = e
            more, i = _after(b, i, 125)
            if more < 0:
                return -1, 0, 0
            if not more:
                break
            continue
        start = i
        i = _value_end(b, i, num) if code == lo + 2 else _number(b, i, num)
        if i < 0:
            return -1, 0, 0
        if code == lo:
            lon[f] = num[0]
        elif code == lo + 1:
            lat[f] = num[0]
        else:
            acc[f] = num[0]
        if num[1] != 0.0:
            ns, nt = _keep(b, start, i, code - lo, f, slow, ns, text, nt)
            if ns < 0:
                return -1, 0, 0
        more, i = _after(b, i, 125)
        if more < 0:
            return -1, 0, 0
        if not more:
            break
    if seen & 3 != 3:  # lon and lat are required
        return -1, 0, 0
    return i, ns, nt


@_jit
def scan_batch(
    b: np.ndarray,
    max_checks: int,
    max_fixes: int,
    lon: np.ndarray,
    lat: np.ndarray,
    acc: np.ndarray,
    qual: np.ndarray,
    n_fixes: np.ndarray,
    heading: np.ndarray,
    spans: np.ndarray,
    slow: np.ndarray,
    text: np.ndarray,
) -> tuple[int, int, int]:
    """Reads ``{"checks": [...]}`` from ``b`` into the output arrays (fixes flat, in
    order, ``qual`` their quality codes; one row of ``n_fixes``, ``heading`` and
    ``spans`` per check). Returns the
    number of checks (or -1 for a body to read the general way), the number of rows of
    ``slow``: numbers left to the caller, ``(column, position)`` with column 0-3 for
    ``lon``, ``lat``, ``acc``, ``heading``, and the length of ``text``: those numbers'
    bytes, each followed by a comma."""
    num = np.empty(2)
    ns = 0
    nt = 0
    n = len(b)
    i = _ws(b, 0)
    if i >= n or b[i] != 123:
        return -1, 0, 0
    i = _ws(b, i + 1)
    e = _string(b, i)
    if e < 0 or e - i != 8:
        return -1, 0, 0
    for j in range(6):
        if b[i + 1 + j] != _CHECKS[j]:
            return -1, 0, 0
    i = _ws(b, e)
    if i >= n or b[i] != 58:
        return -1, 0, 0
    i = _ws(b, i + 1)
    if i >= n or b[i] != 91:
        return -1, 0, 0
    i = _ws(b, i + 1)
    k = 0  # checks read
    f = 0  # fixes read
    while True:
        if k >= max_checks:
            return -1, 0, 0
        spans[k, 0, 0] = i
        i = _open(b, i, 123)
        if i < 0:
            return -1, 0, 0
        heading[k] = np.nan
        spans[k, SPAN_CLASS, 0] = -1
        spans[k, SPAN_CLASS, 1] = -1
        seen = 0
        while True:  # the check's fields
            code, i = _member(b, i, 0, _N_CHECK_KEYS, seen)
            if code < 0:
                return -1, 0, 0
            seen |= 1 << code
            if code <= 3 or code == 6:  # trip_id … ended_at, device_class: strings
                e = _string(b, i)
                if e < 0:
                    return -1, 0, 0
                col = code + 1 if code <= 3 else SPAN_CLASS
                spans[k, col, 0] = i + 1
                spans[k, col, 1] = e - 1
                i = e
            elif code == 5:  # heading_deg
                start = i
                i = _value_end(b, i, num)
                if i < 0:
                    return -1, 0, 0
                heading[k] = num[0]
                if num[1] != 0.0:
                    ns, nt = _keep(b, start, i, 3, k, slow, ns, text, nt)
                    if ns < 0:
                        return -1, 0, 0
            else:  # fixes
                i = _open(b, i, 91)
                m = 0
                while i >= 0:  # the fixes (-1: not an array)
                    if m >= max_fixes or f >= len(lon):
                        return -1, 0, 0
                    i, ns, nt = _fix(b, i, f, lon, lat, acc, qual, num, slow, ns, text, nt)
                    if i < 0:
                        return -1, 0, 0
                    f += 1
                    m += 1
                    more, i = _after(b, i + 1, 93)
                    if more <= 0:
                        i = i if more == 0 else -1
                        break
                if i < 0:
                    return -1, 0, 0
                n_fixes[k] = m
                i += 1
            more, i = _after(b, i, 125)
            if more < 0:
                return -1, 0, 0
            if not more:
                break
        if seen & 31 != 31:  # every field but the heading is required
            return -1, 0, 0
        spans[k, 0, 1] = i + 1
        k += 1
        more, i = _after(b, i + 1, 93)
        if more < 0:
            return -1, 0, 0
        if not more:
            break
    i = _ws(b, i + 1)
    if i >= n or b[i] != 125:
        return -1, 0, 0
    if _ws(b, i + 1) != n:
        return -1, 0, 0
    return k, ns, nt
