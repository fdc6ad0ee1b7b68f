"""The GNSS error model: how far off a fix of a given device class and quality really is.

A device's reported ``accuracy_m`` (the 68 % horizontal radius) is a claim, not a
measurement: published field studies find phones' claims 1.5-2x optimistic, urban
multipath shifts every fix of a standing trail by the same several metres, a few per
cent of fixes jump tens of metres, and a "sub-metre" module that has lost its RTK fix
keeps reporting 0.5 m. This module owns the table that turns a claim into an error
model, per (operator, device class, fix quality):

``accuracy_factor``  the true 68 % radius over the reported one (>= 1 when devices are
                     optimistic);
``accuracy_floor_m`` the true 68 % radius is never below this, whatever is reported;
``bias_m``           the per-axis standard deviation of an error shared by every fix of
                     one trail (multipath, a correction stream's error): averaging the
                     trail does not shrink it;
``outlier_share``    the share of fixes that are off by tens of metres (heavy tail);
``settles_narrow``   whether this class alone may settle a box narrower than
                     ``Policy.narrow_box_m`` (3 m): ``rtk_float``, ``single``,
                     ``estimated`` and fixes without a quality may not, unless a
                     calibration fitted on labelled trips says they may.

A fix's per-axis noise is ``max(factor * accuracy_m, floor) / 1.5096``; the trail's
fused uncertainty is the shared bias plus the noise over the fixes (see
:mod:`geofence.decisions`). Rows are matched most specific first: an exact device
class beats ``"*"``, then an exact operator, then an exact quality. The defaults
(operator, device class ``"*"``, one row per quality and one for fixes without a
quality, ``"none"``) are always there, so every fix finds a row; a policy's rows add
to them or replace them.

The defaults, and the published measurements they come from, are in the README
("The error model").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from geofence.errors import PolicyError

__all__ = [
    "DEFAULT_CALIBRATION",
    "DEFAULT_ROWS",
    "QUALITY_KEYS",
    "WILDCARD",
    "Calibration",
    "CalibrationRow",
]

# the fix qualities as a CheckBatch codes them (geofence.decisions.QUALITIES), then
# "none": the fix reported no quality (code len(QUALITIES))
QUALITY_KEYS = ("rtk_fixed", "rtk_float", "dgps", "single", "estimated", "none")
WILDCARD = "*"
_MAX_NAME = 64  # operator and device class names (characters)

# table columns of CalibrationRow.values(), in the kernel's order
C_FACTOR, C_FLOOR, C_BIAS, C_OUTLIER, C_NARROW = range(5)
N_COLUMNS = 5


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """The error model of one (operator, device class, quality); ``"*"`` matches any."""

    operator: str = WILDCARD
    device_class: str = WILDCARD
    quality: str = WILDCARD
    accuracy_factor: float = 2.0
    accuracy_floor_m: float = 3.0
    bias_m: float = 2.0
    outlier_share: float = 0.05
    settles_narrow: bool = False
    trips: int = 0  # labelled trips this row was fitted on; 0 for a default

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.operator, self.device_class, self.quality)

    def values(self) -> tuple[float, ...]:
        """The row as the kernel reads it (see the C_* columns)."""
        return (
            self.accuracy_factor,
            self.accuracy_floor_m,
            self.bias_m,
            self.outlier_share,
            1.0 if self.settles_narrow else 0.0,
        )

    def to_mapping(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, doc: Any, where: str = "calibration[0]") -> CalibrationRow:
        """A row from its JSON form; :class:`PolicyError` names the field and the rule."""
        if not isinstance(doc, Mapping):
            raise PolicyError(f"{where}: expected an object", field=where, rule="type")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise PolicyError(
                f"{where}.{unknown[0]}: unknown field (expected {', '.join(sorted(known))})",
                field=f"{where}.{unknown[0]}",
                rule="unknown",
            )
        values: dict[str, Any] = {}
        for name in ("operator", "device_class"):
            v = doc.get(name, WILDCARD)
            if not isinstance(v, str) or not 1 <= len(v) <= _MAX_NAME:
                raise PolicyError(
                    f"{where}.{name}: expected a name of 1-{_MAX_NAME} characters or '*'",
                    field=f"{where}.{name}",
                    rule="type",
                )
            values[name] = v
        q = doc.get("quality", WILDCARD)
        if q != WILDCARD and q not in QUALITY_KEYS:
            raise PolicyError(
                f"{where}.quality: {q!r} is not a fix quality (expected one of "
                f"{', '.join(QUALITY_KEYS)} or '*')",
                field=f"{where}.quality",
                rule="enum",
            )
        values["quality"] = q
        base = cls()
        for name, lo, hi in _RANGES:
            v = doc.get(name, getattr(base, name))
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise PolicyError(
                    f"{where}.{name}: expected a finite number",
                    field=f"{where}.{name}",
                    rule="type",
                )
            if not lo <= v <= hi:
                raise PolicyError(
                    f"{where}.{name}: {v} is out of range (must be >= {lo} and <= {hi})",
                    field=f"{where}.{name}",
                    rule="range",
                )
            values[name] = float(v)
        narrow = doc.get("settles_narrow", False)
        if not isinstance(narrow, bool):
            raise PolicyError(
                f"{where}.settles_narrow: expected true or false",
                field=f"{where}.settles_narrow",
                rule="type",
            )
        values["settles_narrow"] = narrow
        trips = doc.get("trips", 0)
        if isinstance(trips, bool) or not isinstance(trips, int) or trips < 0:
            raise PolicyError(
                f"{where}.trips: expected a whole number >= 0", field=f"{where}.trips", rule="type"
            )
        values["trips"] = trips
        return cls(**values)


_RANGES = (
    ("accuracy_factor", 0.1, 20.0),
    ("accuracy_floor_m", 0.0, 100.0),
    ("bias_m", 0.0, 100.0),
    ("outlier_share", 0.0, 0.5),
)

# Uncalibrated defaults: conservative (see the README, "The error model", for the
# published measurements behind each figure). rtk_fixed is trusted most; rtk_float,
# dgps, single, estimated and fixes without a quality cannot settle a narrow box alone.
DEFAULT_ROWS: tuple[CalibrationRow, ...] = (
    CalibrationRow(
        quality="rtk_fixed",
        accuracy_factor=2.0,
        accuracy_floor_m=0.3,
        bias_m=0.4,
        outlier_share=0.01,
        settles_narrow=True,
    ),
    CalibrationRow(
        quality="rtk_float",
        accuracy_factor=3.0,
        accuracy_floor_m=1.5,
        bias_m=1.0,
        outlier_share=0.03,
        settles_narrow=False,
    ),
    CalibrationRow(
        quality="dgps",
        accuracy_factor=2.0,
        accuracy_floor_m=1.0,
        bias_m=1.0,
        outlier_share=0.03,
        settles_narrow=False,  # code-phase corrections leave the receiver's own multipath
    ),
    CalibrationRow(
        quality="single",
        accuracy_factor=2.0,
        accuracy_floor_m=3.0,
        bias_m=2.5,
        outlier_share=0.05,
        settles_narrow=False,
    ),
    CalibrationRow(
        quality="estimated",
        accuracy_factor=3.0,
        accuracy_floor_m=10.0,
        bias_m=5.0,
        outlier_share=0.10,
        settles_narrow=False,
    ),
    CalibrationRow(
        quality="none",
        accuracy_factor=2.0,
        accuracy_floor_m=3.0,
        bias_m=2.5,
        outlier_share=0.05,
        settles_narrow=False,
    ),
)


@dataclass(frozen=True)
class Calibration:
    """The error-model table of a policy: its own rows over the defaults."""

    rows: tuple[CalibrationRow, ...] = field(default=DEFAULT_ROWS)

    def __post_init__(self) -> None:
        seen: dict[tuple[str, str, str], int] = {}
        for i, r in enumerate(self.rows):
            if r.key in seen:
                raise PolicyError(
                    f"calibration[{i}]: a second row for operator {r.operator!r}, device "
                    f"class {r.device_class!r}, quality {r.quality!r} (first: "
                    f"calibration[{seen[r.key]}])",
                    field=f"calibration[{i}]",
                    rule="duplicate",
                )
            seen[r.key] = i

    @classmethod
    def with_rows(cls, rows: Iterable[CalibrationRow]) -> Calibration:
        """``rows`` over the defaults (a row replaces the default of the same key)."""
        own = list(rows)
        keys = {r.key for r in own}
        return cls(tuple(own) + tuple(r for r in DEFAULT_ROWS if r.key not in keys))

    @classmethod
    def face_value(cls) -> Calibration:
        """Every report taken at its word: factor 1, no floor, bias or outliers, and
        every class may settle narrow boxes (the engine's model before calibration;
        for tests of the probability itself, and for a fleet that measured it so)."""
        return cls(
            tuple(
                CalibrationRow(
                    quality=q,
                    accuracy_factor=1.0,
                    accuracy_floor_m=0.0,
                    bias_m=0.0,
                    outlier_share=0.0,
                    settles_narrow=True,
                )
                for q in QUALITY_KEYS
            )
        )

    @classmethod
    def from_mapping(cls, doc: Any) -> Calibration:
        """The JSON form (a list of rows) over the defaults; errors name ``calibration[i]``."""
        if not isinstance(doc, list):
            raise PolicyError(
                "calibration: expected an array of rows", field="calibration", rule="type"
            )
        rows = [CalibrationRow.from_mapping(r, f"calibration[{i}]") for i, r in enumerate(doc)]
        cls(tuple(rows))  # duplicates among the document's own rows, numbered as sent
        return cls.with_rows(rows)

    def to_mapping(self) -> list[dict[str, Any]]:
        return [r.to_mapping() for r in self.rows]

    def row(self, operator: str | None, device_class: str | None, quality: str) -> CalibrationRow:
        """The most specific row for a fix (``quality`` one of QUALITY_KEYS)."""
        return self.rows[self._match(operator, device_class, quality)]

    def _match(self, operator: str | None, device_class: str | None, quality: str) -> int:
        best, best_rank = -1, (-1, -1, -1)
        for i, r in enumerate(self.rows):
            if r.device_class not in (WILDCARD, device_class):
                continue
            if r.operator not in (WILDCARD, operator):
                continue
            if r.quality not in (WILDCARD, quality):
                continue
            rank = (
                r.device_class != WILDCARD,
                r.operator != WILDCARD,
                r.quality != WILDCARD,
            )
            if rank > best_rank:
                best, best_rank = i, rank
        if best < 0:  # only when the defaults were left out on purpose
            raise PolicyError(
                f"calibration: no row for operator {operator!r}, device class "
                f"{device_class!r}, quality {quality!r}",
                field="calibration",
                rule="missing",
            )
        return best

    @functools.cached_property
    def table(self) -> np.ndarray:
        """(rows, N_COLUMNS) float64: each row's values, the kernel's lookup target."""
        return np.array([r.values() for r in self.rows], np.float64).reshape(-1, N_COLUMNS)

    def lookup(self, operator: str | None, device_classes: Sequence[str]) -> np.ndarray:
        """(len(device_classes) + 1, len(QUALITY_KEYS)) int32 rows of ``table``.

        Row ``c`` is for device class ``device_classes[c]``; the last row is for checks
        that name no device class. Column ``q`` is the quality code.
        """
        # cached on the instance (hashing the table for a shared cache would cost
        # microseconds a call); bounded, as device class names come from clients
        cache = self.__dict__.setdefault("_lookups", {})
        key = (operator, tuple(device_classes))
        out = cache.get(key)
        if out is None:
            if len(cache) >= _LOOKUP_CACHE:
                cache.clear()
            out = np.empty((len(key[1]) + 1, len(QUALITY_KEYS)), np.int32)
            for c, dc in enumerate((*key[1], None)):
                for q, quality in enumerate(QUALITY_KEYS):
                    out[c, q] = self._match(operator, dc, quality)
            out.setflags(write=False)
            cache[key] = out
        return out


_LOOKUP_CACHE = 4096


DEFAULT_CALIBRATION = Calibration()
