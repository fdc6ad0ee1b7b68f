"""Hot spots: where rejected trip ends cluster, read from the audit log.

The trip ends are the fused positions (``decision.position``) of checks rejected
because the bike stood outside every box (``outside_all_boxes``) or in a painted
box without an e-fence (``inside_unfenced_box``); rejects for other reasons (a
no-parking area, outside the service area, a box closed to the operator) say
nothing about where a box is missing. :func:`zones.suggest.propose` clusters them
and proposes a box per cluster. Used by ``GET /v1/stats/hotspots`` and
``geofence zones suggest``.

Bounded work (issue 19: 10.7 s over ~213,000 rejects at the defaults, 79 s and
+3.5 GB at ``radius_m=50``, out of memory at 500, one "hot spot" of everything at
``radius_m=1e-300``). :class:`Limits` (the ``GEOFENCE_HOTSPOT_*`` settings) are checked
before the work they bound: the window at most ``max_days``; the radius within
``[radius_min_m, radius_max_m]`` (2-20 m by default: clustering snaps trip ends to a
grid of ``radius/8``, at most 2.5 m, so up to 20 m a cell has a constant ~200 cells
within the radius and the pairs DBSCAN looks at grow with the trip ends only; beyond
20 m they grow as the radius squared); and at most ``max_rejects`` rejects read (in
chunks of 20,000 rows; one more and the query is refused, naming the setting, rather
than reading on). The route runs it in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from api.storage import Store, rfc3339
from api.storage import schema as t
from zones.suggest import Suggestion, draft, propose

__all__ = [
    "DEFAULT_DAYS",
    "HOTSPOT_REASONS",
    "HotspotLimitError",
    "Hotspots",
    "Limits",
    "find_hotspots",
    "rejected_trip_ends",
    "window",
]

#: reject reasons whose trip ends count towards hot spots
HOTSPOT_REASONS = frozenset({"outside_all_boxes", "inside_unfenced_box"})
#: the window when ``from`` is not given: this many days before ``to``
DEFAULT_DAYS = 7.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of a hot-spot query (the service's ``GEOFENCE_HOTSPOT_*`` settings)."""

    max_days: float = 93.0
    max_rejects: int = 250_000
    radius_min_m: float = 2.0
    radius_max_m: float = 20.0


class HotspotLimitError(ValueError):
    """A hot-spot query beyond :class:`Limits`: ``parameter`` names the input."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """``[since, until)`` with the defaults: until now, from ``DEFAULT_DAYS`` before."""
    until = (until or datetime.now(UTC)).astimezone(UTC)
    since = (since or until - timedelta(days=DEFAULT_DAYS)).astimezone(UTC)
    return since, until


def rejected_trip_ends(
    store: Store,
    since: datetime,
    until: datetime,
    *,
    chunk: int = 20_000,
    max_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(lon, lat, operators)`` of the hot-spot rejects decided in ``[since, until)``.

    ``max_rows``: rejects read at most (:class:`HotspotLimitError` past it)."""
    c = t.checks.c
    conds = [
        c.outcome == "reject",
        c.decided_at >= since.astimezone(UTC),
        c.decided_at < until.astimezone(UTC),
    ]
    lon: list[float] = []
    lat: list[float] = []
    ops: list[str] = []
    last: tuple[Any, str] | None = None
    seen = 0
    while True:
        q = sa.select(c.check_id, c.decided_at, c.operator, c.decision).where(*conds)
        if last is not None:
            q = q.where(
                sa.or_(
                    c.decided_at > last[0],
                    sa.and_(c.decided_at == last[0], c.check_id > last[1]),
                )
            )
        q = q.order_by(c.decided_at, c.check_id).limit(chunk)
        with store.engine.connect() as conn:
            rows = conn.execute(q).all()
        seen += len(rows)
        if max_rows is not None and seen > max_rows:
            raise HotspotLimitError(
                "from",
                f"more than {max_rows} rejected checks in the window "
                "(GEOFENCE_HOTSPOT_MAX_REJECTS): narrow it with 'from' and 'to'",
            )
        for r in rows:
            d = orjson.loads(r.decision)
            if HOTSPOT_REASONS.isdisjoint(d.get("reasons") or ()):
                continue
            pos = d.get("position") or {}
            x, y = pos.get("lon"), pos.get("lat")
            if x is None or y is None:
                continue
            lon.append(float(x))
            lat.append(float(y))
            ops.append(r.operator)
        if len(rows) < chunk:
            break
        last = (rows[-1].decided_at, rows[-1].check_id)
    return np.array(lon, dtype=np.float64), np.array(lat, dtype=np.float64), ops


@dataclass(frozen=True)
class Hotspots:
    """The hot spots of a window and how they were found."""

    since: datetime
    until: datetime
    radius_m: float
    min_count: int
    n_rejected: int
    zone_set_version: int | None
    suggestions: list[Suggestion]

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400.0

    def parameters(self) -> dict[str, Any]:
        return {
            "from": rfc3339(self.since),
            "to": rfc3339(self.until),
            "days": round(self.days, 4),
            "radius_m": self.radius_m,
            "min_count": self.min_count,
            "rejected_trip_ends": self.n_rejected,
            "zone_set_version": self.zone_set_version,
        }

    def geojson(self) -> dict[str, Any]:
        """Every hot spot as a Feature: its box (to paint, or the unfenced one to
        fence) as the geometry, the cluster in ``properties.suggestion``."""
        return {
            "type": "FeatureCollection",
            "parameters": self.parameters(),
            "features": [s.feature() for s in self.suggestions],
        }

    def draft(self) -> dict[str, Any]:
        """The zone-set draft of ``geofence zones suggest`` (new boxes only)."""
        return draft(
            self.suggestions,
            source=f"geofence zones suggest: rejected trip ends {rfc3339(self.since)} "
            f"to {rfc3339(self.until)}",
            parameters=self.parameters(),
        )


def find_hotspots(
    store: Store,
    index: Any,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    radius_m: float = 15.0,
    min_count: int = 10,
    limits: Limits | None = None,
) -> Hotspots:
    """Cluster the window's hot-spot rejects and propose boxes against ``index``
    (the zone set in force: orientation of nearby boxes, no overlaps), within
    ``limits`` (:class:`HotspotLimitError` beyond them; None: no limits)."""
    t0, t1 = window(since, until)
    max_rows = None
    if limits is not None:
        if not limits.radius_min_m <= radius_m <= limits.radius_max_m:
            raise HotspotLimitError(
                "radius_m",
                f"radius_m must be within [{limits.radius_min_m:g}, {limits.radius_max_m:g}] m "
                "(GEOFENCE_HOTSPOT_RADIUS_MIN_M / _MAX_M)",
            )
        days_ = (t1 - t0).total_seconds() / 86400.0
        if days_ > limits.max_days:
            raise HotspotLimitError(
                "from",
                f"the window is {days_:.1f} days; at most {limits.max_days:g} "
                "(GEOFENCE_HOTSPOT_MAX_DAYS)",
            )
        max_rows = limits.max_rejects
    lon, lat, ops = rejected_trip_ends(store, t0, t1, max_rows=max_rows)
    days = (t1 - t0).total_seconds() / 86400.0
    suggestions = propose(
        lon,
        lat,
        radius_m=radius_m,
        min_count=min_count,
        days=days,
        index=index,
        operators=ops,
    )
    version = None if index is None else index.zone_set.version
    return Hotspots(t0, t1, radius_m, min_count, len(lon), version, suggestions)
