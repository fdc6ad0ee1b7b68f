"""Policy versions: the JSON Schema of a policy document (built from
:class:`geofence.Policy`'s own fields and defaults, so it cannot drift from them), a
stored version, the list and an activation's result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def policy_document_schema() -> dict[str, Any]:
    """JSON Schema of a policy document (``geofence.Policy.to_mapping()``, every field
    optional), from the policy's own fields and defaults."""
    import dataclasses

    import geofence
    from geofence.calibration import CalibrationRow

    def field_schema(f: Any, default: Any) -> dict[str, Any]:
        if isinstance(default, bool):
            return {"type": "boolean", "default": default}
        if isinstance(default, int) and f.name in ("k_nearest", "trips"):
            return {"type": "integer", "default": default}
        if isinstance(default, int | float):
            return {"type": "number", "default": default}
        return {"type": "string", "default": default}

    row = CalibrationRow()
    row_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            f.name: field_schema(f, getattr(row, f.name)) for f in dataclasses.fields(row)
        },
    }
    policy = geofence.Policy()
    props: dict[str, Any] = {}
    for f in dataclasses.fields(policy):
        if f.name == "calibration":
            props[f.name] = {
                "type": "array",
                "items": row_schema,
                "description": "Error-model rows per (operator, device_class, quality) "
                "over the defaults",
            }
        else:
            props[f.name] = field_schema(f, getattr(policy, f.name))
    return {
        "title": "PolicyDocument",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "examples": [{"settle_p": 0.75, "calibration": [{"device_class": "lock-bd-v3"}]}],
    }


EXAMPLE_POLICY = {
    "version": 2,
    "id": "pol-3f9a1c2e0b7d",
    "prev_version": 1,
    "created_at": "2026-11-26T02:00:00Z",
    "source": "calibrate 2026-11",
    "active": False,
}


class PolicyInfo(BaseModel):
    """A stored policy version (immutable); ``policy`` is its document and id."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_POLICY]})

    version: int
    id: str = Field(description="The policy id decisions record (a hash of its values)")
    prev_version: int | None = Field(description="The version active when this one was stored")
    created_at: datetime
    source: str
    active: bool
    policy: dict[str, Any] | None = Field(
        default=None, description="``{id, …Policy.to_mapping()}`` (not in the list)"
    )


class PolicyList(BaseModel):
    active: int | None
    policies: list[PolicyInfo]


class PolicyActivation(BaseModel):
    """The result of a policy activation (or rollback)."""

    active: int
    previous: int | None
    policy: PolicyInfo
