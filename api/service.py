"""Glue between the store and the engine: the active index and policy, seeding, ids,
audit rows.

The active zone set and the active policy live in one immutable :class:`Active` object
held by the app; activating a zone-set version builds a new one (off the event loop),
activating a policy version copies it with the other policy, and either swaps the
reference, so requests in flight finish on the index and policy they started with and
every decision names the policy version that made it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely

import geofence
from api.audit import COLUMNS
from api.storage import PolicyInfo, Store, ZoneSetInfo, china_day
from geofence import ZoneIndex, ZoneSet, zoneset
from geofence.calibration import Calibration, CalibrationRow
from geofence.rfc3339 import parse_rfc3339
from zones.districts import service_area

log = logging.getLogger("geofence.service")

__all__ = [
    "Active",
    "Districts",
    "audit_row",
    "audit_values",
    "build_active",
    "decided_now",
    "ended_at_utc",
    "load_policy",
    "load_zone_set",
    "new_id",
    "new_ids",
    "parse_time",
    "policy_errors",
    "policy_from",
    "policy_of_params",
    "policy_params",
    "seed",
    "seed_policy",
    "store_zone_set",
    "zone_counts",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# ids need uniqueness, not secrecy (access is checked by key, never by knowing an id):
# a PRNG seeded from the OS per process avoids a system call per id
_ID_RANDOM = random.Random(secrets.randbits(128))


#: every pair of Crockford digits (10 bits), and the shifts of the id's 13 pairs
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_PAIR_SHIFTS = tuple(range(120, -1, -10))


def new_id(prefix: str = "c_") -> str:
    """A time-ordered unique id: ``prefix`` + 26 Crockford base-32 characters (a ULID),
    written two digits at a time (half the steps of one at a time)."""
    n = (time.time_ns() // 1_000_000) << 80 | _ID_RANDOM.getrandbits(80)
    pairs = _PAIRS
    return prefix + "".join([pairs[n >> s & 1023] for s in _PAIR_SHIFTS])


_CROCKFORD_BYTES = np.frombuffer(_CROCKFORD.encode(), np.uint8)
_BIT_WEIGHTS = np.array([16, 8, 4, 2, 1], np.uint8)


def new_ids(n: int, prefix: str = "c_") -> list[str]:
    """``[new_id(prefix) for _ in range(n)]``, vectorized (one millisecond for all)."""
    if n <= 0:
        return []
    raw = np.empty((n, 16), np.uint8)
    ms = time.time_ns() // 1_000_000
    raw[:, :6] = np.frombuffer(ms.to_bytes(6, "big"), np.uint8)
    raw[:, 6:] = np.frombuffer(_ID_RANDOM.randbytes(10 * n), np.uint8).reshape(n, 10)
    bits = np.zeros((n, 130), np.uint8)  # 26 characters of 5 bits; the top 2 are 0
    bits[:, 2:] = np.unpackbits(raw, axis=1)
    chars = _CROCKFORD_BYTES[bits.reshape(n, 26, 5) @ _BIT_WEIGHTS]
    return [prefix + s for s in chars.view("S26").ravel().astype("U26").tolist()]


def decided_now() -> float:
    """The decision time, POSIX seconds rounded to the microsecond.

    Rounded so that the RFC 3339 ``decided_at`` recorded with a decision parses back
    to exactly the same float, which makes a replay bit-for-bit the same call.
    """
    return (time.time_ns() // 1000) / 1e6


def parse_time(value: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset) as an aware datetime whose UTC instant is in
    the years 0001-9999; ValueError otherwise (:func:`geofence.rfc3339.parse_rfc3339`)."""
    return parse_rfc3339(value)


# ---------------------------------------------------------------------------- policies
def policy_from(overrides: Mapping[str, Any] | None = None) -> Any:
    """``geofence.Policy`` of a policy document (``GEOFENCE_POLICY``, an upload): every
    field optional; :class:`geofence.PolicyError` names a bad one."""
    return geofence.Policy.from_mapping(dict(overrides or {}))


def policy_params(policy: Any) -> dict[str, Any]:
    """A policy's parameters as plain JSON-ready values (``Policy.to_mapping()``)."""
    return orjson.loads(orjson.dumps(policy.to_mapping()))


def policy_of_params(params: Mapping[str, Any]) -> Any:
    """The policy of stored parameters: ``Policy.to_mapping()``, or the rows of earlier
    releases (no ``calibration``, or the fields of ``dataclasses.asdict``, which wrote
    the table as ``{"rows": [...]}``)."""
    doc = dict(params)
    cal = doc.get("calibration")
    if isinstance(cal, Mapping) and set(cal) == {"rows"}:
        doc["calibration"] = cal["rows"]
    return geofence.Policy.from_mapping(doc)


