"""``geofence checks replay``: re-decide recorded checks, report what changes.

Each recorded check is decided again from its stored body (fix qualities and device
class included), with the policy it used (its parameters, ``Policy.to_mapping()``, are
stored by id; rows of earlier releases without a calibration table load with the
default one) and its own ``decided_at`` as ``now``, against either the zone-set
version it used (a determinism audit: nothing should change) or any other stored
version (what would change if the city activated that layout). The replayed decision
carries the recorded policy id and version: it was made with that policy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import geofence
from api.service import load_zone_set, make_index, parse_time, policy_of_params
from api.storage import Store

__all__ = ["Change", "ReplayReport", "differs", "replay"]


@dataclass(frozen=True, slots=True)
class Change:
    """One check whose decision differs on replay."""

    check_id: str
    operator: str
    trip_id: str
    decided_at: str
    old_version: int | None
    new_version: int | None
    old_outcome: str
    new_outcome: str
    old_zone: str | None
    new_zone: str | None
    old_reasons: tuple[str, ...]
    new_reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "operator": self.operator,
            "trip_id": self.trip_id,
            "decided_at": self.decided_at,
            "old": {
                "zone_set_version": self.old_version,
                "outcome": self.old_outcome,
                "zone": self.old_zone,
                "reasons": list(self.old_reasons),
            },
            "new": {
                "zone_set_version": self.new_version,
                "outcome": self.new_outcome,
                "zone": self.new_zone,
                "reasons": list(self.new_reasons),
            },
        }


@dataclass
class ReplayReport:
    """What a replay found."""

    since: str | None
    until: str | None
    version: int | None
    n_checks: int = 0
    changes: list[Change] = field(default_factory=list)
    transitions: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_changed(self) -> int:
        return len(self.changes)

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.changes if limit is None else self.changes[:limit]
        return {
            "since": self.since,
            "until": self.until,
            "against_version": self.version,
            "n_checks": self.n_checks,
            "n_changed": self.n_changed,
            "n_failed": len(self.failures),
            "transitions": dict(self.transitions),
            "changes": [c.to_dict() for c in shown],
            "failures": self.failures,
        }


def _zone_id(d: Mapping[str, Any]) -> str | None:
    z = d.get("zone")
    return None if not z else z.get("id")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9
    return a == b


def differs(old: Mapping[str, Any], new: Mapping[str, Any], *, ignore_version: bool) -> bool:
    """True when two decisions differ in substance (outcome, zone, reasons, numbers)."""
    keys = set(old) | set(new)
    keys -= {"decided_at", "check_id"}
    if ignore_version:
        keys.discard("zone_set_version")
    for k in keys:
        a, b = old.get(k), new.get(k)
        if k in ("p_inside", "distance_m"):
            if not _close(a, b):
                return True
        elif k == "nearest":
            a, b = a or [], b or []
            if len(a) != len(b) or any(
                x.get("zone_id") != y.get("zone_id")
                or not _close(x.get("distance_m"), y.get("distance_m"))
                for x, y in zip(a, b, strict=True)
            ):
                return True
        elif a != b:
            return True
    return False


def replay(
    store: Store,
    *,
    since: datetime | None,
    until: datetime | None = None,
    version: int | None = None,
    operator: str | None = None,
    progress: Callable[[int], None] | None = None,
    chunk: int = 5000,
) -> ReplayReport:
    """Re-decide the checks recorded in ``[since, until)``; see the module docstring."""
    report = ReplayReport(
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        version=version,
    )
    indexes: dict[int, geofence.ZoneIndex] = {}
    policies: dict[str, Any] = {}

    def index_of(v: int) -> geofence.ZoneIndex:
        if v not in indexes:
            indexes[v] = make_index(load_zone_set(store, v))
        return indexes[v]

    def policy_of(pid: str) -> Any:
        if pid not in policies:
            params = store.policy_params(pid)
            if params is None:
                raise LookupError(f"policy {pid} is not recorded")
            policies[pid] = policy_of_params(params)
        return policies[pid]

    if version is not None and store.zone_set(version) is None:
        raise KeyError(version)

    batch: list[dict[str, Any]] = []

    def flush() -> None:
        _replay_chunk(batch, version, index_of, policy_of, report)
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for rec in store.iter_checks(since=since, until=until, operator=operator):
        batch.append(rec)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return report


def _replay_chunk(
    records: Iterable[dict[str, Any]],
    version: int | None,
    index_of: Callable[[int], geofence.ZoneIndex],
    policy_of: Callable[[str], Any],
    report: ReplayReport,
) -> None:
    # checks decided together (a batch) share their `now`: decide them together
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for rec in records:
        report.n_checks += 1
        v = version if version is not None else rec["zone_set_version"]
        key = (v, rec["policy"], rec["decision"]["decided_at"])
        groups.setdefault(key, []).append(rec)
    for (v, pid, decided_at), recs in groups.items():
        try:
            index = index_of(v)
            policy = policy_of(pid)
            now = parse_time(decided_at).timestamp()
            checks = [
                geofence.Check.from_mapping(r["request"], operator=r["operator"]) for r in recs
            ]
            ids = [r["check_id"] for r in recs]
            if len(checks) == 1:
                new = [geofence.decide(index, checks[0], policy, now, check_id=ids[0])]
            else:
                new = geofence.decide_many(index, checks, policy, now, ids)
        except (geofence.GeofenceError, LookupError, KeyError, ValueError) as exc:
            for r in recs:
                report.failures.append({"check_id": r["check_id"], "error": str(exc)})
            continue
        for r, d in zip(recs, new, strict=True):
            old = r["decision"]
            # the recorded policy decided (its id differs only for parameters recorded
            # before policies carried their calibration table: the id hashes them all)
            nd = d.to_dict() | {"policy": pid, "policy_version": old.get("policy_version")}
            if not differs(old, nd, ignore_version=version is not None):
                continue
            report.transitions[f"{old['outcome']}→{nd['outcome']}"] += 1
            report.changes.append(
                Change(
                    check_id=r["check_id"],
                    operator=r["operator"],
                    trip_id=r["trip_id"],
                    decided_at=old["decided_at"],
                    old_version=old.get("zone_set_version"),
                    new_version=nd.get("zone_set_version"),
                    old_outcome=old["outcome"],
                    new_outcome=nd["outcome"],
                    old_zone=_zone_id(old),
                    new_zone=_zone_id(nd),
                    old_reasons=tuple(old.get("reasons", ())),
                    new_reasons=tuple(nd.get("reasons", ())),
                )
            )
