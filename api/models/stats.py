"""Check counts: :class:`Counts` and the groupings built on it (``/v1/stats`` per
operator, district, zone or day; one zone's days; the per-day series of the map).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Counts(BaseModel):
    """Checks and their outcomes."""

    checks: int
    settle: int
    reject: int
    review: int
    in_box_rate: float | None = Field(description="settle / checks")


class StatsRow(Counts):
    key: str | None


class StatsTotal(Counts):
    """Every group's counts together."""


class Stats(BaseModel):
    """Checks and in-box rate per group over ``[from, to)``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group_by": "operator",
                    "from": "2026-11-01T00:00:00Z",
                    "to": None,
                    "groups": [
                        {
                            "key": "hellobike",
                            "checks": 1200,
                            "settle": 980,
                            "reject": 200,
                            "review": 20,
                            "in_box_rate": 0.8167,
                        }
                    ],
                    "total": {
                        "checks": 1200,
                        "settle": 980,
                        "reject": 200,
                        "review": 20,
                        "in_box_rate": 0.8167,
                    },
                    "truncated": False,
                }
            ]
        }
    )

    group_by: Literal["operator", "district", "zone", "day"]
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    groups: list[StatsRow]
    total: StatsTotal
    truncated: bool = Field(
        description="More groups matched than `limit`: `groups` holds the first `limit` "
        "(`total` counts every one)"
    )


class DayCounts(Counts):
    day: str = Field(description="Calendar day in China Standard Time, YYYY-MM-DD")


class ZoneStats(Counts):
    """A zone's checks over the last ``days`` days."""

    zone_id: str
    zone: dict[str, Any] = Field(description="The zone's id, zone set version and properties")
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    days: float
    by_day: list[DayCounts]


class SeriesLine(BaseModel):
    key: str | None
    checks: int
    in_box_rate: float | None
    points: list[DayCounts]


class StatsSeries(BaseModel):
    """In-box rate per group and per China Standard Time day."""

    group_by: Literal["operator", "district"]
    days: list[str]
    series: list[SeriesLine]
