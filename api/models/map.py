"""The map page's own answers: zone density per grid cell, the newest decisions as
points, and the hot spots of rejected trip ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.models.decisions import Outcome, Reason
from api.models.geojson import Feature


class Density(BaseModel):
    """Zones per grid cell: each cell is a row of ``columns``."""

    zone_set_version: int | None
    cell_deg: float
    bbox: list[float]
    columns: list[str]
    cells: list[list[float]]
    total: int


class RecentCheck(BaseModel):
    check_id: str
    operator: str
    outcome: Outcome
    reasons: list[Reason]
    zone_id: str | None
    district: str | None
    decided_at: datetime
    lon: float | None
    lat: float | None
    accuracy_m: float | None


class RecentChecks(BaseModel):
    """The newest decisions, newest first, as points (the fused position)."""

    now: datetime
    since: datetime | None
    checks: list[RecentCheck]
    next: str | None = Field(description="The next page's relative URL, null on the last")


class HotspotParameters(BaseModel):
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    days: float
    radius_m: float
    min_count: int
    rejected_trip_ends: int
    zone_set_version: int | None


class Hotspots(BaseModel):
    """Clusters of rejected trip ends, each a Feature with a proposed box."""

    type: Literal["FeatureCollection"]
    parameters: HotspotParameters
    features: list[Feature]