def policy_errors(doc: Any) -> list[geofence.PolicyError]:
    """Every error of a policy document that can be told apart, not only the first
    (which is all :meth:`geofence.Policy.from_mapping` reports); [] for a valid one.

    Each field is tried alone over the defaults, then a field whose range check failed
    alone is tried beside the fields that passed (``reject_p`` and ``settle_p`` are
    judged together), and those together; each calibration row field by field, then
    the table (rows for the same key).
    """
    try:
        geofence.Policy.from_mapping(doc)
        return []
    except geofence.PolicyError as exc:
        first = exc
    if not isinstance(doc, Mapping):
        return [first]
    errs: list[geofence.PolicyError] = []
    good: dict[str, Any] = {}
    suspect: dict[str, Any] = {}
    for name, value in doc.items():
        found = _calibration_errors(value) if name == "calibration" else []
        if not found:
            try:
                geofence.Policy.from_mapping({name: value})
                good[name] = value
                continue
            except geofence.PolicyError as exc:
                if exc.rule == "range":
                    suspect[name] = value
                    continue
                found = [exc]
        errs += found
    for name, value in suspect.items():
        try:
            geofence.Policy.from_mapping(good | {name: value})
            good[name] = value
        except geofence.PolicyError as exc:
            errs.append(exc)
    try:
        geofence.Policy.from_mapping(good)
    except geofence.PolicyError as exc:
        errs.append(exc)
    unique = {(e.field, e.rule): e for e in reversed(errs)}
    return list(reversed(unique.values())) or [first]


def _calibration_errors(value: Any) -> list[geofence.PolicyError]:
    """The errors of a policy's ``calibration`` (see :func:`policy_errors`)."""
    try:
        Calibration.from_mapping(value)
        return []
    except geofence.PolicyError as exc:
        if not isinstance(value, list):
            return [exc]
        first = exc
    errs: list[geofence.PolicyError] = []
    for i, row in enumerate(value):
        where = f"calibration[{i}]"
        parts = [{k: v} for k, v in row.items()] if isinstance(row, Mapping) else [row]
        for part in parts:
            try:
                CalibrationRow.from_mapping(part, where)
            except geofence.PolicyError as exc:
                errs.append(exc)
    return errs or [first]


def seed_policy(store: Store, overrides: Mapping[str, Any] | None) -> PolicyInfo | None:
    """With no policy version stored yet, store the policy of ``overrides``
    (``GEOFENCE_POLICY``) as version 1 and activate it; None when one exists."""
    if store.has_policy_versions():
        return None
    policy = policy_from(overrides)
    return store.add_policy(
        policy_params(policy), policy.id, source="GEOFENCE_POLICY", activate=True, actor="seed"
    )


def load_policy(store: Store, version: int) -> Any:
    """The stored policy ``version``; ``KeyError`` when there is none."""
    info = store.policy_version(version)
    if info is None or info.params is None:
        raise KeyError(version)
    return policy_of_params(info.params)


# ---------------------------------------------------------------------------- zone sets
def zone_counts(zs: ZoneSet) -> dict[str, int]:
    parking = zs.kind == geofence.KIND_PARKING
    return {
        "n_zones": len(zs),
        "n_parking": int(parking.sum()),
        "n_fenced": int((zs.fenced & parking).sum()),
        "n_no_parking": int((zs.kind == geofence.KIND_NO_PARKING).sum()),
    }


def load_zone_set(store: Store, version: int) -> ZoneSet:
    """Build the stored zone set ``version`` (it carries ``version`` into decisions).

    From its snapshot when one is stored (a restart: ~0.1 s for Zhuhai's 18,300
    zones), else from its document (~1.3 s), storing the snapshot for the next time.
    A snapshot that cannot be read is ignored (and replaced): the document decides.
    """
    fmt = zoneset.SNAPSHOT_FORMAT
    try:
        data = store.zone_set_snapshot(version, fmt)
        if data is not None:
            return ZoneSet.from_snapshot(data, version=version)
    except Exception:
        log.exception("zone set %d: its snapshot could not be read; using the document", version)
    doc = store.zone_set_document(version)
    if doc is None:
        raise KeyError(version)
    zs = ZoneSet.from_geojson(orjson.loads(doc), version=version)
    save_snapshot(store, zs)
    return zs


