"""GeoJSON answers (RFC 7946, WGS-84): features and collections, the zones of the
active set with their DESIGN §3 properties, the nearest zones to a point and a stored
zone set's document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Feature(BaseModel):
    """A GeoJSON Feature (RFC 7946), WGS-84."""

    type: Literal["Feature"]
    id: str | None = None
    geometry: dict[str, Any] | None = Field(description="A GeoJSON geometry")
    properties: dict[str, Any] | None


class ZoneProperties(BaseModel):
    """A zone's properties (DESIGN §3)."""

    kind: Literal["parking", "no_parking"]
    fenced: bool
    district: str
    name: str
    capacity: int
    operators: list[str]
    heading_deg: float | None
    beacons: list[str]
    active_from: datetime | None
    active_to: datetime | None
    zone_set_version: int | None = Field(default=None, description="GET /v1/zones/{id} only")
    distance_m: float | None = Field(default=None, description="/v1/zones/nearest only")
    bearing_deg: float | None = Field(default=None, description="/v1/zones/nearest only")


class ZoneFeature(Feature):
    """A zone of the active set."""

    id: str  # type: ignore[assignment]
    properties: ZoneProperties  # type: ignore[assignment]


class ZoneCollection(BaseModel):
    """Zones of the active set (a GeoJSON FeatureCollection)."""

    type: Literal["FeatureCollection"]
    zone_set_version: int | None
    numberMatched: int = Field(description="Zones matching the query")
    numberReturned: int = Field(description="Zones in this answer")
    next: str | None = Field(
        default=None, description="/v1/zones: the next page's relative URL, null on the last"
    )
    features: list[ZoneFeature]


class NearestQuery(BaseModel):
    lon: float
    lat: float
    crs: Literal["wgs84", "cgcs2000", "gcj02", "bd09"]
    wgs84: list[float] = Field(description="The point in WGS-84, [lon, lat]")


class NearestCollection(BaseModel):
    """The zones nearest a point, nearest first (a GeoJSON FeatureCollection)."""

    type: Literal["FeatureCollection"]
    zone_set_version: int | None
    query: NearestQuery
    features: list[ZoneFeature]


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946), WGS-84."""

    type: Literal["FeatureCollection"]
    features: list[Feature]


class ZoneSetDocument(FeatureCollection):
    """A stored zone set: the GeoJSON FeatureCollection as uploaded (DESIGN §3)."""
