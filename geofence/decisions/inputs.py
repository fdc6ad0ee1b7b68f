"""What a decision is asked: the checks, the policy, and the codes they share.

The constants (outcomes, reason codes and their bits, the fix qualities, limits), the
input types (:class:`Fix`, :class:`BeaconReading`, :class:`Check`, :class:`Policy`,
and :class:`CheckBatch`, checks as arrays for the compiled path) and the parsing of
their JSON fields, whose errors name the field and the rule broken. The reason bits
live here because the kernel (``kernel``) and the readers of its output share them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np

from geofence import crs as _crs
from geofence.calibration import DEFAULT_CALIBRATION, Calibration
from geofence.decisions.tables import _tables
from geofence.errors import CheckError, PolicyError
from geofence.index import ZoneIndex
from geofence.rfc3339 import parse_rfc3339

SIGMA_PER_R68 = math.sqrt(-2.0 * math.log(1.0 - 0.68))  # 68 % radius / per-axis sigma


MAX_FIXES = 50


VEHICLE_TYPES = ("bike", "ebike")


# a fix's quality as the receiver reports it: NMEA GGA fix quality 4, 5, 2, 1, 6; a fix
# without one (phones report none) has the code len(QUALITIES) in a CheckBatch
QUALITIES = ("rtk_fixed", "rtk_float", "dgps", "single", "estimated")


Q_UNKNOWN = len(QUALITIES)


_QUALITY_CODE = {q: i for i, q in enumerate(QUALITIES)}


MAX_DEVICE_CLASS = 64  # characters


OUTCOMES = ("settle", "reject", "review")


SETTLE, REJECT, REVIEW = 0, 1, 2


REASONS = (
    "inside_fenced_box",
    "inside_unfenced_box",
    "outside_all_boxes",
    "in_no_parking_zone",
    "accuracy_too_poor",
    "near_edge",
    "zone_inactive",
    "operator_not_allowed",
    "heading_mismatch",
    "beacon_match",
    "outside_service_area",
    "stale_fix",
)


(
    R_INSIDE_FENCED,
    R_INSIDE_UNFENCED,
    R_OUTSIDE_ALL,
    R_NO_PARKING,
    R_ACCURACY,
    R_NEAR_EDGE,
    R_INACTIVE,
    R_OPERATOR,
    R_HEADING,
    R_BEACON,
    R_SERVICE,
    R_STALE,
) = (1 << i for i in range(len(REASONS)))


@dataclass(frozen=True, slots=True)
class Fix:
    """One GNSS fix: degrees in ``crs``, 68 % accuracy radius in metres, POSIX time."""

    lon: float
    lat: float
    accuracy_m: float | None = None
    at: float | None = None
    crs: str = "wgs84"
    quality: str | None = None


@dataclass(frozen=True, slots=True)
class BeaconReading:
    """A Bluetooth road stud heard at lock time: its id and signal strength (dBm)."""

    id: str
    rssi: float


def _time(value: Any, field_name: str) -> float:
    if not isinstance(value, str):
        raise CheckError(
            f"{field_name}: expected an RFC 3339 time string, got {type(value).__name__}",
            field=field_name,
            rule="type",
        )
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError as exc:
        raise CheckError(
            f"{field_name}: {exc}: {value[:80]!r}", field=field_name, rule="format"
        ) from None


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def _number(value: Any, field_name: str, *, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckError(
            f"{field_name}: expected a number, got {type(value).__name__}",
            field=field_name,
            rule="type",
        )
    v = float(value)
    if not math.isfinite(v):
        raise CheckError(f"{field_name}: must be finite, got {v}", field=field_name, rule="finite")
    if v < lo or v > hi or (lo_open and v == lo):
        lo_txt = f"> {lo}" if lo_open else f">= {lo}"
        raise CheckError(
            f"{field_name}: {v} is out of range (must be {lo_txt} and <= {hi})",
            field=field_name,
            rule="range",
        )
    return v


def _quality(value: Any, field_name: str) -> str | None:
    if value is None or (isinstance(value, str) and value in _QUALITY_CODE):
        return value
    raise CheckError(
        f"{field_name}: {value!r} is not a fix quality (expected one of "
        f"{', '.join(QUALITIES)}, or no quality)",
        field=field_name,
        rule="enum",
    )


def _device_class(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_DEVICE_CLASS:
        raise CheckError(
            f"device_class: expected a string of 1-{MAX_DEVICE_CLASS} characters",
            field="device_class",
            rule="type" if not isinstance(value, str) else "length",
        )
    return value


def _text(value: Any, field_name: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise CheckError(
            f"{field_name}: expected a non-empty string", field=field_name, rule="type"
        )
    return value


@dataclass(frozen=True)
class Check:
    """A trip-end check: the evidence of where the bike was left (DESIGN §6 body).

    ``operator`` comes from the caller's credentials, not from the body.
    """

    fixes: tuple[Fix, ...]
    ended_at: float
    trip_id: str = ""
    bike_id: str = ""
    vehicle_type: str = "bike"
    heading_deg: float | None = None
    beacons: tuple[BeaconReading, ...] = ()
    operator: str | None = None
    device_class: str | None = None

    def __post_init__(self) -> None:
        if not self.fixes:
            raise CheckError("fixes: a check needs at least one fix", field="fixes", rule="empty")
        if len(self.fixes) > MAX_FIXES:
            raise CheckError(
                f"fixes: {len(self.fixes)} fixes; at most {MAX_FIXES} are accepted",
                field="fixes",
                rule="too_many",
            )
        for i, f in enumerate(self.fixes):
            name = f"fixes[{i}]"
            _number(f.lon, f"{name}.lon", lo=-180, hi=180)
            _number(f.lat, f"{name}.lat", lo=-90, hi=90)
            if f.accuracy_m is not None:
                _number(f.accuracy_m, f"{name}.accuracy_m", lo=0, hi=1e5, lo_open=True)
            if f.at is not None:
                _number(f.at, f"{name}.at", lo=-1e11, hi=1e11)
            if f.crs not in _crs.CRS_NAMES:
                raise CheckError(
                    f"{name}.crs: unknown CRS {f.crs!r} (expected one of "
                    f"{', '.join(_crs.CRS_NAMES)})",
                    field=f"{name}.crs",
                    rule="enum",
                )
            _quality(f.quality, f"{name}.quality")
        _number(self.ended_at, "ended_at", lo=-1e11, hi=1e11)
        _device_class(self.device_class)
        if self.vehicle_type not in VEHICLE_TYPES:
            raise CheckError(
                f"vehicle_type: {self.vehicle_type!r} is not 'bike' or 'ebike'",
                field="vehicle_type",
                rule="enum",
            )
        if self.heading_deg is not None:
            _number(self.heading_deg, "heading_deg", lo=0, hi=360)
        for i, b in enumerate(self.beacons):
            _text(b.id, f"beacons[{i}].id", required=True)
            _number(b.rssi, f"beacons[{i}].rssi", lo=-200, hi=50)

    @classmethod
    def from_mapping(cls, body: Mapping[str, Any], *, operator: str | None = None) -> Check:
        """Parse a check body (JSON object) into a check; :class:`CheckError` names the field."""
        if not isinstance(body, Mapping):
            raise CheckError("the check must be a JSON object", field="", rule="type")
        raw_fixes = body.get("fixes")
        if not isinstance(raw_fixes, list):
            raise CheckError("fixes: expected an array of fixes", field="fixes", rule="type")
        if len(raw_fixes) > MAX_FIXES:
            raise CheckError(
                f"fixes: {len(raw_fixes)} fixes; at most {MAX_FIXES} are accepted",
                field="fixes",
                rule="too_many",
            )
        fixes = []
        for i, f in enumerate(raw_fixes):
            name = f"fixes[{i}]"
            if not isinstance(f, Mapping):
                raise CheckError(f"{name}: expected an object", field=name, rule="type")
            crs_name = f.get("crs", "wgs84")
            if not isinstance(crs_name, str):
                raise CheckError(f"{name}.crs: expected a string", field=f"{name}.crs", rule="type")
            acc = f.get("accuracy_m")
            at = f.get("at")
            fixes.append(
                Fix(
                    lon=_number(f.get("lon"), f"{name}.lon", lo=-180, hi=180),
                    lat=_number(f.get("lat"), f"{name}.lat", lo=-90, hi=90),
                    accuracy_m=None
                    if acc is None
                    else _number(acc, f"{name}.accuracy_m", lo=0, hi=1e5, lo_open=True),
                    at=None if at is None else _time(at, f"{name}.at"),
                    crs=crs_name.lower(),
                    quality=_quality(f.get("quality"), f"{name}.quality"),
                )
            )
        beacons = body.get("beacons") or []
        if not isinstance(beacons, list):
            raise CheckError("beacons: expected an array", field="beacons", rule="type")
        readings = []
        for i, b in enumerate(beacons):
            if not isinstance(b, Mapping):
                raise CheckError(
                    f"beacons[{i}]: expected an object", field=f"beacons[{i}]", rule="type"
                )
            readings.append(
                BeaconReading(
                    id=_text(b.get("id"), f"beacons[{i}].id", required=True),
                    rssi=_number(b.get("rssi"), f"beacons[{i}].rssi", lo=-200, hi=50),
                )
            )
        heading = body.get("heading_deg")
        vehicle = body.get("vehicle_type", "bike")
        if vehicle not in VEHICLE_TYPES:
            raise CheckError(
                f"vehicle_type: {vehicle!r} is not 'bike' or 'ebike'",
                field="vehicle_type",
                rule="enum",
            )
        if not fixes:
            raise CheckError("fixes: a check needs at least one fix", field="fixes", rule="empty")
        for i, f in enumerate(fixes):
            if f.crs not in _crs.CRS_NAMES:
                raise CheckError(
                    f"fixes[{i}].crs: unknown CRS {f.crs!r} (expected one of "
                    f"{', '.join(_crs.CRS_NAMES)})",
                    field=f"fixes[{i}].crs",
                    rule="enum",
                )
        values = {
            "fixes": tuple(fixes),
            "ended_at": _time(body.get("ended_at"), "ended_at"),
            "trip_id": _text(body.get("trip_id"), "trip_id"),
            "bike_id": _text(body.get("bike_id"), "bike_id"),
            "vehicle_type": vehicle,
            "heading_deg": None
            if heading is None
            else _number(heading, "heading_deg", lo=0, hi=360),
            "beacons": tuple(readings),
            "operator": operator,
            "device_class": _device_class(body.get("device_class")),
        }
        # every field is checked above: skip __post_init__'s second pass (the hot path)
        check = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(check, name, value)
        return check

    def to_mapping(self) -> dict[str, Any]:
        """The check as a JSON-ready body; ``Check.from_mapping`` of it gives it back."""
        fixes = []
        for f in self.fixes:
            fix: dict[str, Any] = {
                "lon": f.lon,
                "lat": f.lat,
                "accuracy_m": f.accuracy_m,
                "at": None if f.at is None else _rfc3339(f.at),
                "crs": f.crs,
            }
            if f.quality is not None:
                fix["quality"] = f.quality
            fixes.append(fix)
        body: dict[str, Any] = {
            "trip_id": self.trip_id,
            "bike_id": self.bike_id,
            "vehicle_type": self.vehicle_type,
            "ended_at": _rfc3339(self.ended_at),
            "fixes": fixes,
            "heading_deg": self.heading_deg,
            "beacons": [{"id": b.id, "rssi": b.rssi} for b in self.beacons],
        }
        if self.device_class is not None:
            body["device_class"] = self.device_class
        return body


# fields of the policies recorded before the error model (2026-12): the chi-square cut
# and the fixed correlation of a trail's errors, replaced by Student-t fusion and the
# calibration's shared bias. Read and ignored, so that recorded policies still load.
_RETIRED_POLICY_FIELDS = frozenset({"outlier_chi2", "fix_correlation"})


@dataclass(frozen=True)
class Policy:
    """The settlement policy: plain values, with a stable id recorded in every decision.

    Defaults (see the README for why): a box counts 0.5 m wider on every side
    (paint width and the survey error of the box itself); settle at p >= 0.7;
    reject at p <= 0.05; fixes worse than 15 m cannot settle; the last fix may be
    at most 120 s old; vertical parking within 30 degrees; a road stud heard at
    -75 dBm or stronger is strong evidence (p = 0.99) for its box; up to 3 nearest
    boxes within 300 m are returned with a rejection. Fixes are fused with Student-t
    weights of 4 degrees of freedom; a check is rejected only when no box where it
    may settle lies within 3 fused sigmas (shared bias included), nor within 2 m, of
    the widened box (a wrong RTK fix or a box surveyed a metre off is not rare);
    boxes narrower than 3 m settle only on fixes whose class may (``calibration``).
    """

    tolerance_m: float = 0.5
    settle_p: float = 0.7
    reject_p: float = 0.05
    max_accuracy_m: float = 15.0
    max_fix_age_s: float = 120.0
    max_clock_skew_s: float = 30.0
    heading_tolerance_deg: float = 30.0
    beacon_rssi_dbm: float = -75.0
    beacon_p: float = 0.99
    k_nearest: int = 3
    nearest_radius_m: float = 300.0
    default_accuracy_m: float = 10.0
    max_trail_spread_m: float = 1000.0
    student_nu: float = 4.0
    reject_sigmas: float = 3.0
    reject_margin_m: float = 2.0
    centre_p: float = 0.9
    narrow_box_m: float = 3.0
    calibration: Calibration = DEFAULT_CALIBRATION

    def __post_init__(self) -> None:
        checks = [
            ("tolerance_m", 0 <= self.tolerance_m <= 10),
            ("reject_p", 0 <= self.reject_p < self.settle_p),
            ("settle_p", self.reject_p < self.settle_p <= 1),
            ("max_accuracy_m", self.max_accuracy_m > 0),
            ("max_fix_age_s", self.max_fix_age_s > 0),
            ("max_clock_skew_s", self.max_clock_skew_s >= 0),
            ("heading_tolerance_deg", 0 <= self.heading_tolerance_deg <= 90),
            ("beacon_p", 0 <= self.beacon_p <= 1),
            ("k_nearest", isinstance(self.k_nearest, int) and 0 <= self.k_nearest <= 20),
            ("nearest_radius_m", 0 < self.nearest_radius_m <= 10_000),
            ("default_accuracy_m", self.default_accuracy_m > 0),
            ("max_trail_spread_m", self.max_trail_spread_m > 0),
            ("student_nu", 0.5 <= self.student_nu <= 1000),
            ("reject_sigmas", 0 <= self.reject_sigmas <= 10),
            ("reject_margin_m", 0 <= self.reject_margin_m <= 100),
            ("centre_p", 0 <= self.centre_p < 1),
            ("narrow_box_m", 0 <= self.narrow_box_m <= 100),
        ]
        for name, ok in checks:
            if not ok:
                raise PolicyError(
                    f"policy: {name} = {getattr(self, name)!r} is out of range",
                    field=name,
                    rule="range",
                )
        if not isinstance(self.calibration, Calibration):
            raise PolicyError(
                "policy: calibration must be a Calibration", field="calibration", rule="type"
            )

    @classmethod
    def from_mapping(cls, doc: Any) -> Policy:
        """A policy from its JSON form (:meth:`to_mapping`; every field optional).

        :class:`PolicyError` names the field and the rule broken.
        """
        if not isinstance(doc, Mapping):
            raise PolicyError("policy: expected a JSON object", field="", rule="type")
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in doc.items():
            if name in _RETIRED_POLICY_FIELDS:
                continue
            f = known.get(name)
            if f is None:
                raise PolicyError(
                    f"{name}: unknown policy field (expected one of {', '.join(known)})",
                    field=str(name),
                    rule="unknown",
                )
            if name == "calibration":
                values[name] = Calibration.from_mapping(value)
            elif name == "k_nearest":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise PolicyError(f"{name}: expected a whole number", field=name, rule="type")
                values[name] = value
            else:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                ):
                    raise PolicyError(f"{name}: expected a finite number", field=name, rule="type")
                values[name] = float(value)
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The policy as JSON-ready values; :meth:`from_mapping` of it gives it back."""
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "calibration"
        }
        out["calibration"] = self.calibration.to_mapping()
        return out

    @cached_property
    def id(self) -> str:
        """``pol-`` and 12 hex digits of the SHA-256 of the policy's values."""
        blob = json.dumps(self.to_mapping(), sort_keys=True).encode()
        return "pol-" + hashlib.sha256(blob).hexdigest()[:12]