def save_snapshot(store: Store, zs: ZoneSet) -> None:
    """Store ``zs``'s snapshot (best effort: a failure costs the next restart time only)."""
    assert zs.version is not None
    try:
        store.save_zone_set_snapshot(zs.version, zoneset.SNAPSHOT_FORMAT, zs.to_snapshot())
    except Exception:
        log.exception("zone set %d: could not store its snapshot", zs.version)


def store_zone_set(
    store: Store,
    document: bytes,
    *,
    source: str | None,
    activate: bool = False,
    actor: str | None = None,
    limits: Any = None,
) -> tuple[ZoneSetInfo | None, Any, ZoneSet | None]:
    """Validate and store a zone set: ``(info or None, report, zone set or None)``.

    Runs :func:`zones.validate.validate`; on errors nothing is stored and the info
    is None. ``source`` defaults to the file's ``zone_set.source`` metadata. The
    engine then builds the zone set (a last check, and the checksum).
    Raises :class:`geofence.ZoneDataError` if the engine refuses what the
    validator passed.
    """
    from zones.validate import load_geojson, validate

    report = validate(document, limits=limits)
    if not report.ok:
        return None, report, None
    fc = load_geojson(document)
    zs = ZoneSet.from_geojson(fc)
    if not source:
        meta = fc.get("zone_set")
        source = (meta.get("source") if isinstance(meta, Mapping) else None) or "upload"
    info = store.add_zone_set(
        orjson.dumps(fc),
        checksum=zs.checksum,
        counts=zone_counts(zs),
        report=report.to_dict(),
        source=source,
        activate=activate,
        actor=actor,
    )
    stored = dataclasses.replace(zs, version=info.version)
    save_snapshot(store, stored)
    return info, report, stored


def seed(store: Store, path: Path) -> tuple[ZoneSetInfo, ZoneSet] | None:
    """On an empty database, store ``path`` as version 1 and activate it.

    Returns ``(info, zone set)``, or None when the database already has zone sets.
    """
    if store.has_zone_sets():
        return None
    data = Path(path).read_bytes()
    info, report, zs = store_zone_set(
        store, data, source=f"seed: {os.path.basename(path)}", activate=True, actor="seed"
    )
    if info is None or zs is None:
        raise geofence.ZoneDataError(f"{path}: the seed zone set is invalid: {report.summary()}")
    return info, zs


# ---------------------------------------------------------------------------- the index
@dataclass(frozen=True, eq=False)
class Active:
    """The active zone set, its index and policy: swapped whole, never mutated."""

    index: ZoneIndex
    policy: Any
    bounds: np.ndarray  # (n, 4) lon/lat bounds per zone, for bbox queries
    build_seconds: float
    loaded_at: float
    policy_version: int | None = None  # the stored version of ``policy``

    def with_policy(self, policy: Any, version: int | None) -> Active:
        """The same index with another policy (a policy activation: nothing to build)."""
        return dataclasses.replace(self, policy=policy, policy_version=version)

    @property
    def zone_set(self) -> ZoneSet:
        return self.index.zone_set

    @property
    def version(self) -> int | None:
        return self.index.zone_set.version


def warm(index: ZoneIndex, policy: Any) -> None:
    """One locate, nearest and decide call (and one batch read) so the compiled kernels
    are loaded."""
    zs = index.zone_set
    if not len(zs):
        return
    c = shapely.centroid(zs.geometry[0])
    index.locate([c.x], [c.y])
    index.nearest([c.x], [c.y], k=3, max_distance_m=100.0)
    body = {
        "trip_id": "warm-up",
        "bike_id": "warm-up",
        "vehicle_type": "bike",
        "ended_at": datetime.now(UTC).isoformat(),
        "fixes": [{"lon": c.x, "lat": c.y, "accuracy_m": 5.0}],
    }
    check = geofence.Check.from_mapping(body, operator=None)
    now = time.time()
    geofence.decide(index, check, policy, now)
    geofence.decide_many(index, [check, check], policy, now)
    from api import columns

    columns.scan_batch(orjson.dumps({"checks": [body]}), None, 1)  # the batch reader
    from api import bounds

    raw = orjson.dumps({"checks": [body]})
    bounds.check(raw, bounds.Bounds(1, 1))  # the bounds walk and the as-received spans
    bounds.item_texts(raw, 1)


def make_index(zone_set: ZoneSet) -> ZoneIndex:
    """The index every decision uses: the zones, and Zhuhai's outline as the service area."""
    return ZoneIndex(zone_set, service_area=service_area())


