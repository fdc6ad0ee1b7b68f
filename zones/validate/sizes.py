"""The size rules (issue 19): :class:`SizeLimits`, the service's ``GEOFENCE_ZONE_*``
settings, and the per-feature checks of names, operators and beacons. The id and
vertex counts are checked where they are read (:mod:`~zones.validate.structure`);
:data:`SIZE_RULES` names all six rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zones.validate.loading import _is_seq
from zones.validate.report import _Collector

#: the rules of :class:`SizeLimits`
SIZE_RULES = frozenset(
    {
        "id-too-long",
        "name-too-long",
        "too-many-operators",
        "too-many-vertices",
        "too-many-zones",
        "too-many-vertices-in-set",
    }
)


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """Upload size rules. The defaults (the service's settings' defaults) pass the
    bundled Zhuhai set (ids of 13 characters, names of 16, 1 operator and 3 beacons,
    10 vertices a zone, 92,484 in all, 18,300 zones) by wide margins."""

    id_chars: int = 64
    name_chars: int = 200
    operators: int = 64
    vertices: int = 10_000
    set_vertices: int = 2_000_000
    zones: int = 60_000


def _check_sizes(props: Any, label: str, index: int, out: _Collector, limits: SizeLimits) -> None:
    """The size rules of a feature's properties (name, operators, beacons)."""
    if not isinstance(props, Mapping):
        return
    name = props.get("name")
    if isinstance(name, str) and len(name) > limits.name_chars:
        out.error(
            "name-too-long",
            f"name of {len(name)} characters; at most {limits.name_chars}",
            feature=label,
            index=index,
        )
    for key in ("operators", "beacons"):
        v = props.get(key)
        if _is_seq(v) and len(v) > limits.operators:
            out.error(
                "too-many-operators",
                f"{len(v)} {key}; a zone lists at most {limits.operators}",
                feature=label,
                index=index,
            )
