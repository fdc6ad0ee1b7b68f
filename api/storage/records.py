"""The store's records: what a read returns, frozen, with the API's JSON shape.

:class:`ApiKey` (never the key itself), :class:`Idempotent` (what an idempotency key
recorded), :class:`ZoneSetInfo` and :class:`PolicyInfo` (a stored version without its
document), and the functions that build each from a row. Apart from the areas that
return them so that a caller (the web layer, the CLI) can name a record without the
area's queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from api import schema as t
from api.storage.engine import as_utc, rfc3339

__all__ = ["ROLES", "ApiKey", "Idempotent", "PolicyInfo", "Role", "ZoneSetInfo"]

ROLES = ("admin", "operator")
Role = Literal["admin", "operator"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key's record (never the key itself)."""

    id: str
    role: Role
    operator: str | None
    created_at: datetime
    revoked_at: datetime | None
    key_hash: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "operator": self.operator,
            "created_at": rfc3339(self.created_at),
            "revoked_at": rfc3339(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class Idempotent:
    """What an idempotency key recorded: a single check (``batch_id`` None) or a batch's
    checks in request order, as JSON texts (the bodies as received, the decisions as
    answered)."""

    batch_id: str | None
    bodies: list[str]
    decisions: list[str]

    def body_values(self) -> list[Any]:
        return [orjson.loads(b) for b in self.bodies]

    def decision_values(self) -> list[Any]:
        return [orjson.loads(d) for d in self.decisions]


def _key_from_row(r: Any) -> ApiKey:
    return ApiKey(
        id=r.id,
        role=r.role,
        operator=r.operator,
        created_at=as_utc(r.created_at),  # type: ignore[arg-type]
        revoked_at=as_utc(r.revoked_at),
        key_hash=r.key_hash,
    )


@dataclass(frozen=True, slots=True)
class ZoneSetInfo:
    """A stored zone-set version, without its features."""

    version: int
    prev_version: int | None
    created_at: datetime
    source: str
    checksum: str
    n_zones: int
    n_parking: int
    n_fenced: int
    n_no_parking: int
    active: bool
    report: Mapping[str, Any] | None = None

    def to_dict(self, *, with_report: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "prev_version": self.prev_version,
            "created_at": rfc3339(self.created_at),
            "source": self.source,
            "checksum": self.checksum,
            "n_zones": self.n_zones,
            "n_parking": self.n_parking,
            "n_fenced": self.n_fenced,
            "n_no_parking": self.n_no_parking,
            "active": self.active,
        }
        if with_report:
            d["report"] = self.report
        return d


_ZS_COLS = (
    t.zone_sets.c.version,
    t.zone_sets.c.prev_version,
    t.zone_sets.c.created_at,
    t.zone_sets.c.source,
    t.zone_sets.c.checksum,
    t.zone_sets.c.n_zones,
    t.zone_sets.c.n_parking,
    t.zone_sets.c.n_fenced,
    t.zone_sets.c.n_no_parking,
)


def _zs_from_row(r: Any, active: int | None, report: str | None = None) -> ZoneSetInfo:
    return ZoneSetInfo(
        version=r.version,
        prev_version=r.prev_version,
        created_at=as_utc(r.created_at),  # type: ignore[arg-type]
        source=r.source,
        checksum=r.checksum,
        n_zones=r.n_zones,
        n_parking=r.n_parking,
        n_fenced=r.n_fenced,
        n_no_parking=r.n_no_parking,
        active=r.version == active,
        report=orjson.loads(report) if report is not None else None,
    )


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """A stored policy version; ``params`` is ``Policy.to_mapping()`` (when read)."""

    version: int
    policy_id: str
    prev_version: int | None
    created_at: datetime
    source: str
    active: bool
    params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "id": self.policy_id,
            "prev_version": self.prev_version,
            "created_at": rfc3339(self.created_at),
            "source": self.source,
            "active": self.active,
        }
        if self.params is not None:
            d["policy"] = {"id": self.policy_id, **self.params}
        return d


def _policy_from_row(r: Any, active: int | None, params: str | None = None) -> PolicyInfo:
    return PolicyInfo(
        version=r.version,
        policy_id=r.policy_id,
        prev_version=r.prev_version,
        created_at=as_utc(r.created_at),  # type: ignore[arg-type]
        source=r.source,
        active=r.version == active,
        params=orjson.loads(params) if params is not None else None,
    )