@dataclass(frozen=True)
class CheckBatch:
    """Checks as arrays, for :func:`decide_arrays`: ``n`` checks of up to ``m`` fixes.

    ``lon, lat, accuracy_m, at`` are (n, m) float arrays in WGS-84, NaN-padded past
    ``n_fixes``; a missing accuracy or time is NaN. ``beacon_zone`` is the position
    of the fenced box whose road stud was heard above the threshold, or -1.
    ``quality`` is the (n, m) int8 code of each fix's quality (an index into
    ``QUALITIES``; ``Q_UNKNOWN`` where none was reported, and in the padding), or None
    for no quality at all. ``device_class`` is the (n,) int32 index of each check's
    device class in ``device_classes``, -1 where none was named, or None for none at all.
    """

    lon: np.ndarray
    lat: np.ndarray
    accuracy_m: np.ndarray
    at: np.ndarray
    n_fixes: np.ndarray
    ended_at: np.ndarray
    heading_deg: np.ndarray
    beacon_zone: np.ndarray
    operator: str | None = None
    quality: np.ndarray | None = None
    device_class: np.ndarray | None = None
    device_classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ended_at)

    @classmethod
    def from_checks(
        cls, index: ZoneIndex, checks: Sequence[Check], policy: Policy, operator: str | None
    ) -> CheckBatch:
        """Arrays of ``checks`` (converted to WGS-84; beacons resolved against ``index``)."""
        n = len(checks)
        m = max((len(c.fixes) for c in checks), default=1)
        block = np.empty((4, n, m))
        block.fill(np.nan)
        lon, lat, acc, at = block
        nfix = np.zeros(n, np.int64)
        quality = None
        classes: dict[str, int] = {}
        device_class = None
        crs_of: dict[str, list[tuple[int, int]]] = {}
        for i, c in enumerate(checks):
            nfix[i] = len(c.fixes)
            if c.device_class is not None:
                if device_class is None:
                    device_class = np.full(n, -1, np.int32)
                device_class[i] = classes.setdefault(c.device_class, len(classes))
            for j, f in enumerate(c.fixes):
                if f.quality is not None:
                    if quality is None:
                        quality = np.full((n, m), Q_UNKNOWN, np.int8)
                    quality[i, j] = _QUALITY_CODE[f.quality]
                lon[i, j] = f.lon
                lat[i, j] = f.lat
                if f.accuracy_m is not None:
                    acc[i, j] = f.accuracy_m
                if f.at is not None:
                    at[i, j] = f.at
                if f.crs not in ("wgs84", "cgcs2000"):
                    crs_of.setdefault(f.crs, []).append((i, j))
        for name, cells in crs_of.items():
            ii, jj = np.array(cells).T
            lon[ii, jj], lat[ii, jj] = _crs.to_wgs84(lon[ii, jj], lat[ii, jj], name)
        beacon_zone = np.empty(n, np.int64)
        beacon_zone.fill(-1)
        stud = _tables(index, policy.tolerance_m).beacon_position
        for i, c in enumerate(checks):
            heard = [b for b in c.beacons if b.rssi >= policy.beacon_rssi_dbm and b.id in stud]
            if heard:
                beacon_zone[i] = stud[max(heard, key=lambda b: (b.rssi, b.id)).id]
        return cls(
            lon=lon,
            lat=lat,
            accuracy_m=acc,
            at=at,
            n_fixes=nfix,
            ended_at=np.array([c.ended_at for c in checks], np.float64),
            heading_deg=np.array(
                [np.nan if c.heading_deg is None else c.heading_deg for c in checks], np.float64
            ),
            beacon_zone=beacon_zone,
            operator=operator,
            quality=quality,
            device_class=device_class,
            device_classes=tuple(classes),
        )
