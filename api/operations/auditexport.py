"""The audit log out of the building, and out of the database: Parquet export, pruning.

:func:`export_parquet` writes the checks decided in ``[since, until)`` to one Parquet
file: one row per decision, with the request's fixes and road studs as lists of
structs, the outcome, reasons, zone, versions, operator and device class, in the
form a city's data platform reads without our code (timestamps as UTC instants,
reasons as a list of strings, absent values as nulls). Why Parquet through pyarrow:
the columnar format every such platform reads (Spark, DuckDB, pandas, BigQuery),
typed, compressed (zstd) and written in row groups, so the export streams: the
records are read in chunks of ``chunk`` (the store's keyset pagination, oldest
first), each chunk becomes one row group, and memory stays bounded by one chunk
whatever the range. The file is written beside its destination and renamed into
place only when complete: a failed export leaves no half file under the name.

The records are the API's own (:meth:`api.storage.Store.iter_checks`, the read path of
``GET /v1/checks/{id}``), so an exported row says what the API answers for that
check; the tests compare the two.

:func:`prune` removes the checks decided before a time (retention): it counts them,
and deletes them only when asked to (the command refuses without ``--yes`` and says
what it would remove), in one transaction, in chunks of rows by their keys (a
million-row delete in one statement holds SQLite's lock and PostgreSQL's memory for
its whole length). On PostgreSQL the months wholly before the cut are dropped whole
(:func:`api.storage.partitions.prune_partitions`) and only the rows of the month the cut
falls in are deleted. :func:`prune_bodies` then removes the batch bodies (migration 6)
no check points to any more, and counts them (without ``--yes``: those the pruning
would leave with no check).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from api.storage import Store
from api.storage import schema as t
from geofence.rfc3339 import parse_rfc3339

__all__ = ["SCHEMA", "count_checks", "export_parquet", "prune", "prune_bodies", "rows_of"]

_TS = pa.timestamp("us", tz="UTC")

#: One row per decision. ``fixes[].at`` and ``ended_at`` as the request sent them
#: (instants); ``position`` is the fused position the decision reports.
SCHEMA = pa.schema(
    [
        ("check_id", pa.string()),
        ("operator", pa.string()),
        ("trip_id", pa.string()),
        ("bike_id", pa.string()),
        ("vehicle_type", pa.string()),
        ("device_class", pa.string()),
        ("idempotency_key", pa.string()),
        ("batch_id", pa.string()),
        ("ended_at", _TS),
        ("decided_at", _TS),
        ("outcome", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("p_inside", pa.float64()),
        ("distance_m", pa.float64()),
        ("zone_id", pa.string()),
        ("zone_kind", pa.string()),
        ("district", pa.string()),
        ("zone_set_version", pa.int32()),
        ("policy_id", pa.string()),
        ("policy_version", pa.int32()),
        ("position_lon", pa.float64()),
        ("position_lat", pa.float64()),
        ("position_accuracy_m", pa.float64()),
        ("heading_deg", pa.float64()),
        (
            "fixes",
            pa.list_(
                pa.struct(
                    [
                        ("lon", pa.float64()),
                        ("lat", pa.float64()),
                        ("accuracy_m", pa.float64()),
                        ("at", _TS),
                        ("crs", pa.string()),
                        ("quality", pa.string()),
                    ]
                )
            ),
        ),
        ("beacons", pa.list_(pa.struct([("id", pa.string()), ("rssi", pa.float64())]))),
        (
            "nearest",
            pa.list_(
                pa.struct(
                    [
                        ("zone_id", pa.string()),
                        ("distance_m", pa.float64()),
                        ("bearing_deg", pa.float64()),
                    ]
                )
            ),
        ),
    ]
)


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_rfc3339(value)


def _row(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One export row of one audit-log record (``Store.iter_checks``)."""
    req = rec["request"]
    dec = rec["decision"]
    zone = dec.get("zone") or {}
    pos = dec.get("position") or {}
    return {
        "check_id": rec["check_id"],
        "operator": rec["operator"],
        "trip_id": rec["trip_id"],
        "bike_id": rec["bike_id"],
        "vehicle_type": req.get("vehicle_type"),
        "device_class": req.get("device_class"),
        "idempotency_key": rec["idempotency_key"],
        "batch_id": rec["batch_id"],
        "ended_at": _time(req.get("ended_at")),
        "decided_at": _time(rec["decided_at"]),
        "outcome": dec["outcome"],
        "reasons": list(dec.get("reasons") or ()),
        "p_inside": dec.get("p_inside"),
        "distance_m": dec.get("distance_m"),
        "zone_id": zone.get("id"),
        "zone_kind": zone.get("kind"),
        "district": zone.get("district"),
        "zone_set_version": rec["zone_set_version"],
        "policy_id": rec["policy"],
        "policy_version": rec["policy_version"],
        "position_lon": pos.get("lon"),
        "position_lat": pos.get("lat"),
        "position_accuracy_m": pos.get("accuracy_m"),
        "heading_deg": req.get("heading_deg"),
        "fixes": [
            {
                "lon": f["lon"],
                "lat": f["lat"],
                "accuracy_m": f.get("accuracy_m"),
                "at": _time(f.get("at")),
                "crs": f.get("crs", "wgs84"),
                "quality": f.get("quality"),
            }
            for f in req["fixes"]
        ],
        "beacons": [{"id": b["id"], "rssi": b["rssi"]} for b in req.get("beacons") or ()],
        "nearest": [
            {k: n[k] for k in ("zone_id", "distance_m", "bearing_deg")}
            for n in dec.get("nearest") or ()
        ],
    }


