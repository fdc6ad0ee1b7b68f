"""Settlement decisions that respect GPS uncertainty: settle, reject or review.

A trip end's evidence (a trail of fixes, each with a 68 % accuracy radius, an
optional heading and Bluetooth road studs heard) becomes the probability that the
bike stands in a fenced parking box, and then an outcome with stable reason codes.
Everything here is a pure function of (index, check, policy, now): replaying a
recorded check against the same zone-set version and policy gives the same
decision.

The fix model
-------------
A fix's ``accuracy_m`` is the 68 % radius of an isotropic 2-D Gaussian, so its
per-axis standard deviation is ``accuracy_m / 1.5096`` (``sqrt(-2 ln 0.32)``).
A fix without accuracy gets ``Policy.default_accuracy_m``.

Fusing a trail (the bike stands still while the lock closes):

1. Fixes older than ``ended_at - max_fix_age_s`` or newer than
   ``ended_at + max_clock_skew_s`` are stale and dropped; a fix without a time
   counts as taken at ``ended_at``. If every fix is stale the check is decided
   on all of them but cannot settle (``stale_fix``).
2. Start from the coordinate-wise median of the fixes (robust to a minority of
   outliers), then twice: keep the fixes whose squared distance to the estimate
   is within ``outlier_chi2`` of their own variance (chi-square, 2 degrees of
   freedom; 13.8 is the 99.9 % point), and take their inverse-variance weighted
   mean. If none is kept, the fix nearest the estimate is.
3. The fused variance is that of a weighted mean of equicorrelated errors,
   ``(1 - rho) / W + rho * (sum(1 / sigma_i) / W) ** 2`` with ``W = sum(1 / sigma_i**2)``
   and ``rho = Policy.fix_correlation``: a standing phone's consecutive fixes share
   satellites and multipath, so their errors are correlated and averaging shrinks
   them less than for independent fixes (``rho = 0``: 1/sqrt(W); ``rho = 1``: no
   shrinking at all).

``p_inside`` is the probability that the true position lies in the best fenced
box widened by ``tolerance_m`` on every side: a closed form for rectangles (a
product of two error functions in the box's own frame) and, for other shapes, a
closed form too: a sum over the edges of signed triangles with apex at the fused
position, each an angle and two values of Owen's T function (scipy's), exact to
rounding.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import llvmlite.binding as llvm
import numba as nb
import numpy as np
import shapely
from numba.extending import get_cython_function_address

from geofence import _kernels
from geofence import crs as _crs
from geofence.calibration import DEFAULT_CALIBRATION, Calibration
from geofence.errors import CheckError, PolicyError
from geofence.index import ZoneIndex
from geofence.zoneset import KIND_NAMES, KIND_NO_PARKING, KIND_PARKING

__all__ = [
    "MAX_FIXES",
    "OUTCOMES",
    "QUALITIES",
    "REASONS",
    "BeaconReading",
    "Check",
    "CheckBatch",
    "Decision",
    "DecisionBatch",
    "Fix",
    "Policy",
    "decide",
    "decide_arrays",
    "decide_many",
]

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

_CANDIDATES = 4  # fenced boxes weighed for p_inside
_SIGMAS = 5.0  # boxes farther than tolerance + 5 sigma have p < 1e-6
_MITRE_LIMIT = 5.0  # buffered corners reach at most this many tolerances out
_RECT_SLACK_M = 0.05  # a rectangle's frame lies within this of the box itself
_P_SLACK = 1e-3  # above the numeric error of p_inside


# --------------------------------------------------------------------------- inputs
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
        t = datetime.fromisoformat(value)
    except ValueError:
        raise CheckError(
            f"{field_name}: not an RFC 3339 time: {value!r}", field=field_name, rule="format"
        ) from None
    if t.tzinfo is None:
        raise CheckError(
            f"{field_name}: the time has no UTC offset: {value!r}", field=field_name, rule="format"
        )
    return t.timestamp()


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


@dataclass(frozen=True)
class Policy:
    """The settlement policy: plain values, with a stable id recorded in every decision.

    Defaults (see the README for why): a box counts 0.5 m wider on every side
    (paint width and the survey error of the box itself); settle at p >= 0.7;
    reject at p <= 0.05; fixes worse than 15 m cannot settle; the last fix may be
    at most 120 s old; vertical parking within 30 degrees; a road stud heard at
    -75 dBm or stronger is strong evidence (p = 0.99) for its box; up to 3 nearest
    boxes within 300 m are returned with a rejection.
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
    outlier_chi2: float = 13.8
    fix_correlation: float = 0.5
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
            ("outlier_chi2", self.outlier_chi2 > 0),
            ("fix_correlation", 0 <= self.fix_correlation <= 1),
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


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class Decision:
    """The outcome of one check, with the evidence and the versions that decided it."""

    outcome: str
    zone: Mapping[str, Any] | None
    p_inside: float
    distance_m: float | None
    nearest: tuple[Mapping[str, Any], ...]
    reasons: tuple[str, ...]
    zone_set_version: int | None
    policy: str
    check_id: str | None
    decided_at: float
    position: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping with the DESIGN §3 fields (``decided_at`` as RFC 3339)."""
        return {
            "outcome": self.outcome,
            "zone": dict(self.zone) if self.zone is not None else None,
            "p_inside": self.p_inside,
            "distance_m": self.distance_m,
            "nearest": [dict(n) for n in self.nearest],
            "reasons": list(self.reasons),
            "zone_set_version": self.zone_set_version,
            "policy": self.policy,
            "check_id": self.check_id,
            "decided_at": _rfc3339(self.decided_at),
            "position": dict(self.position),
        }


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions as arrays (see :func:`decide_arrays`); ``decision(i)`` gives one."""

    index: ZoneIndex
    policy: Policy
    now: float
    outcome: np.ndarray  # int8 codes into OUTCOMES
    reasons: np.ndarray  # int32 bit sets over REASONS
    zone: np.ndarray  # matched zone position or -1
    p_inside: np.ndarray
    distance_m: np.ndarray  # signed, NaN without a zone
    nearest_pos: np.ndarray  # (n, k) positions, -1 padded
    nearest_dist: np.ndarray
    nearest_bearing: np.ndarray
    lon: np.ndarray  # fused position, WGS-84
    lat: np.ndarray
    accuracy_m: np.ndarray  # fused 68 % radius

    def __len__(self) -> int:
        return len(self.outcome)

    def decision(self, i: int, check_id: str | None = None) -> Decision:
        """Decision ``i`` as a :class:`Decision`."""
        zs = self.index.zone_set
        t = _tables(self.index, self.policy.tolerance_m)
        ids = t.ids
        z = int(self.zone[i])
        zone = None if z < 0 else dict(_zone_info(self.index, t, z))
        nearest = tuple(
            {
                "zone_id": ids[p],
                "distance_m": round(d, 2),
                "bearing_deg": round(b, 1),
            }
            for p, d, b in zip(
                self.nearest_pos[i].tolist(),
                self.nearest_dist[i].tolist(),
                self.nearest_bearing[i].tolist(),
                strict=True,
            )
            if p >= 0
        )
        bits = int(self.reasons[i])
        dist = float(self.distance_m[i])
        return Decision(
            outcome=OUTCOMES[int(self.outcome[i])],
            zone=zone,
            p_inside=round(float(self.p_inside[i]), 4),
            distance_m=None if math.isnan(dist) else round(dist, 2),
            nearest=nearest,
            reasons=_reason_names(bits),
            zone_set_version=zs.version,
            policy=self.policy.id,
            check_id=check_id,
            decided_at=self.now,
            position={
                "lon": round(float(self.lon[i]), 7),
                "lat": round(float(self.lat[i]), 7),
                "accuracy_m": round(float(self.accuracy_m[i]), 2),
            },
        )


@functools.lru_cache(maxsize=1024)
def _reason_names(bits: int) -> tuple[str, ...]:
    """The reason codes set in ``bits``, in REASONS order."""
    return tuple(r for b, r in enumerate(REASONS) if bits >> b & 1)


# --------------------------------------------------------------------------- derived tables
@dataclass(frozen=True)
class _Tables:
    """What decisions need beyond the index, derived once per (index, tolerance)."""

    rect: np.ndarray  # (n, 6): cx, cy, ux, uy, half-length, half-width (metres); NaN: not a rect
    poly_of: np.ndarray  # zone -> buffered polygon number, -1 for none
    pframe: np.ndarray  # (polygons, 4): origin x, y and cos, sin of the frame's rotation
    pvx: np.ndarray  # buffered non-rectangular fenced boxes in their frames, flat rings
    pvy: np.ndarray
    pring_start: np.ndarray
    pzone_ring_start: np.ndarray
    fenced: np.ndarray  # fenced parking boxes
    beacon_position: Mapping[str, int]
    open_masks: dict[str | None, tuple[np.ndarray, np.ndarray]]
    box_grid: tuple[Any, ...]  # see _box_grid
    # the single-check path's caches: kernel arguments per (policy id, operator), and
    # the ids and zone mappings of the zone set as Python objects
    ids: list[str] = field(default_factory=list)
    single_args: dict[tuple[str, str | None], tuple[Any, ...]] = field(default_factory=dict)
    zone_info: dict[int, Mapping[str, Any]] = field(default_factory=dict)


