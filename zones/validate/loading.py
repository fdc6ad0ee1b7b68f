"""Reading a zone file: :func:`load_geojson` (mapping, bytes, JSON text or a path), the
JSON parser that also accepts ``NaN``/``Infinity`` (so the report names the feature
holding them instead of stopping at "not JSON"), and the small JSON-type helpers every
rule module uses to word its messages ("is an array, not an object").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

import orjson


class _NotJSON(Exception):
    pass


def _parse_json(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # the standard library accepts NaN / Infinity (not JSON, but common): parse them so
    # that the report can name the feature instead of stopping at "not JSON"
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _NotJSON(str(exc)) from None


def load_geojson(source: Mapping[str, Any] | str | Path | bytes) -> Any:
    """Read a GeoJSON document: a mapping is returned as is, bytes are parsed, a ``str``
    is JSON text when it starts with ``{`` or ``[`` and a file path otherwise.

    Raises ``OSError`` for an unreadable file and ``ValueError`` for text that is not
    JSON (``NaN``/``Infinity`` literals are accepted).
    """
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        data: bytes | str = bytes(source)
    elif isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        data = source
    else:
        data = Path(source).read_bytes()
    try:
        return _parse_json(data)
    except _NotJSON as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _source_name(source: Any) -> str | None:
    if isinstance(source, Path):
        return str(source)
    if isinstance(source, str) and source.lstrip()[:1] not in ("{", "["):
        return source
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, list | tuple):
        return "array"
    return type(v).__name__


def _a_type(v: Any) -> str:
    """The JSON type of ``v`` with its article: "an array", "a string", "null"."""
    t = _type_name(v)
    return t if t == "null" else ("an " if t[0] in "aeiou" else "a ") + t


def _short(v: Any, n: int = 40) -> str:
    try:
        r = repr(v)
    except Exception:  # pragma: no cover - exotic objects in a mapping
        r = "<unprintable>"
    return r if len(r) <= n else r[: n - 1] + "…"


def _is_seq(v: Any) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(v, list | tuple)
