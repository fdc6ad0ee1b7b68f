"""Zone-set versions: a stored version, the active one, the 201 of an upload (with its
``zones.validate`` report), the list and its page, and an activation's result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_ZONE_SET = {
    "version": 3,
    "prev_version": 2,
    "created_at": "2026-11-26T02:00:00Z",
    "source": "zhuhai-2026-11.geojson",
    "checksum": "9b1f…",
    "n_zones": 18300,
    "n_parking": 18000,
    "n_fenced": 13000,
    "n_no_parking": 300,
    "active": False,
}


class ZoneSetInfo(BaseModel):
    """A stored zone-set version (immutable)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ZONE_SET]})

    version: int
    prev_version: int | None = Field(description="The version active when this one was uploaded")
    created_at: datetime
    source: str
    checksum: str = Field(description="SHA-256 over the zones' ids, attributes and geometries")
    n_zones: int
    n_parking: int
    n_fenced: int
    n_no_parking: int
    active: bool
    report: dict[str, Any] | None = Field(
        default=None, description="zones.validate report (one version's metadata only)"
    )


class ActiveZoneSet(ZoneSetInfo):
    """The active version, and how long this server took to build its index."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [EXAMPLE_ZONE_SET | {"active": True, "build_seconds": 0.31}]}
    )

    build_seconds: float = Field(description="Seconds this server took to build the index")


class ZoneSetCreated(ZoneSetInfo):
    """201: the new (inactive) version and its validation report."""

    report: dict[str, Any] | None = Field(
        default=None, description="zones.validate report: ok, counts, issues (warnings)"
    )


class ZoneSetList(BaseModel):
    active: int | None
    zone_sets: list[ZoneSetInfo]


class Activation(BaseModel):
    """The result of an activation (or rollback)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": 3,
                    "previous": 2,
                    "build_seconds": 0.31,
                    "zone_set": EXAMPLE_ZONE_SET | {"active": True},
                }
            ]
        }
    )

    active: int
    previous: int | None
    build_seconds: float
    zone_set: ZoneSetInfo


class ZoneSetPage(ZoneSetList):
    """``GET /v1/zone-sets``: stored versions, newest first."""

    next: str | None = Field(description="The next page's relative URL, null on the last")