_TABLES: weakref.WeakKeyDictionary[ZoneIndex, dict[float, _Tables]] = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def _rectangles(geoms_m: np.ndarray) -> np.ndarray:
    """(n, 6) rectangle frames of the geometries that are rectangles, NaN elsewhere.

    Coordinates rounded to 1e-7 degrees (1 cm) bend right angles by up to ~0.3
    degrees on a 2 m box, so a quadrilateral counts as a rectangle when every corner
    is within 0.6 degrees of square and opposite sides agree to 2 cm; its frame is
    then the mean of its sides (the p_inside error that leaves is far below 0.001).
    """
    out = np.full((len(geoms_m), 6), np.nan)
    cand = np.flatnonzero(
        (shapely.get_type_id(geoms_m) == 3)
        & (shapely.get_num_interior_rings(geoms_m) == 0)
        & (shapely.get_num_coordinates(geoms_m) == 5)
    )
    if len(cand) == 0:
        return out
    c = shapely.get_coordinates(geoms_m[cand]).reshape(-1, 5, 2)
    e = np.diff(c, axis=1)  # 4 edges
    ln = np.hypot(e[..., 0], e[..., 1])
    nxt = np.roll(e, -1, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = np.abs((e * nxt).sum(-1)) / (ln * np.roll(ln, -1, axis=1))
    ok = (
        (cosang < 0.01).all(axis=1)
        & (ln > 0).all(axis=1)
        & (np.abs(ln[:, 0] - ln[:, 2]) < 0.02)
        & (np.abs(ln[:, 1] - ln[:, 3]) < 0.02)
    )
    c, e, ln, cand = c[ok], e[ok], ln[ok], cand[ok]
    # mean direction of each pair of opposite sides (the second of a pair runs backwards)
    d0 = e[:, 0] - e[:, 2]
    d1 = e[:, 1] - e[:, 3]
    l0 = (ln[:, 0] + ln[:, 2]) / 2
    l1 = (ln[:, 1] + ln[:, 3]) / 2
    long0 = l0 >= l1
    axis = np.where(long0[:, None], d0, d1)
    out[cand, 0:2] = c[:, :4].mean(axis=1)
    out[cand, 2:4] = axis / np.hypot(axis[:, 0], axis[:, 1])[:, None]
    out[cand, 4] = np.where(long0, l0, l1) / 2
    out[cand, 5] = np.where(long0, l1, l0) / 2
    return out


def _frames(geoms_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each polygon in its own frame: centred, its long axis along y.

    Centred, so that :func:`_poly_p` computes with small coordinates (EPSG:4547
    metres are in the millions). The rotation served an earlier slab integral along
    y and changes nothing now.
    """
    n = len(geoms_m)
    frame = np.zeros((n, 4))
    if n == 0:
        return geoms_m, frame
    mrr = shapely.get_coordinates(shapely.minimum_rotated_rectangle(geoms_m)).reshape(n, 5, 2)
    e0 = mrr[:, 1] - mrr[:, 0]
    e1 = mrr[:, 2] - mrr[:, 1]
    long_edge = np.where(
        (np.hypot(*e0.T) >= np.hypot(*e1.T))[:, None], e0, e1
    )  # rotate this onto +y
    angle = np.arctan2(long_edge[:, 0], long_edge[:, 1])  # from +y, clockwise
    c = shapely.get_coordinates(shapely.centroid(geoms_m))
    frame[:, 0:2] = c
    frame[:, 2] = np.cos(angle)
    frame[:, 3] = np.sin(angle)
    framed = np.empty(n, dtype=object)
    for i in range(n):  # a few hundred boxes, once per (index, tolerance)
        cs, sn = frame[i, 2], frame[i, 3]

        def to_frame(a: np.ndarray, i: int = i, cs: float = cs, sn: float = sn) -> np.ndarray:
            d = a - frame[i, 0:2]
            return np.column_stack((d[:, 0] * cs - d[:, 1] * sn, d[:, 0] * sn + d[:, 1] * cs))

        framed[i] = shapely.transform(geoms_m[i], to_frame)
    return framed, frame


_BOX_CELL_M = 100.0  # fenced-box grid cell (metres): 25-100 m measured alike; 100 m: 3 MB here
_BOX_GRID_CELLS = 1 << 22  # at most this many cells (16 MiB of offsets); coarser beyond
_BOX_GRID_MAX_CELL_M = 400.0  # coarser than this: search the index's own grid instead
_BOX_GRID_EPS_M = 1e-3  # boxes are registered this much wider (rounding at cell edges)


def _box_grid(index: ZoneIndex, fenced: np.ndarray) -> tuple[Any, ...]:
    """A dense metric grid of the fenced boxes, for the nearest-box searches.

    Returns ``(x0, y0, cell, nx, ny, cell_start, entry_box, entry_id, vxy, lists)``: cell
    ``(a, b)`` (column ``a = floor((x - x0) / cell)``, row ``b``) has the entries ``e``
    in ``cell_start[b * nx + a]:cell_start[b * nx + a + 1]``, one per internal zone
    whose metre bounding box (widened by 1 mm) overlaps it, in zone order. An entry's
    rows hold what rejects most entries without reading the zone's own rows:
    ``entry_box[e]`` is the zone's metre box (the index's ``mbox`` row, the same
    numbers); ``entry_id[e]`` its internal zone, its position,
    1 when that has a time window (``active_from`` or ``active_to`` other than -inf,
    +inf; 0: always active, the window is not read) and, for a zone of one ring, the
    range ``v0, v1`` of its vertices in ``vxy`` (else -1, -1): a copy of the index's
    ``mx``, ``my`` of those zones, x and y side by side. ``nx = 0``: no grid (no
    fenced box, or an extent so large that the cells would be coarse); the kernels
    then search the index's grid. Every nearest-box candidate (``fenced`` and
    ``fenced & open``) is a fenced box, so the grid holds every zone those searches
    may return. ``lists``: each cell's near boxes (:func:`_near_lists`).
    """
    z = index._grid.inv_perm[np.flatnonzero(fenced)]
    no_rows = (np.zeros((0, 4)), np.zeros((0, 5), np.int32), np.zeros((0, 2)))
    no_lists = (np.zeros(1, np.int32), np.zeros(0, np.float32), np.zeros((0, 2)))
    none = (0.0, 0.0, 1.0, 0, 0, np.zeros(1, np.int32), *no_rows, no_lists)
    if len(z) == 0:
        return none
    mb = index._grid.mbox[z]
    eps = _BOX_GRID_EPS_M
    x0 = float(mb[:, 0].min()) - 2 * eps
    y0 = float(mb[:, 1].min()) - 2 * eps
    w = float(mb[:, 2].max()) + 2 * eps - x0
    h = float(mb[:, 3].max()) + 2 * eps - y0
    cell = max(_BOX_CELL_M, math.sqrt(w * h / _BOX_GRID_CELLS))
    if not math.isfinite(cell) or cell > _BOX_GRID_MAX_CELL_M:
        return none
    nx = int(w // cell) + 1
    ny = int(h // cell) + 1
    i0 = np.floor((mb[:, 0] - eps - x0) / cell).astype(np.int64).clip(0, nx - 1)
    i1 = np.floor((mb[:, 2] + eps - x0) / cell).astype(np.int64).clip(0, nx - 1)
    j0 = np.floor((mb[:, 1] - eps - y0) / cell).astype(np.int64).clip(0, ny - 1)
    j1 = np.floor((mb[:, 3] + eps - y0) / cell).astype(np.int64).clip(0, ny - 1)
    wi = i1 - i0 + 1
    per = wi * (j1 - j0 + 1)
    owner = np.repeat(np.arange(len(z)), per)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)
    cells = (j0[owner] + k // wi[owner]) * nx + i0[owner] + k % wi[owner]
    order = np.lexsort((z[owner], cells))
    cell_start = np.zeros(nx * ny + 1, np.int32)
    np.cumsum(np.bincount(cells, minlength=nx * ny), out=cell_start[1:])
    ez = z[owner][order]
    pos = index._grid.perm[ez]
    zs = index.zone_set
    windowed = (zs.active_from[pos] != -np.inf) | (zs.active_to[pos] != np.inf)
    entry_box = np.ascontiguousarray(index._grid.mbox[ez], dtype=np.float64)
    # the vertices of the zones of one ring, (x, y) side by side, zone after zone
    g = index._grid
    uz = np.unique(ez)
    zr = g.zone_ring_start
    one = zr[uz + 1] - zr[uz] == 1
    a0 = g.ring_start[zr[uz]]
    cnt = np.where(one, g.ring_start[np.minimum(zr[uz] + 1, len(g.ring_start) - 1)] - a0, 0)
    start = np.cumsum(cnt) - cnt
    idx = np.repeat(a0, cnt) + np.arange(int(cnt.sum())) - np.repeat(start, cnt)
    vxy = np.ascontiguousarray(np.column_stack((g.mx[idx], g.my[idx])), dtype=np.float64)
    u = np.searchsorted(uz, ez)
    v0 = np.where(one[u], start[u], -1)
    v1 = np.where(one[u], start[u] + cnt[u], -1)
    entry_id = np.ascontiguousarray(np.column_stack((ez, pos, windowed, v0, v1)).astype(np.int32))
    grid = (x0, y0, cell, nx, ny, cell_start, _aligned(entry_box), entry_id, _aligned(vxy))
    return (*grid, _near_lists(grid, len(g.perm)))


def _aligned(a: np.ndarray, align: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``a`` that starts on an ``align``-byte boundary.

    numpy aligns to 16 bytes, so half of the box grid's 32-byte rows would straddle
    two cache lines (measured ~10 ns a check slower than these)."""
    buf = np.empty(a.nbytes + align, np.uint8)
    off = -buf.ctypes.data % align
    out = buf[off : off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _build_tables(index: ZoneIndex, tolerance: float) -> _Tables:
    from geofence.index import _flatten  # the index's own ring layout

    zs = index.zone_set
    fenced = (zs.kind == KIND_PARKING) & zs.fenced
    rect = _rectangles(zs.geometry_m)
    rect[~fenced] = np.nan
    others = np.flatnonzero(fenced & np.isnan(rect[:, 0]))
    poly_of = np.full(len(zs), -1, np.int64)
    poly_of[others] = np.arange(len(others))
    buffered = shapely.buffer(
        zs.geometry_m[others], tolerance, join_style="mitre", mitre_limit=_MITRE_LIMIT
    )
    # exteriors counter-clockwise, holes clockwise: _poly_p's signed triangles need one
    # consistent sense (GEOS's buffer gives the other; rotations keep it)
    buffered = shapely.orient_polygons(buffered)
    framed, pframe = _frames(buffered)
    if len(others):
        pvx, pvy, pring, pzone = _flatten(framed)
    else:
        pvx = pvy = np.zeros(1)
        pring = np.zeros(1, np.int64)
        pzone = np.zeros(1, np.int64)
    stud: dict[str, int] = {}
    for p in np.flatnonzero(fenced):
        for b in zs.beacons[p]:
            stud.setdefault(b, int(p))
    return _Tables(
        rect=np.ascontiguousarray(rect),
        poly_of=poly_of,
        pframe=pframe,
        pvx=pvx,
        pvy=pvy,
        pring_start=pring,
        pzone_ring_start=pzone,
        fenced=fenced,
        beacon_position=stud,
        open_masks={},
        box_grid=_box_grid(index, fenced),
        ids=[str(i) for i in zs.ids.tolist()],
    )


def _tables(index: ZoneIndex, tolerance: float) -> _Tables:
    with _TABLES_LOCK:
        per_index = _TABLES.setdefault(index, {})
        t = per_index.get(tolerance)
        if t is None:
            t = per_index[tolerance] = _build_tables(index, tolerance)
        return t


def _open_masks(index: ZoneIndex, t: _Tables, operator: str | None) -> tuple[np.ndarray, ...]:
    """(zones open to the operator, fenced boxes open to it); cached per operator."""
    masks = t.open_masks.get(operator)
    if masks is None:
        open_any = index.zone_set.open_to(operator)
        masks = t.open_masks[operator] = (open_any, t.fenced & open_any)
    return masks


_SERVICE_CELL_DEG = 0.0025  # service-area map cell (~250 m; the index's tiles are 0.01)
_SERVICE_MAP_CELLS = 1 << 20  # at most this many cells (1 MiB); coarser for larger areas
_SERVICE_EDGE_FRAC = 1e-4  # fixes this close to a cell's side (a share of it) test exactly
_SVC_OUT, _SVC_IN, _SVC_EDGE = 0, 1, 2
_NO_SERVICE_MAP = (0.0, 0.0, 1.0, 0, 0, np.zeros(1, np.int8))


@functools.lru_cache(maxsize=8)
def _service_map(service: ZoneIndex) -> tuple[float, float, float, int, int, np.ndarray]:
    """A lon/lat cell map of the service area, so that most fixes skip its exact test.

    Returns ``(x0, y0, 1 / cell, nx, ny, state)``: cell ``(a, b)``, at column
    ``a = floor((lon - x0) / cell)`` and row ``b``, is ``_SVC_IN`` when one piece of the
    service index contains the cell shrunk by half ``_SERVICE_EDGE_FRAC`` of its side,
    ``_SVC_OUT`` when no piece meets the shrunk cell, and ``_SVC_EDGE`` otherwise. The
    kernel locates fixes in edge cells, and those within ``_SERVICE_EDGE_FRAC`` of a
    cell's side, in the service index itself; every other fix lies well inside or
    outside every piece, where the index's even-odd test cannot err. Points off the
    map (two cells around the pieces) are outside. Cells are coarser where the area
    would need more than ``_SERVICE_MAP_CELLS`` of them (above 6 square degrees; no
    cell then fits in one tile, and the map only settles the fixes outside).
    """
    geoms = service.zone_set.geometry
    if len(geoms) == 0:
        return _NO_SERVICE_MAP  # no piece: every fix is off the map, outside
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    cell = max(_SERVICE_CELL_DEG, math.sqrt((maxx - minx) * (maxy - miny) / _SERVICE_MAP_CELLS))
    x0 = (math.floor(minx / cell) - 2) * cell  # 0.0025: cells line up with the tiles
    y0 = (math.floor(miny / cell) - 2) * cell
    nx = int((maxx - x0) // cell) + 3
    ny = int((maxy - y0) // cell) + 3
    # only cells near a piece's bounding box can meet it: the others stay outside
    # without a geometry each (making every cell's box was most of the build)
    near = np.zeros((ny, nx), bool)
    b = shapely.bounds(geoms)
    a0 = np.clip(np.floor((b[:, 0] - x0) / cell).astype(np.int64) - 1, 0, nx - 1)
    a1 = np.clip(np.floor((b[:, 2] - x0) / cell).astype(np.int64) + 1, 0, nx - 1)
    b0 = np.clip(np.floor((b[:, 1] - y0) / cell).astype(np.int64) - 1, 0, ny - 1)
    b1 = np.clip(np.floor((b[:, 3] - y0) / cell).astype(np.int64) + 1, 0, ny - 1)
    for i in range(len(b)):
        near[b0[i] : b1[i] + 1, a0[i] : a1[i] + 1] = True
    idx = np.flatnonzero(near.ravel())
    gx = x0 + cell * (idx % nx)
    gy = y0 + cell * (idx // nx)
    m = 0.5 * _SERVICE_EDGE_FRAC * cell
    cells = shapely.box(gx + m, gy + m, gx + cell - m, gy + cell - m)
    tree = shapely.STRtree(geoms)
    state = np.full(nx * ny, _SVC_OUT, np.int8)
    state[idx[np.unique(tree.query(cells, predicate="intersects")[0])]] = _SVC_EDGE
    state[idx[np.unique(tree.query(cells, predicate="within")[0])]] = _SVC_IN
    return x0, y0, 1.0 / cell, nx, ny, state


# --------------------------------------------------------------------------- kernels
_jit = nb.njit(cache=True, nogil=True)
_jit_inline = nb.njit(cache=True, nogil=True, inline="always")
# Numba's runtime (NRT) counts references to arrays with atomic increments and
# decrements wherever an array is passed on, even to inlined helpers; the batch kernel
# paid ~10 % of its time for them (perf, high-precision checks). A kernel that
# allocates nothing (its work arrays come from the caller, see _work_buffers) only
# borrows arrays its caller keeps alive, so it is compiled without the runtime: no
# counts at all. Numba refuses to compile such a kernel if it ever allocates. (``_nrt``
# is numba's own switch for this, used by its tests; its type stubs do not list it.)
_jit_borrowed = nb.njit(cache=True, nogil=True, _nrt=False)  # type: ignore[call-overload]


_LIST_K = 4  # lists answer searches for up to this many boxes (the candidates, the nearest)
_LIST_SLACK_M = 10.0  # see _near_lists
# cells whose list would reach farther than this, or hold more boxes, have none;
# measured on the bench (Zhuhai, 100 m cells): 250 m / 64 boxes left ~19 % of the
# trip ends to the walk, 600 / 128 ~80 ns a consumer check faster (14 MB of lists)
_LIST_MAX_U_M = 600.0
_LIST_MAX_LEN = 128
_LIST_MAX_ROWS_PER_BOX = 64  # at most this many rows a fenced box (nearest cells first)


@_jit_inline
def _near_list_members(x0, y0, cell, nx, ny, cstart, gbox, gid, a, b, u, stamp, tag, rows, w):
    """How many boxes have their metre box within ``u`` of cell (a, b) (each once:
    ``stamp[zone] = tag``); from ``w >= 0`` on, their rows (distance, entry) too."""
    ax0 = x0 + a * cell
    ay0 = y0 + b * cell
    r2 = np.int64(u // cell) + 1
    m = 0
    for bb in range(max(b - r2, 0), min(b + r2, ny - 1) + 1):
        for aa in range(max(a - r2, 0), min(a + r2, nx - 1) + 1):
            c = bb * nx + aa
            for f in range(cstart[c], cstart[c + 1]):
                z = gid[f, 0]
                if stamp[z] == tag:
                    continue
                dx = max(gbox[f, 0] - (ax0 + cell), 0.0, ax0 - gbox[f, 2])
                dy = max(gbox[f, 1] - (ay0 + cell), 0.0, ay0 - gbox[f, 3])
                d = math.sqrt(dx * dx + dy * dy)
                if d <= u:
                    stamp[z] = tag
                    if w >= 0:
                        rows[w + m, 0] = d
                        rows[w + m, 1] = f
                    m += 1
    return m


@_jit
def _near_list_bounds(x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, kk, slack, umax, lmax):
    """The reach ``u`` of each of ``cells``' lists (-1: none) and their lengths."""
    reach = np.full(len(cells), -1.0)
    count = np.zeros(len(cells), np.int64)
    stamp = np.full(nz, -1, np.int64)
    rows0 = np.empty((0, 2))
    best = np.empty(kk)
    half = cell * math.sqrt(0.5)
    rr = np.int64(umax // cell) + 1
    for n in range(len(cells)):
        a = cells[n] % nx
        b = cells[n] // nx
        cx = x0 + (a + 0.5) * cell
        cy = y0 + (b + 0.5) * cell
        for j in range(kk):
            best[j] = np.inf
        for bb in range(max(b - rr, 0), min(b + rr, ny - 1) + 1):
            for aa in range(max(a - rr, 0), min(a + rr, nx - 1) + 1):
                c = bb * nx + aa
                for f in range(cstart[c], cstart[c + 1]):
                    z = gid[f, 0]
                    if stamp[z] == 2 * n:
                        continue
                    stamp[z] = 2 * n
                    dx = max(gbox[f, 0] - cx, 0.0, cx - gbox[f, 2])
                    dy = max(gbox[f, 1] - cy, 0.0, cy - gbox[f, 3])
                    d = math.sqrt(dx * dx + dy * dy)
                    j = kk - 1
                    if d < best[j]:
                        while j > 0 and best[j - 1] > d:
                            best[j] = best[j - 1]
                            j -= 1
                        best[j] = d
        u = best[kk - 1] + half + slack
        if not u <= umax:
            continue
        m = _near_list_members(
            x0, y0, cell, nx, ny, cstart, gbox, gid, a, b, u, stamp, 2 * n + 1, rows0, -1
        )
        if m <= lmax:
            reach[n] = u
            count[n] = m
    return reach, count


@_jit
def _near_list_rows(x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, reach, start, rows):
    """Fill each listed cell's rows (distance of the metre box from the cell, entry),
    nearest first."""
    stamp = np.full(nz, -1, np.int64)
    for n in range(len(cells)):
        u = reach[n]
        if u < 0.0:
            continue
        a = cells[n] % nx
        b = cells[n] // nx
        w = start[n]
        w += _near_list_members(x0, y0, cell, nx, ny, cstart, gbox, gid, a, b, u, stamp, n, rows, w)
        seg = rows[start[n] : w]
        order = np.argsort(seg[:, 0], kind="mergesort")
        seg[:] = seg[order]


def _near_lists(grid: tuple[Any, ...], nz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of the box grid, the fenced boxes that may be nearest to a fix in it.

    ``(start, reach, rows)``: cell ``c``'s rows ``start[c]:start[c + 1]`` are
    (distance of the box's metre box from the cell, box grid entry) for every
    fenced box within ``reach[c]`` of the cell (one entry per box), nearest first;
    ``reach[c] < 0``: no list. The reach is the distance from the cell's centre to
    its ``_LIST_K``-th nearest metre box, plus the cell's half diagonal and
    ``_LIST_SLACK_M`` (a box's metre box is nearer than the box): enough, for most
    fixes in the cell, to hold their ``_LIST_K`` nearest boxes and leave the check
    of :func:`_list_nearest` true. Cells whose list would reach beyond
    ``_LIST_MAX_U_M`` or hold more than ``_LIST_MAX_LEN`` boxes get none (the
    search walks the grid there), and so do those of the longest reach once the
    rows would exceed ``_LIST_MAX_ROWS_PER_BOX`` a box.
    """
    x0, y0, cell, nx, ny, cstart, gbox, gid, _ = grid
    ncell = nx * ny
    start = np.zeros(ncell + 1, np.int32)
    reach32 = np.full(ncell, -1.0, np.float32)
    if ncell == 0 or len(gbox) == 0:
        return start, reach32, np.zeros((0, 2))
    # the cells within r cells of an occupied one (the others' lists would reach
    # farther than _LIST_MAX_U_M): a box sum over the occupied cells' prefix sums
    occupied = (np.diff(cstart) > 0).reshape(ny, nx)
    r = int(_LIST_MAX_U_M // cell) + 1
    acc = np.zeros((ny + 1, nx + 1), np.int64)
    acc[1:, 1:] = occupied.cumsum(0).cumsum(1)
    lo_y = np.clip(np.arange(ny) - r, 0, ny)[:, None]
    hi_y = np.clip(np.arange(ny) + r + 1, 0, ny)[:, None]
    lo_x = np.clip(np.arange(nx) - r, 0, nx)[None, :]
    hi_x = np.clip(np.arange(nx) + r + 1, 0, nx)[None, :]
    near = acc[hi_y, hi_x] - acc[lo_y, hi_x] - acc[hi_y, lo_x] + acc[lo_y, lo_x] > 0
    cells = np.flatnonzero(near.ravel())
    reach, count = _near_list_bounds(
        x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, _LIST_K, _LIST_SLACK_M,
        _LIST_MAX_U_M, _LIST_MAX_LEN,
    )  # fmt: skip
    # bound the memory: beyond _LIST_MAX_ROWS_PER_BOX rows a fenced box, the cells
    # of the longest reach lose their lists first
    budget = _LIST_MAX_ROWS_PER_BOX * len(np.unique(gid[:, 0]))
    if count.sum() > budget:
        by_reach = np.argsort(reach, kind="stable")
        drop = by_reach[np.cumsum(count[by_reach]) > budget]
        reach[drop] = -1.0
        count[drop] = 0
    cstart_rows = np.cumsum(count) - count
    rows = np.empty((int(count.sum()), 2))
    _near_list_rows(x0, y0, cell, nx, ny, cstart, gbox, gid, nz, cells, reach, cstart_rows, rows)
    counts = np.zeros(ncell, np.int32)
    counts[cells] = count
    np.cumsum(counts, out=start[1:])
    # float32, rounded down: every box within the stored reach is still on the list
    r32 = reach.astype(np.float32)
    r32 = np.where(r32 > reach, np.nextafter(r32, np.float32(-1.0)), r32)
    reach32[cells] = np.where(reach < 0.0, -1.0, r32)
    return start, reach32, rows


# Owen's T function, scipy's C implementation (scipy.special.owens_t), called from the
# kernels by name: the symbol is registered with LLVM here, at import, before any cached
# kernel is loaded, so the kernels stay cacheable (a ctypes pointer would embed the
# address and numba would refuse to cache them). The trailing int is Cython's
# skip-dispatch flag.
llvm.add_symbol(
    "geofence_scipy_owens_t",
    get_cython_function_address("scipy.special.cython_special", "owens_t"),
)
_owens_t = nb.types.ExternalFunction(
    "geofence_scipy_owens_t",
    nb.types.float64(nb.types.float64, nb.types.float64, nb.types.intc),
)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


# Two of the index's helpers, compiled as functions that the kernels here call
# instead of inlining them (~16 calls per check): numba updates the reference count
# of each array an inlined helper takes at every call. Measured on the decision
# benchmark: 1.05-1.08x more checks/s; calling locate_one or _grid_nearest was slower.
_zone_closest = _jit(_kernels.zone_closest.py_func)
_insert = _jit_inline(_kernels._insert.py_func)


@_jit_inline
def _sort_small(a, n):
    """Sort ``a[:n]`` (no NaN) in place, ascending: insertion sort up to 64 values,
    heapsort beyond; allocates nothing.

    Numba's ``ndarray.sort`` allocates a work list on every call (measured: a third
    of the batch kernel's time went to malloc and its quicksort) and needs numba's
    runtime, which :func:`_fuse` is compiled without; the arrays sorted here are
    trails of a few fixes (at most ``MAX_FIXES`` from the API).
    """
    if n > 64:
        for root in range(n // 2 - 1, -1, -1):
            _sift_down(a, root, n)
        for end in range(n - 1, 0, -1):
            a[0], a[end] = a[end], a[0]
            _sift_down(a, 0, end)
        return
    for j in range(1, n):
        v = a[j]
        i = j - 1
        while i >= 0 and a[i] > v:
            a[i + 1] = a[i]
            i -= 1
        a[i + 1] = v


@_jit_inline
def _sift_down(a, root, end):
    """Heapsort's step: move ``a[root]`` down the max-heap ``a[:end]``."""
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and a[child] < a[child + 1]:
            child += 1
        if not a[root] < a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root = child


@_jit_inline
def _sort8(t, n):
    """Sort ``t[:n]`` (n <= 8 <= len(t), no NaN) in place; ``t[n:8]`` becomes inf.

    A sorting network (Batcher's odd-even merge sort, 19 compare-exchanges) of
    min/max, no branch to mispredict: the medians of a 3-8 fix trail took ~half of
    :func:`_fuse`'s time in the insertion sort's mispredicted branches.
    """
    a0 = t[0] if n > 0 else np.inf
    a1 = t[1] if n > 1 else np.inf
    a2 = t[2] if n > 2 else np.inf
    a3 = t[3] if n > 3 else np.inf
    a4 = t[4] if n > 4 else np.inf
    a5 = t[5] if n > 5 else np.inf
    a6 = t[6] if n > 6 else np.inf
    a7 = t[7] if n > 7 else np.inf
    a0, a1 = min(a0, a1), max(a0, a1)
    a2, a3 = min(a2, a3), max(a2, a3)
    a4, a5 = min(a4, a5), max(a4, a5)
    a6, a7 = min(a6, a7), max(a6, a7)
    a0, a2 = min(a0, a2), max(a0, a2)
    a1, a3 = min(a1, a3), max(a1, a3)
    a4, a6 = min(a4, a6), max(a4, a6)
    a5, a7 = min(a5, a7), max(a5, a7)
    a1, a2 = min(a1, a2), max(a1, a2)
    a5, a6 = min(a5, a6), max(a5, a6)
    a0, a4 = min(a0, a4), max(a0, a4)
    a1, a5 = min(a1, a5), max(a1, a5)
    a2, a6 = min(a2, a6), max(a2, a6)
    a3, a7 = min(a3, a7), max(a3, a7)
    a2, a4 = min(a2, a4), max(a2, a4)
    a3, a5 = min(a3, a5), max(a3, a5)
    a1, a2 = min(a1, a2), max(a1, a2)
    a3, a4 = min(a3, a4), max(a3, a4)
    a5, a6 = min(a5, a6), max(a5, a6)
    t[0] = a0
    t[1] = a1
    t[2] = a2
    t[3] = a3
    t[4] = a4
    t[5] = a5
    t[6] = a6
    t[7] = a7


@_jit_inline
def _median5(a0, a1, a2, a3, a4):
    """The median of five values (no NaN): a selection network of min/max, the
    median's value without sorting the other four."""
    a0, a1 = min(a0, a1), max(a0, a1)
    a3, a4 = min(a3, a4), max(a3, a4)
    a3 = max(a0, a3)  # not the smallest of the five
    a1 = min(a1, a4)  # nor the largest
    a1, a2 = min(a1, a2), max(a1, a2)
    return max(a1, min(a2, a3))


@_jit_inline
def _masked_median(values, keep, n, tmp):
    """Median of ``values[:n]`` where ``keep``; ``tmp`` is a work array of n.

    The same value as ``np.median`` (which copies its input on every call): the
    middle value, or the mean ``(a + b) / 2`` of the two middle ones; NaN for no
    value or any NaN. With ``tmp`` of 8 or more, up to 8 values are sorted by
    :func:`_sort8`. Allocates nothing (see ``_jit_borrowed``).
    """
    k = 0
    nan = False
    for j in range(n):
        if keep[j]:
            v = values[j]
            tmp[k] = v
            nan = nan or v != v
            k += 1
    if k == 0 or nan:
        return np.nan
    if k == 5:  # the common trail: 10 min/max instead of sorting 8 slots (~5 ns a check)
        return _median5(tmp[0], tmp[1], tmp[2], tmp[3], tmp[4])
    if k <= 8 and tmp.shape[0] >= 8:
        _sort8(tmp, k)
    else:
        _sort_small(tmp, k)
    half = k >> 1
    if k & 1 == 0:
        return (tmp[half - 1] + tmp[half]) / 2
    return tmp[half]


def _fuse_work(m: int) -> tuple[np.ndarray, ...]:
    """The work arrays of :func:`_fuse` for trails of up to ``m`` fixes."""
    return (
        np.empty(m),
        np.empty(m),
        np.empty(m),
        np.empty(m, np.bool_),
        np.empty(m, np.bool_),
        np.empty(max(m, 8)),  # _sort8 sorts in 8 slots
    )


@_jit_borrowed
def _fuse(lon, lat, acc, at, nfix, ended_at, default_acc, max_age, max_skew, chi2, rho, out, work):
    """Fuse each check's trail: out columns lon, lat, sigma, stale (0/1), spread (m).

    ``work``: :func:`_fuse_work` of at least ``lon.shape[1]`` fixes.
    """
    w, dx, dy, keep, usable, tmp = work
    for i in range(lon.shape[0]):
        n = nfix[i]
        lon0 = lon[i, n - 1]
        lat0 = lat[i, n - 1]
        kx = 111_320.0 * math.cos(math.radians(lat0))
        ky = 110_574.0
        fresh = 0
        for j in range(n):
            a = acc[i, j]
            if not (a == a):
                a = default_acc
            s = a / 1.5095921854516636
            w[j] = 1.0 / (s * s)
            dx[j] = (lon[i, j] - lon0) * kx
            dy[j] = (lat[i, j] - lat0) * ky
            t = at[i, j]
            ok = not (t == t) or (ended_at[i] - max_age <= t <= ended_at[i] + max_skew)
            keep[j] = ok
            if ok:
                fresh += 1
        stale = fresh == 0
        if stale:
            for j in range(n):
                keep[j] = True
        # coordinate-wise median of the usable fixes
        ex = _masked_median(dx, keep, n, tmp)
        ey = _masked_median(dy, keep, n, tmp)
        # Two reweighting passes: the fixes within chi2 of the estimate (their squared
        # distance weighted) and their weighted mean. The first pass, from the median,
        # also finds the farthest fix (the square root of the largest square, not
        # math.hypot, ~25 ns a check; offsets are metres, far from overflow); the
        # second sums the kept fixes' sigma terms, as the final loop did (bit for bit:
        # the same terms in the same order), unless a pass fell back to its nearest fix.
        far2 = 0.0
        refold = False
        for p in range(2):
            sw = 0.0
            sx = 0.0
            sy = 0.0
            sinv = 0.0
            for j in range(n):
                q = (dx[j] - ex) ** 2 + (dy[j] - ey) ** 2
                if p == 0:
                    far2 = max(far2, q)
                    usable[j] = keep[j]
                if usable[j]:
                    keep[j] = q * w[j] <= chi2
                    if keep[j]:
                        sw += w[j]
                        sx += w[j] * dx[j]
                        sy += w[j] * dy[j]
                        if p == 1:
                            sinv += math.sqrt(w[j])
            if sw == 0.0:  # rare: none kept; the nearest usable fix alone
                refold = True
                best_j = -1
                best_d = np.inf
                for j in range(n):
                    if usable[j]:
                        d2 = ((dx[j] - ex) ** 2 + (dy[j] - ey) ** 2) * w[j]
                        if d2 < best_d:
                            best_d = d2
                            best_j = j
                keep[best_j] = True
                sw = w[best_j]
                sx = w[best_j] * dx[best_j]
                sy = w[best_j] * dy[best_j]
            ex = sx / sw
            ey = sy / sw
        spread = math.sqrt(far2)
        if refold:
            sw = 0.0
            sinv = 0.0
            for j in range(n):
                if keep[j]:
                    sw += w[j]
                    sinv += math.sqrt(w[j])
        out[i, 0] = lon0 + ex / kx
        out[i, 1] = lat0 + ey / ky
        out[i, 2] = math.sqrt((1.0 - rho) / sw + rho * (sinv / sw) ** 2)
        out[i, 3] = 1.0 if stale else 0.0
        out[i, 4] = spread


@_jit_inline
def _rect_p(x, y, s, r, z, tol):
    dx = x - r[z, 0]
    dy = y - r[z, 1]
    u = dx * r[z, 2] + dy * r[z, 3]
    v = -dx * r[z, 3] + dy * r[z, 2]
    a = r[z, 4] + tol
    b = r[z, 5] + tol
    k = 0.7071067811865476 / s
    pu = 0.5 * (math.erf((a - u) * k) + math.erf((a + u) * k))
    pv = 0.5 * (math.erf((b - v) * k) + math.erf((b + v) * k))
    return pu * pv


@_jit_inline
def _poly_p(q, x, y, s, pvx, pvy, pring, pzone):
    """P(N((x, y), s^2 I) in polygon q), exact: signed triangles with apex at the mean.

    Each edge (a, b) spans a triangle with the mean; its probability, signed by the
    turn from a to b, is ``dpsi / 2 pi - [T(h, t_b / h) - T(h, t_a / h)]``: ``dpsi``
    the angle it subtends, ``h`` the distance from the mean to the edge's line and
    ``t`` the ends' positions along that line from the foot of the perpendicular
    (all in units of s), ``T`` Owen's T function. Summed over every edge of every
    ring, the triangles outside cancel and holes subtract, given one consistent
    orientation (``_build_tables`` orients the rings; either sense gives +-p, hence
    the ``abs``). A polygon beyond 8 s on either axis gives 0 (p < 1e-15).
    """
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    for v in range(pring[pzone[q]], pring[pzone[q + 1]]):
        xmin = min(xmin, pvx[v])
        xmax = max(xmax, pvx[v])
        ymin = min(ymin, pvy[v])
        ymax = max(ymax, pvy[v])
    reach = 8.0 * s
    if x + reach < xmin or x - reach > xmax or y + reach < ymin or y - reach > ymax:
        return 0.0
    inv_s = 1.0 / s
    angle = 0.0  # sum of the signed angles
    owen = 0.0  # sum of the signed Owen's T differences
    for r in range(pzone[q], pzone[q + 1]):
        ax = (pvx[pring[r]] - x) * inv_s
        ay = (pvy[pring[r]] - y) * inv_s
        for v in range(pring[r] + 1, pring[r + 1]):
            bx = (pvx[v] - x) * inv_s
            by = (pvy[v] - y) * inv_s
            ex = bx - ax
            ey = by - ay
            ln = math.sqrt(ex * ex + ey * ey)
            cross = ax * by - ay * bx  # = ln * signed distance of the line
            h = abs(cross) / ln if ln > 0.0 else 0.0
            # h -> 0: the triangle and its probability vanish (and atan2 of the
            # mean on the segment would be +-pi); zero-length edges likewise
            if h > 1e-12:
                angle += math.atan2(cross, ax * bx + ay * by)
                if h < 8.0:  # T(h, a) <= Phi(-h) / 2 < 1e-15 beyond
                    ta = (ax * ex + ay * ey) / ln
                    tb = (bx * ex + by * ey) / ln
                    d = _owens_t(h, tb / h, 0) - _owens_t(h, ta / h, 0)
                    owen += d if cross > 0.0 else -d
            ax = bx
            ay = by
    return min(abs(angle * 0.15915494309189535 - owen), 1.0)


@_jit_inline
def _forbidden(t, heading, active_from, active_to, open_, zh, heading_tol):
    """Reason bits that forbid settling this check in a box (0: none).

    Takes the box's values, not the arrays: an inlined helper's array arguments
    cost reference-count updates on every call in the hot loop.
    """
    forbid = 0
    if not (active_from <= t < active_to):
        forbid |= R_INACTIVE
    if not open_:
        forbid |= R_OPERATOR
    if heading == heading and zh == zh:
        diff = abs(((heading - zh) + 90.0) % 180.0 - 90.0)  # orientations: modulo 180
        if diff > heading_tol:
            forbid |= R_HEADING
    return forbid


@_jit
def _ring_closest(v0, v1, px, py, vxy):
    """:func:`geofence._kernels.zone_closest` of a zone of one ring, ``vxy[v0:v1]``.

    The same operations in the same order (the same numbers), on the box grid's copy
    of the ring: one read for x and y, and no ring tables.
    """
    inside = False
    best = np.inf
    bx = px
    by = py
    for i in range(v0, v1 - 1):
        x1 = vxy[i, 0]
        y1 = vxy[i, 1]
        x2 = vxy[i + 1, 0]
        y2 = vxy[i + 1, 1]
        dx = x2 - x1
        dy = y2 - y1
        wx = px - x1
        wy = py - y1
        seg2 = dx * dx + dy * dy
        t = 0.0
        if seg2 > 0.0:
            t = (wx * dx + wy * dy) / seg2
            if t < 0.0:
                t = 0.0
            elif t > 1.0:
                t = 1.0
        ex = wx - t * dx
        ey = wy - t * dy
        d2 = ex * ex + ey * ey
        if d2 < best:
            best = d2
            bx = x1 + t * dx
            by = y1 + t * dy
        if (y1 > py) != (y2 > py):
            cross = dx * (py - y1) - wx * dy
            if (cross > 0.0) == (y2 > y1):
                inside = not inside
    d = math.sqrt(best)
    return (-d if inside else d), bx, by


_MEMO = 16  # _zone_closest results kept per check (see _grid_nearest)
_CELL_BUF = 32  # a cell's candidates sorted at a time (see _grid_nearest)


@_jit_inline
def _box_d2(gbox, f, qx, qy):
    """Squared distance from (qx, qy) to box grid entry f's metre box."""
    dx = max(gbox[f, 0] - qx, 0.0, qx - gbox[f, 2])
    dy = max(gbox[f, 1] - qy, 0.0, qy - gbox[f, 3])
    return dx * dx + dy * dy


@_jit_inline
def _entry_open(gid, f, mask, active_from, active_to, t, t_some, t_all):
    """Entry f's box is in ``mask`` and active at t (its window read only where the
    row flags one, or at t = +inf; none at t = NaN: see :func:`_grid_nearest`)."""
    p = gid[f, 1]
    if not mask[p]:
        return False
    if t_some and (gid[f, 2] != 0 or t_all):
        return active_from[p] <= t < active_to[p]
    return True


@_jit_inline
def _measured(gid, f, qx, qy, memo, gv, mx, my, rs, zrs):
    """Entry f's box's :func:`_zone_closest` distance at (qx, qy), 0 inside: from the
    memo, or computed (its own ring copy for a box of one ring) and kept there."""
    p = gid[f, 1]
    mlast = memo.shape[0] - 1
    n = np.int64(memo[mlast, 0])
    j = 0
    while j < n and memo[j, 0] != p:
        j += 1
    if j < n:
        d = memo[j, 1]
    else:
        if gid[f, 3] >= 0:  # one ring: its own copy, no ring tables
            d, cx, cy = _ring_closest(gid[f, 3], gid[f, 4], qx, qy, gv)
        else:
            d, cx, cy = _zone_closest(gid[f, 0], qx, qy, mx, my, rs, zrs)
        if n < mlast:
            memo[n, 0] = p
            memo[n, 1] = d
            memo[n, 2] = cx
            memo[n, 3] = cy
            memo[mlast, 0] = n + 1
    if d < 0.0:
        d = 0.0
    return d


@_jit_inline
def _grid_nearest(
    qx, qy, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist, i, buf,
    memo, bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, mx, my, rs, zrs,
):  # fmt: skip
    """:func:`geofence._kernels.nearest_one` over the fenced-box grid (see :func:`_box_grid`).

    The same answer for masks of fenced boxes: the k candidates of least (distance,
    position) among those that lie within ``max_distance``. (``nearest_one`` also
    requires a candidate's lon/lat box to meet a query box around the fix; that box
    holds every point within ``max_distance`` metres, so a box that lies within it in
    EPSG:4547 metres, which are never shorter than the true ones, passes that test:
    the answers agree without it.) Rings of cells around the fix, nearest first, until a
    ring is farther than the k-th best; cells farther than it are skipped (a box's
    nearest point to the fix lies in one of its cells). Each entry is tested first on
    its own row (the metre box); only those that pass read
    the zone's rows, and the time window only where the row flags one. A cell's
    candidates are then measured nearest metre box first (sorted in ``buf``, rows of
    squared metre-box distance and entry), so that the k-th best shrinks early and
    the farther ones are skipped; the ring of each (the grid's copy, see
    :func:`_box_grid`) is prefetched when it is buffered.

    ``memo`` rows ``0 .. memo[-1, 0] - 1`` hold (position, signed distance, closest
    x, y) of the boxes whose :func:`_zone_closest` at (qx, qy) is known; the search
    reads and extends it (the caller empties it for each check, and reads the
    decided zone's distance and the nearest boxes' closest points from it).
    """
    for j in range(k):
        out_pos[i, j] = -1
        out_dist[i, j] = np.inf
    if not (math.isfinite(qx) and math.isfinite(qy)):
        return
    nbuf = buf.shape[0]
    ca = math.floor((qx - bx0) / bcell)
    cb = math.floor((qy - by0) / bcell)
    if not (abs(ca) < 1e9 and abs(cb) < 1e9):
        return
    ca = np.int64(ca)
    cb = np.int64(cb)
    # the time window is tested for the boxes that have one; for every box at t = +inf
    # (where -inf <= t < +inf fails too), for none at t = NaN
    t_some = t == t
    t_all = t == math.inf
    r = 0
    while True:
        limit = min(max_distance, out_dist[i, k - 1])
        if r > 0:
            # every cell of ring r and beyond lies outside the square of the inner
            # rings: at least this far from the fix (less a hair for rounding)
            near = min(
                qx - (bx0 + (ca - r + 1) * bcell),
                (bx0 + (ca + r) * bcell) - qx,
                qy - (by0 + (cb - r + 1) * bcell),
                (by0 + (cb + r) * bcell) - qy,
            )
            if near - 1e-6 > limit:
                break
            if ca - r < 0 and cb - r < 0 and ca + r >= bnx and cb + r >= bny:
                break  # the ring is outside the grid, and so is every later one
        for b in range(max(cb - r, 0), min(cb + r, bny - 1) + 1):
            edge_row = b == cb - r or b == cb + r
            cy0 = by0 + b * bcell
            gy = max(cy0 - qy, 0.0, qy - (cy0 + bcell))
            if gy - 1e-6 > limit:
                continue
            a = max(ca - r, 0)
            a_end = min(ca + r, bnx - 1)
            while a <= a_end:
                if not edge_row and a != ca - r and a != ca + r:
                    # inside the ring: jump to its right column
                    a = ca + r
                    continue
                cell = b * bnx + a
                cx0 = bx0 + a * bcell
                a += 1
                gx = max(cx0 - qx, 0.0, qx - (cx0 + bcell))
                if gx * gx + gy * gy > (limit + 1e-6) * (limit + 1e-6):
                    continue  # the cell is farther than the k-th best
                e = bstart[cell]
                e_end = bstart[cell + 1]
                while e < e_end:
                    # the cell's candidates (as many as buf holds), nearest metre box
                    # first: the k-th best shrinks before the farther ones are met
                    nc = 0
                    while e < e_end and nc < nbuf:
                        f = e
                        e += 1
                        d2 = _box_d2(gbox, f, qx, qy)
                        if d2 > limit * limit:
                            continue
                        if not _entry_open(gid, f, mask, active_from, active_to, t, t_some, t_all):
                            continue
                        if gid[f, 3] >= 0:
                            _kernels._prefetch(gv, 2 * gid[f, 3])  # its ring, measured soon
                        c = nc
                        while c > 0 and buf[c - 1, 0] > d2:
                            buf[c, 0] = buf[c - 1, 0]
                            buf[c, 1] = buf[c - 1, 1]
                            c -= 1
                        buf[c, 0] = d2
                        buf[c, 1] = f
                        nc += 1
                    for c in range(nc):
                        if buf[c, 0] > limit * limit:
                            break  # and so are the rest
                        f = np.int64(buf[c, 1])
                        p = gid[f, 1]
                        seen = False
                        for j in range(k):
                            if out_pos[i, j] == p:
                                seen = True  # met in an earlier cell
                        if seen:
                            continue
                        d = _measured(gid, f, qx, qy, memo, gv, mx, my, rs, zrs)
                        if d <= max_distance:
                            _insert(out_pos, out_dist, i, k, p, d)
                            limit = min(max_distance, out_dist[i, k - 1])
        r += 1


@_jit_inline
def _list_nearest(
    qx, qy, k, max_distance, mask, active_from, active_to, t, out_pos, out_dist, i,
    memo, bx0, by0, bcell, bnx, bny, lists, gbox, gid, gv, mx, my, rs, zrs,
):  # fmt: skip
    """:func:`_grid_nearest` from the fix's cell's list of near boxes (see :func:`_near_lists`).

    Returns False when the list cannot answer (the cell has none, or a box beyond
    it might belong to the answer): the caller then walks the grid. Otherwise the
    answer is the walk's: the list holds every fenced box whose metre box lies within
    ``u`` of the cell, nearest to the cell first; its candidates pass the walk's own
    tests (metre box, mask, time window) and are measured the same
    way (the memo, :func:`_ring_closest`, :func:`_zone_closest`); a box not on the
    list is farther than ``u`` from the fix, so when the k-th best (or
    ``max_distance``) is nearer than ``u`` no such box can enter the answer.
    """
    lstart, lu, lrows = lists
    for j in range(k):
        out_pos[i, j] = -1
        out_dist[i, j] = np.inf
    if not (math.isfinite(qx) and math.isfinite(qy)):
        return True  # the walk answers nothing too
    fa = (qx - bx0) / bcell
    fb = (qy - by0) / bcell
    if not (0.0 <= fa < bnx and 0.0 <= fb < bny):
        return False
    cell = np.int64(fb) * bnx + np.int64(fa)
    u = lu[cell] - 1e-6
    if u < 0.0:
        return False
    t_some = t == t
    t_all = t == math.inf
    limit = max_distance
    for r in range(lstart[cell], lstart[cell + 1]):
        if lrows[r, 0] - 1e-6 > limit:
            break  # this box and the rest are farther from the cell than the k-th best
        f = np.int64(lrows[r, 1])
        if _box_d2(gbox, f, qx, qy) > limit * limit:
            continue
        if not _entry_open(gid, f, mask, active_from, active_to, t, t_some, t_all):
            continue
        d = _measured(gid, f, qx, qy, memo, gv, mx, my, rs, zrs)
        if d <= max_distance:
            _insert(out_pos, out_dist, i, k, gid[f, 1], d)
            limit = min(max_distance, out_dist[i, k - 1])
    return out_dist[i, k - 1] < u or max_distance < u


@_jit_inline
def bz_hit(bz, z, x, y, near_radius, inv_perm, mx, my, rs, zrs):
    """The road stud heard (box bz) belongs to box z, and z is within near_radius."""
    if bz < 0 or bz != z:
        return False
    d, _, _ = _zone_closest(inv_perm[bz], x, y, mx, my, rs, zrs)
    return d <= near_radius


@_jit_borrowed
def _decide(
    g,
    lon,
    lat,
    x,
    y,
    sigma,
    stale,
    sg,
    has_service,
    smap,
    ended_at,
    heading,
    beacon_zone,
    kind,
    zheading,
    active_from,
    active_to,
    fenced,
    open_fenced,
    open_any,
    rect,
    poly_of,
    pframe,
    pvx,
    pvy,
    pring,
    pzone,
    tol,
    settle_p,
    reject_p,
    max_acc,
    heading_tol,
    beacon_p,
    k_near,
    near_radius,
    bgrid,
    out_outcome,
    out_reasons,
    out_zone,
    out_p,
    out_dist,
    near_pos,
    near_dist,
    near_bearing,
    near_dy,
    work,
):
    levels, lmr, inv_size, table, shift = (
        g[_kernels.G_LEVELS],
        g[_kernels.G_LEVEL_MIN_RANK],
        g[_kernels.G_INV_SIZE],
        g[_kernels.G_TABLE],
        g[_kernels.G_SHIFT],
    )
    lzs, lz, ebox, ezone, erank = (
        g[_kernels.G_LEVEL_ZONE_START],
        g[_kernels.G_LEVEL_ZONES],
        g[_kernels.G_ENTRY_BOX],
        g[_kernels.G_ENTRY_ZONE],
        g[_kernels.G_ENTRY_RANK],
    )
    bbox, mbox, vxy, mx, my = (
        g[_kernels.G_BBOX],
        g[_kernels.G_MBOX],
        g[_kernels.G_VXY],
        g[_kernels.G_MX],
        g[_kernels.G_MY],
    )
    rs, zrs, perm, inv_perm = (
        g[_kernels.G_RING_START],
        g[_kernels.G_ZONE_RING_START],
        g[_kernels.G_PERM],
        g[_kernels.G_INV_PERM],
    )
    # the service area's own grid (tiles of the city outline)
    s_levels, s_lmr, s_inv, s_table, s_shift = (
        sg[_kernels.G_LEVELS],
        sg[_kernels.G_LEVEL_MIN_RANK],
        sg[_kernels.G_INV_SIZE],
        sg[_kernels.G_TABLE],
        sg[_kernels.G_SHIFT],
    )
    s_erank, s_ebox, s_ezone = (
        sg[_kernels.G_ENTRY_RANK],
        sg[_kernels.G_ENTRY_BOX],
        sg[_kernels.G_ENTRY_ZONE],
    )
    s_vxy, s_rs, s_zrs = (
        sg[_kernels.G_VXY],
        sg[_kernels.G_RING_START],
        sg[_kernels.G_ZONE_RING_START],
    )
    bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, lists = bgrid
    sx0, sy0, sinv, snx, sny, sstate = smap
    cand_pos, cand_dist, qbox, memo, cbuf = work  # see _work_buffers
    for i in range(lon.shape[0]):
        s = sigma[i]
        acc68 = s * 1.5095921854516636
        memo[_MEMO, 0] = 0.0
        t = ended_at[i]
        # the covering zone (a parking box beats a no-parking area)
        loc = _kernels.locate_one(
            lon[i], lat[i], levels, lmr, inv_size, table, shift, erank, ebox, ezone,
            vxy, rs, zrs,
        )  # fmt: skip
        loc = perm[loc] if loc >= 0 else -1
        # fenced boxes close enough to matter, and the most probable one
        if bnx > 0:
            if not _list_nearest(
                x[i], y[i], 4, tol + 5.0 * s, fenced, active_from, active_to,
                np.nan, cand_pos, cand_dist, 0, memo,
                bx0, by0, bcell, bnx, bny, lists, gbox, gid, gv, mx, my, rs, zrs,
            ):  # fmt: skip
                _grid_nearest(
                    x[i], y[i], 4, tol + 5.0 * s, fenced, active_from,
                    active_to, np.nan, cand_pos, cand_dist, 0, cbuf, memo,
                    bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, mx, my, rs, zrs,
                )  # fmt: skip
        else:
            _kernels.nearest_one(
                lon[i], lat[i], x[i], y[i], 4, tol + 5.0 * s, fenced, active_from, active_to,
                np.nan, cand_pos, cand_dist, 0, qbox,
                levels, inv_size, lzs, lz, table, shift, ebox, ezone, bbox, mbox, mx, my, rs,
                zrs, perm,
            )  # fmt: skip
        # the most probable fenced box (any), and the most probable one where this
        # check may settle (active at ended_at, open to the operator, heading fits)
        best = -1
        best_p = 0.0
        best_forbid = 0
        ok = -1
        ok_p = 0.0
        ok_dist = np.inf
        for c in range(4):
            z = cand_pos[0, c]
            if z < 0:
                break
            forbid = _forbidden(
                t, heading[i], active_from[z], active_to[z], open_any[z], zheading[z], heading_tol
            )
            if forbid == 0:
                ok_dist = min(ok_dist, cand_dist[0, c])
            # a box this far cannot beat the best so far: skip its exact p (an upper
            # bound from its distance; the search returns the nearest box first)
            bar = ok_p if forbid == 0 else best_p
            if bar > _P_SLACK and beacon_zone[i] != z:
                if rect[z, 0] == rect[z, 0]:
                    # the widened rectangle is convex: p <= P(beyond a half-plane)
                    gap = cand_dist[0, c] - tol - _RECT_SLACK_M
                    cap = 0.5 * math.erfc(gap * 0.7071067811865476 / s) if gap > 0.0 else 1.0
                else:
                    # any shape within mitre_limit * tol of the box: P(|error| > gap)
                    gap = cand_dist[0, c] - _MITRE_LIMIT * tol
                    cap = math.exp(-0.5 * (gap / s) ** 2) if gap > 0.0 else 1.0
                if cap + _P_SLACK < bar:
                    continue
            if rect[z, 0] == rect[z, 0]:
                p = _rect_p(x[i], y[i], s, rect, z, tol)
            else:
                q = poly_of[z]
                dx = x[i] - pframe[q, 0]
                dy = y[i] - pframe[q, 1]
                cs = pframe[q, 2]
                sn = pframe[q, 3]
                p = _poly_p(q, dx * cs - dy * sn, dx * sn + dy * cs, s, pvx, pvy, pring, pzone)
            if beacon_zone[i] == z and bz_hit(
                z, z, x[i], y[i], near_radius, inv_perm, mx, my, rs, zrs
            ):
                p = max(p, beacon_p)
            if p > best_p:
                best_p = p
                best = z
                best_forbid = forbid
            if forbid == 0 and p > ok_p:
                ok_p = p
                ok = z
        beacon = False
        bz = beacon_zone[i]
        if bz >= 0 and bz_hit(bz, bz, x[i], y[i], near_radius, inv_perm, mx, my, rs, zrs):
            # a stud heard loud is strong evidence for its box, even out of GPS reach
            beacon = True
            forbid = _forbidden(
                t, heading[i], active_from[bz], active_to[bz], open_any[bz], zheading[bz],
                heading_tol,
            )  # fmt: skip
            pb = max(beacon_p, best_p if best == bz else 0.0)
            if pb >= best_p:
                best, best_p, best_forbid = bz, pb, forbid
            if forbid == 0 and pb >= ok_p:
                ok, ok_p, ok_dist = bz, pb, 0.0
        zone = ok if ok >= 0 and ok_p >= best_p else (best if best >= 0 else loc)
        dist = np.nan
        if zone >= 0:
            dist = np.nan
            for j in range(np.int64(memo[_MEMO, 0])):  # met in the search: the same
                if memo[j, 0] == zone:
                    dist = memo[j, 1]
            if dist != dist:
                dist, _, _ = _zone_closest(inv_perm[zone], x[i], y[i], mx, my, rs, zrs)
        reasons = 0
        if beacon:
            reasons |= R_BEACON
        if loc >= 0 and kind[loc] == KIND_NO_PARKING:
            reasons |= R_NO_PARKING
        in_service = True
        if has_service:
            # the service map's cell, then the exact test for fixes on its edge cells
            sa = (lon[i] - sx0) * sinv
            sb = (lat[i] - sy0) * sinv
            state = _SVC_OUT  # off the map, or not finite: outside (as locate_one)
            if 0.0 <= sa < snx and 0.0 <= sb < sny:
                ia = np.int64(sa)
                ib = np.int64(sb)
                fa = sa - ia
                fb = sb - ib
                state = _SVC_EDGE  # near a cell's side
                if _SERVICE_EDGE_FRAC <= fa <= 1.0 - _SERVICE_EDGE_FRAC:
                    if _SERVICE_EDGE_FRAC <= fb <= 1.0 - _SERVICE_EDGE_FRAC:
                        state = sstate[ib * snx + ia]
            if state == _SVC_EDGE:
                in_service = (
                    _kernels.locate_one(
                        lon[i], lat[i], s_levels, s_lmr, s_inv, s_table, s_shift, s_erank,
                        s_ebox, s_ezone, s_vxy, s_rs, s_zrs,
                    )
                    >= 0
                )  # fmt: skip
            else:
                in_service = state == _SVC_IN
        if not in_service:
            outcome = REJECT
            reasons |= R_SERVICE
        elif stale[i]:
            outcome = REVIEW
            reasons |= R_STALE
        elif ok_p >= settle_p and (acc68 <= max_acc or beacon):
            outcome = SETTLE
            reasons |= R_INSIDE_FENCED
            if dist == dist and dist > -acc68:
                reasons |= R_NEAR_EDGE
        elif best_p >= settle_p and best_forbid != 0 and (acc68 <= max_acc or beacon):
            # confidently in a box where this trip may not settle
            outcome = REJECT
            reasons |= best_forbid
        elif ok_p <= reject_p and not (ok_dist <= tol + 2.0 * s):
            # no box where it may settle within two sigmas: the evidence is clear
            outcome = REJECT
            if best_forbid != 0 and best_p > reject_p:
                reasons |= best_forbid
            elif loc >= 0 and kind[loc] == KIND_PARKING and not fenced[loc]:
                reasons |= R_INSIDE_UNFENCED
            elif not (loc >= 0 and kind[loc] == KIND_NO_PARKING):
                reasons |= R_OUTSIDE_ALL
        else:
            outcome = REVIEW
            # is the fix too coarse for the box itself (even at its centre p < settle)?
            coarse = acc68 > max_acc
            if not coarse and ok >= 0 and rect[ok, 0] == rect[ok, 0]:
                coarse = _rect_p(rect[ok, 0], rect[ok, 1], s, rect, ok, tol) < settle_p
            reasons |= R_ACCURACY if coarse else R_NEAR_EDGE
        out_outcome[i] = outcome
        out_reasons[i] = reasons
        out_zone[i] = zone
        out_p[i] = best_p
        out_dist[i] = dist
        # where the rider could park instead (not needed once settled): fenced boxes
        # open to the operator and active
        for c in range(k_near):
            near_pos[i, c] = -1
            near_dist[i, c] = np.inf
            near_bearing[i, c] = 0.0  # an offset (0, 1) where no box: see _true_bearings
            near_dy[i, c] = 1.0
        if k_near == 0 or outcome == SETTLE:
            continue
        if bnx > 0:
            if k_near > _LIST_K or not _list_nearest(
                x[i], y[i], k_near, near_radius, open_fenced, active_from,
                active_to, t, near_pos, near_dist, i, memo,
                bx0, by0, bcell, bnx, bny, lists, gbox, gid, gv, mx, my, rs, zrs,
            ):  # fmt: skip
                _grid_nearest(
                    x[i], y[i], k_near, near_radius, open_fenced,
                    active_from, active_to, t, near_pos, near_dist, i, cbuf, memo,
                    bx0, by0, bcell, bnx, bny, bstart, gbox, gid, gv, mx, my, rs, zrs,
                )  # fmt: skip
        else:
            _kernels.nearest_one(
                lon[i], lat[i], x[i], y[i], k_near, near_radius, open_fenced, active_from,
                active_to, t, near_pos, near_dist, i, qbox,
                levels, inv_size, lzs, lz, table, shift, ebox, ezone, bbox, mbox, mx, my, rs,
                zrs, perm,
            )  # fmt: skip
        if near_pos[i, 0] < 0:
            continue  # no box near (the row fills from the front)
        # the offsets to each box's closest point, turned into bearings afterwards for
        # the whole batch at once (see _true_bearings)
        for c in range(k_near):
            z = near_pos[i, c]
            if z >= 0:
                j = 0
                while j < np.int64(memo[_MEMO, 0]) and memo[j, 0] != z:
                    j += 1
                if j < np.int64(memo[_MEMO, 0]):  # met in the search: the same point
                    bx = memo[j, 2]
                    by = memo[j, 3]
                else:
                    _, bx, by = _zone_closest(inv_perm[z], x[i], y[i], mx, my, rs, zrs)
                near_bearing[i, c] = bx - x[i]
                near_dy[i, c] = by - y[i]


_SPATIAL_ORDER_MIN = 64  # smaller batches are decided in their own order
_MORTON_CELL_M = 64.0


@_jit_inline
def _spread_bits(v):
    """The low 31 bits of ``v`` moved to the even bit positions (bit k to bit 2k)."""
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


@_jit
def _morton_keys(x, y, cell, out):
    """Z-order keys of points on a grid of ``cell`` metres (non-finite points last).

    Cell columns and rows are clipped to 31 bits; a non-finite point's key is one
    more than the largest finite key (so that the radix sort has few digits).
    """
    x0 = np.inf
    y0 = np.inf
    for i in range(x.shape[0]):
        if math.isfinite(x[i]) and math.isfinite(y[i]):
            x0 = min(x0, x[i])
            y0 = min(y0, y[i])
    kmax = np.int64(-1)
    for i in range(x.shape[0]):
        if not (math.isfinite(x[i]) and math.isfinite(y[i])):
            out[i] = -1
            continue
        a = np.int64(min((x[i] - x0) / cell, 2147483647.0))
        b = np.int64(min((y[i] - y0) / cell, 2147483647.0))
        key = _spread_bits(a) | (_spread_bits(b) << 1)
        out[i] = key
        kmax = max(kmax, key)
    for i in range(x.shape[0]):
        if out[i] < 0:
            out[i] = kmax + 1


@_jit
def _radix_order(keys):
    """The stable ascending order of non-negative ``keys`` (``np.argsort(keys,
    kind="stable")``): a least-significant-digit radix sort, 11 bits a pass.

    ~5x faster than NumPy's argsort here: city-wide keys have ~20 bits, two passes.
    """
    n = keys.shape[0]
    kmax = np.int64(0)
    for i in range(n):
        kmax = max(kmax, keys[i])
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    count = np.empty(2049, np.int64)
    shift = 0
    while shift == 0 or (shift < 63 and (kmax >> shift) > 0):
        count[:] = 0
        for i in range(n):
            count[((keys[order[i]] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            count[d + 1] += count[d]
        for i in range(n):
            o = order[i]
            d = (keys[o] >> shift) & 2047
            tmp[count[d]] = o
            count[d] += 1
        order, tmp = tmp, order
        shift += 11
    return order


def _spatial_order(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The order in which the batch kernel decides the checks: along a Z-order curve.

    Each check's decision depends on that check alone; the order only decides what
    is still in the CPU cache: the zones near the previous check (random trips
    across a city miss it on nearly every zone read) and, once the inputs are
    gathered in that order, the inputs and outputs themselves (measured: visiting in
    this order ~1.3x, gathering as well ~1.25x more). None for small batches.
    """
    n = x.shape[0]
    if n < _SPATIAL_ORDER_MIN:
        return None
    keys = np.empty(n, np.int64)
    _morton_keys(x, y, _MORTON_CELL_M, keys)
    return _radix_order(keys)


# How many checks ahead the permutations below prefetch the rows they will touch: the
# checks' rows in Z-order are scattered over arrays of several MB, nearly every access
# a cache miss (16 and 32 measured alike, 8 less).
_PERMUTE_AHEAD = 16


@_jit
def _gather_inputs(order, fused, x, y, ended_at, heading, beacon, ins):
    """The kernel's inputs in ``order``: ``ins`` = (lon, lat, x, y, sigma, stale,
    ended_at, heading, beacon zone), ``fused`` as :func:`_fuse` wrote it."""
    lon_o, lat_o, x_o, y_o, s_o, stale_o, t_o, h_o, b_o = ins
    n = order.shape[0]
    for j in range(n):
        if j + _PERMUTE_AHEAD < n:  # measured: ~10 ns a check less (of ~33)
            a = order[j + _PERMUTE_AHEAD]
            _kernels._prefetch(fused, a * fused.shape[1])
            _kernels._prefetch(x, a)
            _kernels._prefetch(y, a)
            _kernels._prefetch(ended_at, a)
            _kernels._prefetch(heading, a)
            _kernels._prefetch(beacon, a)
        i = order[j]
        lon_o[j] = fused[i, 0]
        lat_o[j] = fused[i, 1]
        s_o[j] = fused[i, 2]
        stale_o[j] = fused[i, 3] > 0
        x_o[j] = x[i]
        y_o[j] = y[i]
        t_o[j] = ended_at[i]
        h_o[j] = heading[i]
        b_o[j] = beacon[i]


@_jit_inline
def _scatter(order, src, dst):
    """``dst[order] = src``."""
    n = order.shape[0]
    for j in range(n):
        if j + _PERMUTE_AHEAD < n:
            _kernels._prefetch(dst, order[j + _PERMUTE_AHEAD])
        dst[order[j]] = src[j]


@_jit_inline
def _scatter_rows(order, src, dst):
    """``dst[order] = src`` for 2-D (C-ordered) ``src`` and ``dst``."""
    n = order.shape[0]
    k = src.shape[1]
    for j in range(n):
        if j + _PERMUTE_AHEAD < n:
            _kernels._prefetch(dst, order[j + _PERMUTE_AHEAD] * k)
        i = order[j]
        for c in range(k):
            dst[i, c] = src[j, c]


@_jit
def _scatter_outputs(order, src, dst):
    """``dst[k][order] = src[k]`` for the kernel's eight outputs, one output at a time.

    One pass per output: a pass over all eight wrote to ~15 MB of rows in random
    order, more pages than the TLB holds (measured: 54 ns a check, 29 one output at a
    time, 25 with the prefetch).
    """
    s0, s1, s2, s3, s4, s5, s6, s7 = src
    d0, d1, d2, d3, d4, d5, d6, d7 = dst
    _scatter(order, s0, d0)
    _scatter(order, s1, d1)
    _scatter(order, s2, d2)
    _scatter(order, s3, d3)
    _scatter(order, s4, d4)
    _scatter_rows(order, s5, d5)
    _scatter_rows(order, s6, d6)
    _scatter_rows(order, s7, d7)


_RAD = math.pi / 180.0
_DEG = 180.0 / math.pi


def _true_bearings(
    lon: np.ndarray, lat: np.ndarray, dx: np.ndarray, dy: np.ndarray, pos: np.ndarray
) -> None:
    """Offsets to bearings, in place: ``dx[i, c]`` becomes the true bearing of the
    offset ``(dx, dy)`` (grid metres east and north) from the check at ``lon[i],
    lat[i]``, degrees clockwise from north in [0, 360); NaN where ``pos < 0``.

    The grid bearing plus the meridian convergence of EPSG:4547 (CM 114E),
    ``atan(tan(lon - 114) sin(lat))``, for the whole batch with numpy's vectorized
    ``arctan2``, ``tan`` and ``arctan``: ~20 ns a check instead of ~110 for the same
    functions called one value at a time in the kernel (measured). ``arctan2`` is not
    vectorized for NaN, hence the kernel's (0, 1) in empty places.
    :func:`_true_bearings_one` is the same arithmetic for one check, and the same bits.
    """
    np.arctan2(dx, dy, out=dx)
    _finish_bearings(dx, _convergence(lon, lat), pos)


def _convergence(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """``atan(tan(lon - 114) sin(lat))`` in radians; ``sin`` as ``tan / sqrt(1 + tan**2)``
    (numpy's float64 ``tan`` is vectorized, its ``sin`` is not)."""
    t = np.tan(lat * _RAD)
    gamma = t * t
    gamma += 1.0
    np.sqrt(gamma, out=gamma)
    np.divide(t, gamma, out=gamma)
    gamma *= np.tan((lon - 114.0) * _RAD)
    np.arctan(gamma, out=gamma)
    return gamma


def _bearing_degrees(grid: float, gamma: float) -> float:
    """Grid bearing plus convergence (radians) in degrees, in [0, 360)."""
    b = (grid + gamma) * _DEG
    return (b + 360.0 if b < 0.0 else b) + 0.0  # + 0.0: -0.0 -> 0.0


_bearing_degrees_jit = _jit_inline(_bearing_degrees)


@_jit
def _finish_bearings(b, gamma, pos):
    for i in range(b.shape[0]):
        for c in range(b.shape[1]):
            b[i, c] = _bearing_degrees_jit(b[i, c], gamma[i]) if pos[i, c] >= 0 else np.nan


def _convergence_one(lon: float, lat: float) -> float:
    """:func:`_convergence` of one point (numpy's functions on floats: the same bits)."""
    t = float(np.tan(lat * _RAD))
    sin_lat = t / math.sqrt(t * t + 1.0)
    return float(np.arctan(sin_lat * float(np.tan((lon - 114.0) * _RAD))))


def _true_bearings_one(lon: float, lat: float, dx: np.ndarray, dy: np.ndarray) -> list[float]:
    """:func:`_true_bearings` of one check's row of offsets, every place of it (the
    same numpy functions, on floats and one row: the same bits)."""
    gamma = _convergence_one(lon, lat)
    return [_bearing_degrees(g, gamma) for g in np.arctan2(dx, dy).tolist()]


# --------------------------------------------------------------------------- entry points
def decide_arrays(index: ZoneIndex, batch: CheckBatch, policy: Policy, now: float) -> DecisionBatch:
    """Decide a batch of checks given as arrays; the compiled path behind every decision.

    Raises :class:`CheckError` when a check's trail spreads over more than
    ``policy.max_trail_spread_m`` (its ``check_index`` is the check's number).
    """
    n = len(batch)
    t = _tables(index, policy.tolerance_m)
    fused = np.empty((n, 5))
    _fuse(
        batch.lon,
        batch.lat,
        batch.accuracy_m,
        batch.at,
        batch.n_fixes,
        batch.ended_at,
        policy.default_accuracy_m,
        policy.max_fix_age_s,
        policy.max_clock_skew_s,
        policy.outlier_chi2,
        policy.fix_correlation,
        fused,
        _fuse_work(batch.lon.shape[1]),
    )
    too_wide = np.flatnonzero(fused[:, 4] > policy.max_trail_spread_m)
    if len(too_wide):
        i = int(too_wide[0])
        raise CheckError(
            f"fixes: the trail spreads over {fused[i, 4]:.0f} m "
            f"(at most {policy.max_trail_spread_m:.0f} m for a bike standing still)",
            field="fixes",
            rule="spread",
            check_index=i,
        )
    lon = np.ascontiguousarray(fused[:, 0])
    lat = np.ascontiguousarray(fused[:, 1])
    # one fix: the scalar path (Python floats) is ~12 us faster than a one-element array
    x, y = _crs.project(float(lon[0]), float(lat[0])) if n == 1 else _crs.project(lon, lat)
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(n)
    y = np.ascontiguousarray(y, dtype=np.float64).reshape(n)
    k = policy.k_nearest
    outcome = np.empty(n, np.int8)
    reasons = np.empty(n, np.int32)
    zone = np.empty(n, np.int64)
    p = np.empty(n)
    dist = np.empty(n)
    near_pos = np.empty((n, k), np.int64)
    near_dist = np.empty((n, k))
    near_bearing = np.empty((n, k))
    outs: tuple[np.ndarray, ...] = (
        outcome,
        reasons,
        zone,
        p,
        dist,
        near_pos,
        near_dist,
        near_bearing,
    )
    results = outs
    ins: tuple[np.ndarray, ...]
    order = _spatial_order(x, y)
    if order is None:
        ins = (
            lon,
            lat,
            x,
            y,
            np.ascontiguousarray(fused[:, 2]),
            fused[:, 3] > 0,
            batch.ended_at,
            batch.heading_deg,
            batch.beacon_zone,
        )
    else:  # the kernel reads and writes the checks in that order
        kinds: tuple[Any, ...] = (np.float64,) * 5 + (np.bool_,)
        kinds += (batch.ended_at.dtype, batch.heading_deg.dtype, batch.beacon_zone.dtype)
        ins = tuple(np.empty(n, k) for k in kinds)
        _gather_inputs(
            order, fused, x, y, batch.ended_at, batch.heading_deg, batch.beacon_zone, ins
        )
        outs = tuple(np.empty_like(a) for a in outs)
    head, tail = _static_args(index, t, policy, batch.operator)
    near_dy = np.empty((n, k))
    _decide(index._gtuple, *ins[:6], *head, *ins[6:], *tail, *outs, near_dy, _work_buffers())
    if k:
        _true_bearings(ins[0], ins[1], outs[7], near_dy, outs[5])
    if order is not None:
        _scatter_outputs(order, outs, results)
    return DecisionBatch(
        index=index,
        policy=policy,
        now=now,
        outcome=outcome,
        reasons=reasons,
        zone=zone,
        p_inside=np.clip(p, 0.0, 1.0),
        distance_m=dist,
        nearest_pos=near_pos,
        nearest_dist=near_dist,
        nearest_bearing=near_bearing,
        lon=lon,
        lat=lat,
        accuracy_m=fused[:, 2] * SIGMA_PER_R68,
    )


def decide_many(
    index: ZoneIndex,
    checks: Sequence[Check],
    policy: Policy,
    now: float,
    check_ids: Sequence[str | None] | None = None,
) -> list[Decision]:
    """Decide many checks at once (grouped by operator, compiled inside).

    Equal, check by check, to :func:`decide`.
    """
    if check_ids is not None and len(check_ids) != len(checks):
        raise ValueError(f"{len(check_ids)} check ids for {len(checks)} checks")
    out: list[Decision | None] = [None] * len(checks)
    groups: dict[str | None, list[int]] = {}
    for i, c in enumerate(checks):
        groups.setdefault(c.operator, []).append(i)
    for operator, members in groups.items():
        batch = CheckBatch.from_checks(index, [checks[i] for i in members], policy, operator)
        try:
            decided = decide_arrays(index, batch, policy, now)
        except CheckError as exc:  # number the check in the caller's list
            if exc.check_index is not None:
                exc.check_index = members[exc.check_index]
            raise
        for j, i in enumerate(members):
            out[i] = decided.decision(j, None if check_ids is None else check_ids[i])
    return [d for d in out if d is not None]


def decide(
    index: ZoneIndex, check: Check, policy: Policy, now: float, check_id: str | None = None
) -> Decision:
    """Decide one trip-end check: ``settle``, ``reject`` or ``review``, with reasons.

    A pure function of its arguments; ``now`` is recorded as ``decided_at`` and
    nothing else depends on it (activity and staleness are judged at
    ``check.ended_at``).

    Raises :class:`CheckError` for evidence that cannot be decided (a trail spread
    over more than ``policy.max_trail_spread_m``); malformed checks are refused
    when the :class:`Check` is built.

    Examples
    --------
    >>> from geofence import ZoneSet, ZoneIndex
    >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
    ...   "id": "A", "properties": {"kind": "parking", "fenced": True},
    ...   "geometry": {"type": "Polygon", "coordinates": [[[113.55, 22.25],
    ...     [113.55008, 22.25], [113.55008, 22.25002], [113.55, 22.25002], [113.55, 22.25]]]}}]}
    >>> ix = ZoneIndex(ZoneSet.from_geojson(fc))
    >>> check = Check(fixes=(Fix(113.55004, 22.25001, accuracy_m=0.5),), ended_at=1.8e9)
    >>> d = decide(ix, check, Policy(), now=1.8e9)
    >>> d.outcome, d.zone["id"], d.reasons
    ('settle', 'A', ('inside_fenced_box',))
    >>> far = Check(fixes=(Fix(113.5505, 22.25, accuracy_m=3),), ended_at=1.8e9)
    >>> d = decide(ix, far, Policy(), now=1.8e9)
    >>> d.outcome, d.reasons, d.nearest[0]["zone_id"], round(d.nearest[0]["bearing_deg"])
    ('reject', ('outside_all_boxes',), 'A', 270)
    """
    t = _tables(index, policy.tolerance_m)
    fixes = check.fixes
    m = len(fixes)
    nan = math.nan
    # lon, lat, accuracy and time of each fix, then ended_at and heading: one array
    block = np.array(
        [f.lon for f in fixes]
        + [f.lat for f in fixes]
        + [nan if f.accuracy_m is None else f.accuracy_m for f in fixes]
        + [nan if f.at is None else f.at for f in fixes]
        + [check.ended_at, nan if check.heading_deg is None else check.heading_deg],
        np.float64,
    )
    lon = block[0:m].reshape(1, m)
    lat = block[m : 2 * m].reshape(1, m)
    foreign = [j for j, f in enumerate(fixes) if f.crs not in ("wgs84", "cgcs2000")]
    if foreign:  # as CheckBatch.from_checks does it: one conversion per CRS
        crs_of: dict[str, list[int]] = {}
        for j in foreign:
            crs_of.setdefault(fixes[j].crs, []).append(j)
        for name, jj in crs_of.items():
            lon[0, jj], lat[0, jj] = _crs.to_wgs84(lon[0, jj], lat[0, jj], name)
    bz = -1
    if check.beacons:
        stud = t.beacon_position
        heard = [b for b in check.beacons if b.rssi >= policy.beacon_rssi_dbm and b.id in stud]
        if heard:
            bz = stud[max(heard, key=lambda b: (b.rssi, b.id)).id]
    ints = np.array([m, bz], np.int64)
    ended_at = block[4 * m : 4 * m + 1]
    fused = np.empty((1, 5))
    _fuse(
        lon,
        lat,
        block[2 * m : 3 * m].reshape(1, m),
        block[3 * m : 4 * m].reshape(1, m),
        ints[0:1],
        ended_at,
        policy.default_accuracy_m,
        policy.max_fix_age_s,
        policy.max_clock_skew_s,
        policy.outlier_chi2,
        policy.fix_correlation,
        fused,
        _single_fuse_work(m),
    )
    f_lon, f_lat, f_sigma, _, f_spread = fused[0].tolist()
    if f_spread > policy.max_trail_spread_m:
        raise CheckError(
            f"fixes: the trail spreads over {f_spread:.0f} m "
            f"(at most {policy.max_trail_spread_m:.0f} m for a bike standing still)",
            field="fixes",
            rule="spread",
            check_index=0,
        )
    x, y = _crs.project(f_lon, f_lat)
    key = (policy.id, check.operator)
    static = t.single_args.get(key)
    if static is None:
        static = t.single_args[key] = _static_args(index, t, policy, check.operator)
    head, tail = static
    k = policy.k_nearest
    out = _single_buffers(k)
    _decide(
        index._gtuple,
        fused[0:1, 0],
        fused[0:1, 1],
        np.ascontiguousarray(x, dtype=np.float64).reshape(1),
        np.ascontiguousarray(y, dtype=np.float64).reshape(1),
        fused[0:1, 2],
        fused[0:1, 3] > 0,
        *head,
        ended_at,
        block[4 * m + 1 : 4 * m + 2],
        ints[1:2],
        *tail,
        *out,
        _single_work(),
    )
    outcome, reasons, zone, p, dist, near_pos, near_dist, near_bearing, near_dy = out
    nearest: tuple[dict[str, Any], ...] = ()
    if k and near_pos[0, 0] >= 0:
        bearings = _true_bearings_one(f_lon, f_lat, near_bearing[0], near_dy[0])
        nearest = tuple(
            {"zone_id": t.ids[q], "distance_m": round(dq, 2), "bearing_deg": round(b, 1)}
            for q, dq, b in zip(near_pos[0].tolist(), near_dist[0].tolist(), bearings, strict=True)
            if q >= 0
        )
    zs = index.zone_set
    z = int(zone[0])
    d = float(dist[0])
    p_in = min(max(float(p[0]), 0.0), 1.0)  # np.clip, as decide_arrays
    decision = object.__new__(Decision)  # the fields as the dataclass would set them
    decision.__dict__.update(
        outcome=OUTCOMES[int(outcome[0])],
        zone=None if z < 0 else dict(_zone_info(index, t, z)),
        p_inside=round(p_in, 4),
        distance_m=None if math.isnan(d) else round(d, 2),
        nearest=nearest,
        reasons=_reason_names(int(reasons[0])),
        zone_set_version=zs.version,
        policy=policy.id,
        check_id=check_id,
        decided_at=now,
        position={
            "lon": round(f_lon, 7),
            "lat": round(f_lat, 7),
            "accuracy_m": round(f_sigma * SIGMA_PER_R68, 2),
        },
    )
    return decision


def _work_buffers() -> tuple[np.ndarray, ...]:
    """The work arrays of one :func:`_decide` call: the candidate boxes (positions,
    distances), a query box, the check's memo of box distances and a cell's candidates
    (see :func:`_grid_nearest`)."""
    return (
        np.empty((1, _CANDIDATES), np.int64),
        np.empty((1, _CANDIDATES)),
        np.empty(4),
        np.empty((_MEMO + 1, 4)),
        np.empty((_CELL_BUF, 2)),
    )


_SINGLE = threading.local()  # per-thread output and work buffers of the single-check path


def _single_fuse_work(m: int) -> tuple[np.ndarray, ...]:
    work = getattr(_SINGLE, "fuse_work", None)
    if work is None or work[0].shape[0] < m:
        work = _SINGLE.fuse_work = _fuse_work(max(m, 16))
    return work


def _single_work() -> tuple[np.ndarray, ...]:
    work = getattr(_SINGLE, "work", None)
    if work is None:
        work = _SINGLE.work = _work_buffers()
    return work


def _single_buffers(k: int) -> tuple[np.ndarray, ...]:
    bufs = getattr(_SINGLE, "bufs", None)
    if bufs is None:
        bufs = _SINGLE.bufs = {}
    out = bufs.get(k)
    if out is None:
        out = bufs[k] = (
            np.empty(1, np.int8),
            np.empty(1, np.int32),
            np.empty(1, np.int64),
            np.empty(1),
            np.empty(1),
            np.empty((1, k), np.int64),
            np.empty((1, k)),
            np.empty((1, k)),
            np.empty((1, k)),  # the offsets' dy (see _true_bearings)
        )
    return out


def _static_args(
    index: ZoneIndex, t: _Tables, policy: Policy, operator: str | None
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The arguments of :func:`_decide` that depend on (index, policy, operator) only."""
    zs = index.zone_set
    service = index.service_index
    open_any, open_fenced = _open_masks(index, t, operator)
    head = (
        (index._gtuple, False, _NO_SERVICE_MAP)
        if service is None
        else (service._gtuple, True, _service_map(service))
    )
    tail = (
        zs.kind,
        zs.heading_deg,
        zs.active_from,
        zs.active_to,
        t.fenced,
        open_fenced,
        open_any,
        t.rect,
        t.poly_of,
        t.pframe,
        t.pvx,
        t.pvy,
        t.pring_start,
        t.pzone_ring_start,
        policy.tolerance_m,
        policy.settle_p,
        policy.reject_p,
        policy.max_accuracy_m,
        policy.heading_tolerance_deg,
        policy.beacon_p,
        policy.k_nearest,
        policy.nearest_radius_m,
        t.box_grid,
    )
    return head, tail


def _zone_info(index: ZoneIndex, t: _Tables, z: int) -> Mapping[str, Any]:
    """The ``zone`` mapping of a decision matched to position z (cached; copy it)."""
    info = t.zone_info.get(z)
    if info is None:
        zs = index.zone_set
        info = t.zone_info[z] = {
            "id": str(zs.ids[z]),
            "kind": KIND_NAMES[int(zs.kind[z])],
            "fenced": bool(zs.fenced[z]),
            "district": str(zs.district[z]),
            "name": str(zs.name[z]),
        }
    return info
