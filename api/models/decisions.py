"""What a check answers and what the audit log keeps: :class:`Decision` (with its
outcome and reason vocabularies, asserted equal to the engine's), :class:`BatchResponse`,
:class:`CheckRecord` and the ``GET /v1/checks`` page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.models.requests import EXAMPLE_CHECK
from geofence.decisions.inputs import OUTCOMES, REASONS

EXAMPLE_DECISION: dict[str, Any] = {
    "outcome": "settle",
    "zone": {
        "id": "ZH-XZ-004211",
        "kind": "parking",
        "fenced": True,
        "district": "香洲区",
        "name": "拱北口岸广场 #3",
    },
    "p_inside": 0.97,
    "distance_m": -0.8,
    "nearest": [{"zone_id": "ZH-XZ-004211", "distance_m": 0.0, "bearing_deg": 0.0}],
    "reasons": ["inside_fenced_box"],
    "zone_set_version": 3,
    "policy": "pol-3f9a1c2e0b7d",
    "check_id": "c_01JDQ6V3M8T5W2ZK9Y4R7N0B1C",
    "decided_at": "2026-11-26T00:15:30.512345Z",
    "position": {"lon": 113.5714327, "lat": 22.2734871, "accuracy_m": 3.71},
    "policy_version": 2,
}


class ZoneRef(BaseModel):
    id: str
    kind: Literal["parking", "no_parking"]
    fenced: bool
    district: str
    name: str


class NearestZone(BaseModel):
    zone_id: str
    distance_m: float = Field(description="Metres to the box's nearest point")
    bearing_deg: float | None = Field(description="From the fix to that point, from true north")


#: a decision's outcome and reason codes (the engine's, spelled out for the schema)
Outcome = Literal["settle", "reject", "review"]
Reason = Literal[
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
]
assert Outcome.__args__ == OUTCOMES  # type: ignore[attr-defined]
assert Reason.__args__ == REASONS  # type: ignore[attr-defined]


class Position(BaseModel):
    """Where the engine put the bike: the fused position of the fixes, WGS-84."""

    lon: float
    lat: float
    accuracy_m: float = Field(description="68 % horizontal radius of the fused position, metres")


class Decision(BaseModel):
    """A settlement decision (DESIGN §3)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_DECISION]})

    outcome: Outcome
    zone: ZoneRef | None
    p_inside: float = Field(description="Probability that the bike is in a fenced box")
    distance_m: float | None = Field(
        description="Signed distance to the matched box's edge, negative inside"
    )
    nearest: list[NearestZone]
    reasons: list[Reason]
    zone_set_version: int | None
    policy: str = Field(description="The id of the policy that decided (a hash of its values)")
    check_id: str | None
    decided_at: datetime
    position: Position
    policy_version: int | None = Field(
        default=None,
        description="The stored policy version that decided (null on checks recorded before "
        "policies were versioned)",
    )


class BatchResponse(BaseModel):
    """The decisions, in the order of the request's checks."""

    results: list[Decision]


class CheckRecord(BaseModel):
    """An audit-log record: the request as received and the decision as answered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "check_id": EXAMPLE_DECISION["check_id"],
                    "operator": "hellobike",
                    "trip_id": EXAMPLE_CHECK["trip_id"],
                    "bike_id": EXAMPLE_CHECK["bike_id"],
                    "idempotency_key": "2f1d6c1e-trip-000042",
                    "batch_id": None,
                    "zone_set_version": 3,
                    "policy": EXAMPLE_DECISION["policy"],
                    "policy_version": 2,
                    "decided_at": EXAMPLE_DECISION["decided_at"],
                    "request": EXAMPLE_CHECK,
                    "decision": EXAMPLE_DECISION,
                }
            ]
        }
    )

    check_id: str
    operator: str
    trip_id: str
    bike_id: str
    idempotency_key: str | None
    batch_id: str | None
    zone_set_version: int | None
    policy: str
    policy_version: int | None
    decided_at: datetime
    request: dict[str, Any] = Field(description="The check as received (a CheckRequest)")
    decision: Decision


class CheckPage(BaseModel):
    """``GET /v1/checks``: recorded checks, newest first."""

    checks: list[CheckRecord]
    next: str | None = Field(description="The next page's relative URL, null on the last")