def build_active(
    store: Store,
    version: int,
    policy: Any,
    *,
    policy_version: int | None = None,
    zone_set: ZoneSet | None = None,
) -> Active:
    """Load version ``version`` from the store, build its index and warm it (blocking);
    it decides with ``policy`` (stored as ``policy_version``)."""
    t0 = time.perf_counter()
    zs = zone_set if zone_set is not None else load_zone_set(store, version)
    index = make_index(zs)
    warm(index, policy)
    bounds = shapely.bounds(zs.geometry) if len(zs) else np.zeros((0, 4))
    return Active(
        index=index,
        policy=policy,
        bounds=bounds,
        build_seconds=time.perf_counter() - t0,
        loaded_at=time.time(),
        policy_version=policy_version,
    )


# ---------------------------------------------------------------------------- audit rows
_ENDED: dict[Any, datetime | None] = {}


def ended_at_utc(value: Any) -> datetime | None:
    """A body's ``ended_at`` in UTC, or None if it does not parse (cached: trip ends
    share few distinct times)."""
    try:
        return _ENDED[value]
    except KeyError:
        pass
    except TypeError:  # not hashable
        return None
    try:
        t: datetime | None = parse_time(value).astimezone(UTC)
    except (TypeError, ValueError):
        t = None
    if len(_ENDED) >= 4096:
        _ENDED.clear()
    _ENDED[value] = t
    return t


def audit_values(
    *,
    check_id: str,
    operator: str,
    body: Mapping[str, Any],
    body_json: str,
    decision: Mapping[str, Any],
    idempotency_key: str | None,
    batch_id: str | None = None,
    district: str | None = None,
    decided_at: datetime | None = None,
    decision_json: bytes | None = None,
    decided_day: str | None = None,
) -> tuple[Any, ...]:
    """The ``checks`` row of one decision as a tuple in :data:`api.audit.COLUMNS` order
    (what :meth:`api.audit.AuditWriter.write` takes); ``district`` labels a check matched
    to no zone.

    ``decided_at``: the decision's ``decided_at`` as a datetime, when the caller has it
    (a batch: one for all its rows), and ``decided_day`` its day; ``decision_json``: the
    decision already serialized (the response's bytes).
    """
    zone = decision.get("zone") or {}
    if decided_at is None:
        decided_at = parse_time(decision["decided_at"])
    decided_at = decided_at.astimezone(UTC)
    return (
        check_id,
        operator,
        body["trip_id"],
        body["bike_id"],
        idempotency_key,
        batch_id,
        body_json,
        (decision_json or orjson.dumps(decision, option=orjson.OPT_SERIALIZE_NUMPY)).decode(),
        decision["outcome"],
        zone.get("id"),
        zone.get("district") or district,
        decision.get("zone_set_version"),
        decision["policy"],
        ended_at_utc(body.get("ended_at")),
        decided_at,
        decided_day or china_day(decided_at),
        decision.get("policy_version"),
        body.get("device_class"),
    )


def audit_row(**kw: Any) -> dict[str, Any]:
    """The ``checks`` row of one decision by column name (see :func:`audit_values`)."""
    return dict(zip(COLUMNS, audit_values(**kw), strict=True))


# ---------------------------------------------------------------------------- districts
class Districts:
    """District names of positions off every box (for the stats of rejected checks)."""

    def __init__(self) -> None:
        from zones.districts import district_name, load_districts

        self._geoms = []
        for code, geom in load_districts().items():
            shapely.prepare(geom)
            self._geoms.append((district_name(code), geom))

    def of_fixes(self, fixes: list[Mapping[str, Any]]) -> str | None:
        """The district of a check's last fix (the lock position), or None outside."""
        last = fixes[-1]
        lon, lat = float(last["lon"]), float(last["lat"])
        crs = last.get("crs") or "wgs84"
        if crs not in ("wgs84", "cgcs2000"):
            a, b = geofence.crs.to_wgs84(np.array([lon]), np.array([lat]), crs)
            lon, lat = float(a[0]), float(b[0])
        return self.of_point(lon, lat)

    def of_point(self, lon: float, lat: float) -> str | None:
        """The district of one WGS-84 point, or None outside."""
        for name, geom in self._geoms:
            if shapely.contains_xy(geom, lon, lat):
                return name
        return None

    def of_points(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        """The district of each WGS-84 point, or None outside (vectorised)."""
        out: list[str | None] = [None] * len(lon)
        if not len(lon):
            return out
        left = np.ones(len(lon), bool)
        for name, geom in self._geoms:
            inside = np.flatnonzero(left & shapely.contains_xy(geom, lon, lat))
            for i in inside.tolist():
                out[i] = name
            left[inside] = False
        return out
