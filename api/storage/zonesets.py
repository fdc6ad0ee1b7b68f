"""Zone-set versions: upload, list, read, snapshots, activation and its history.

A zone set is stored once per version (the validated FeatureCollection as received,
its validation report and counts); ``active_zone_set`` points at the active one and
``activations`` records every move (:func:`api.storage.base._point`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api import schema as t
from api.storage.base import StoreBase, _point
from api.storage.engine import as_utc, rfc3339
from api.storage.records import _ZS_COLS, ZoneSetInfo, _zs_from_row

__all__ = ["ZoneSetStore"]


class ZoneSetStore(StoreBase):
    """The zone-set versions of :class:`api.storage.Store`."""

    def has_zone_sets(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(t.zone_sets.c.version).limit(1)).first() is not None

    def active_version(self) -> int | None:
        """The active zone-set version, or None on an empty database."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(t.active_zone_set.c.version).where(t.active_zone_set.c.id == 1)
            ).scalar()

    def add_zone_set(
        self,
        document: bytes | str,
        *,
        checksum: str,
        counts: Mapping[str, int],
        report: Mapping[str, Any],
        source: str,
        activate: bool = False,
        actor: str | None = None,
    ) -> ZoneSetInfo:
        """Store a new, validated zone set; the store assigns its version.

        ``prev_version`` is the version active at upload time (the one it would
        replace). With ``activate`` (seeding), it becomes active in the same
        transaction.
        """
        doc = document.decode("utf-8") if isinstance(document, bytes) else document
        values = {
            "source": source,
            "checksum": checksum,
            "report": orjson.dumps(report).decode(),
            "document": doc,
            **{k: counts[k] for k in ("n_zones", "n_parking", "n_fenced", "n_no_parking")},
        }
        version, active, now = self._add_version(
            t.zone_sets, t.active_zone_set, t.activations, values, activate=activate, actor=actor
        )
        return ZoneSetInfo(
            version=version,
            prev_version=active,
            created_at=now,
            source=source,
            checksum=checksum,
            active=activate,
            report=report,
            **counts,
        )

    def zone_sets(
        self, *, before: int | None = None, limit: int | None = None
    ) -> list[ZoneSetInfo]:
        """Stored versions, newest first (those older than ``before``, ``limit`` at most)."""
        q = sa.select(*_ZS_COLS).order_by(t.zone_sets.c.version.desc())
        if before is not None:
            q = q.where(t.zone_sets.c.version < before)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as c:
            active = c.execute(
                sa.select(t.active_zone_set.c.version).where(t.active_zone_set.c.id == 1)
            ).scalar()
            rows = c.execute(q).all()
        return [_zs_from_row(r, active) for r in rows]

    def zone_set(self, version: int) -> ZoneSetInfo | None:
        """One version's metadata and validation report, or None."""
        with self.engine.connect() as c:
            active = c.execute(
                sa.select(t.active_zone_set.c.version).where(t.active_zone_set.c.id == 1)
            ).scalar()
            r = c.execute(
                sa.select(*_ZS_COLS, t.zone_sets.c.report).where(t.zone_sets.c.version == version)
            ).first()
        return None if r is None else _zs_from_row(r, active, r.report)

    def zone_set_document(self, version: int) -> str | None:
        """The stored FeatureCollection (JSON text) of a version, or None."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(t.zone_sets.c.document).where(t.zone_sets.c.version == version)
            ).scalar()

    def zone_set_snapshot(self, version: int, fmt: str) -> bytes | None:
        """The stored snapshot of a version in format ``fmt``, or None."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(t.zone_set_snapshots.c.data).where(
                    t.zone_set_snapshots.c.version == version,
                    t.zone_set_snapshots.c.format == fmt,
                )
            ).scalar()

    def save_zone_set_snapshot(self, version: int, fmt: str, data: bytes) -> None:
        """Store (or replace) the snapshot of a stored version."""
        with self.engine.begin() as c:
            snaps = t.zone_set_snapshots
            c.execute(sa.delete(snaps).where(snaps.c.version == version))
            c.execute(
                sa.insert(snaps).values(
                    version=version, format=fmt, data=data, created_at=datetime.now(UTC)
                )
            )

    def activate(self, version: int, *, actor: str | None = None) -> int | None:
        """Make ``version`` the active one (atomic); returns the previously active version.

        Raises ``KeyError`` when no such version is stored.
        """
        with self.engine.begin() as c:
            return self._activate(c, version, actor=actor, now=datetime.now(UTC))

    def _activate(
        self, c: Connection, version: int, *, actor: str | None, now: datetime
    ) -> int | None:
        return _point(
            c, t.active_zone_set, t.zone_sets, t.activations, version, actor=actor, now=now
        )

    def activations(self, limit: int = 100) -> list[dict[str, Any]]:
        """The activation history, newest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(t.activations).order_by(t.activations.c.id.desc()).limit(limit)
            ).all()
        return [
            {
                "version": r.version,
                "previous": r.previous,
                "activated_at": rfc3339(as_utc(r.activated_at)),
                "actor": r.actor,
            }
            for r in rows
        ]

    def activation_history(self) -> list[tuple[int, int, datetime]]:
        """Every activation, oldest first: (activation id, version, activated_at UTC).
        The MDS geographies are derived from this (``api.routes.standards``)."""
        a = t.activations
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(a.c.id, a.c.version, a.c.activated_at).order_by(a.c.id)
            ).all()
        return [(r.id, r.version, as_utc(r.activated_at)) for r in rows]  # type: ignore[misc]