def rows_of(records: Iterator[Mapping[str, Any]], chunk: int) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``chunk`` rows each."""
    rows: list[dict[str, Any]] = []
    for rec in records:
        rows.append(_row(rec))
        if len(rows) >= chunk:
            yield pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
            rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=SCHEMA)


def export_parquet(
    store: Store,
    out: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the checks decided in ``[since, until)`` to ``out`` (Parquet, zstd), one
    row group per chunk of ``chunk`` records; ``progress(n)`` after each. Returns the
    number of rows written. The file appears under its name only when complete."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    n = 0
    try:
        with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as w:
            records = store.iter_checks(since=since, until=until, chunk=chunk)
            for batch in rows_of(records, chunk):
                w.write_batch(batch, row_group_size=chunk)
                n += batch.num_rows
                if progress is not None:
                    progress(batch.num_rows)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _range(since: datetime | None, until: datetime | None) -> list[Any]:
    conds: list[Any] = []
    if since is not None:
        conds.append(t.checks.c.decided_at >= since.astimezone(UTC))
    if until is not None:
        conds.append(t.checks.c.decided_at < until.astimezone(UTC))
    return conds


def count_checks(store: Store, since: datetime | None, until: datetime | None) -> int:
    """Checks decided in ``[since, until)``."""
    q = sa.select(sa.func.count()).select_from(t.checks).where(*_range(since, until))
    with store.engine.connect() as c:
        return int(c.execute(q).scalar() or 0)


def prune(store: Store, before: datetime, *, confirm: bool, chunk: int = 10_000) -> int:
    """Remove the checks decided before ``before`` if ``confirm``; the number removed
    (or that would be, without ``confirm``)."""
    if not confirm:
        return count_checks(store, None, before)
    if store.dialect == "postgresql":  # partitioned by month: whole months dropped
        from api.storage.partitions import prune_partitions

        return prune_partitions(store.engine, before)
    cond = t.checks.c.decided_at < before.astimezone(UTC)
    n = 0
    with store.engine.begin() as c:
        while True:
            ids = c.execute(sa.select(t.checks.c.check_id).where(cond).limit(chunk)).scalars().all()
            if not ids:
                return n
            n += c.execute(sa.delete(t.checks).where(t.checks.c.check_id.in_(ids))).rowcount


def prune_bodies(store: Store, before: datetime | None = None, *, confirm: bool) -> int:
    """Remove the batch bodies no check points to (after :func:`prune`) if ``confirm``;
    the number removed. Without ``confirm``, the number that would be once the checks
    decided before ``before`` are removed (nothing is)."""
    bb, c_ = t.batch_bodies.c, t.checks.c
    kept = sa.select(c_.check_id).where(c_.batch_id == bb.batch_id)
    if not confirm:
        if before is not None:
            kept = kept.where(c_.decided_at >= before.astimezone(UTC))
        q = sa.select(sa.func.count()).select_from(t.batch_bodies).where(~kept.exists())
        with store.engine.connect() as c:
            return int(c.execute(q).scalar() or 0)
    with store.engine.begin() as c:
        return int(c.execute(sa.delete(t.batch_bodies).where(~kept.exists())).rowcount or 0)
