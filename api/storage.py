"""The store: zone-set and policy versions, their active pointers, the audit log, API keys.

SQLAlchemy Core over SQLite (WAL mode, a file under ``var/``) or PostgreSQL; the
URL is the only difference. Every method is synchronous and thread-safe (one
engine, a connection pool); the web layer calls them from worker threads. The
audit log is written through :class:`api.audit.AuditWriter` (group commit), and
read here: a batch's check's body (migration 6) from its batch's body, stored once
and zstd-compressed, which every reader here decompresses once per read (a page of
checks from one batch: once) and keeps for the next reads (the last few, up to
:data:`BODY_CACHE_BYTES`: the pages of a search or an export walk one batch after
another).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import Connection, Engine

from api import schema as t
from api.partitions import id_window

__all__ = [
    "BODY_CACHE_BYTES",
    "CHINA_STANDARD_TIME",
    "ROLES",
    "ApiKey",
    "Idempotent",
    "PolicyInfo",
    "Store",
    "ZoneSetInfo",
    "as_utc",
    "china_day",
    "hash_key",
    "keyset_before",
    "make_engine",
    "new_key",
]

ROLES = ("admin", "operator")
Role = Literal["admin", "operator"]

#: Days in ``GET /v1/stats?group_by=day`` are calendar days in Zhuhai (UTC+8, no DST).
CHINA_STANDARD_TIME = timedelta(hours=8)

GroupBy = Literal["operator", "district", "zone", "day"]

#: decompressed batch bodies kept by a store for the next reads, in bytes at most
BODY_CACHE_BYTES = 64 << 20


def as_utc(dt: datetime | None) -> datetime | None:
    """A datetime read back from the database, in UTC (SQLite returns naive UTC)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def china_day(dt: datetime) -> str:
    """The calendar day (``YYYY-MM-DD``) of ``dt`` in China Standard Time."""
    return (dt.astimezone(UTC) + CHINA_STANDARD_TIME).date().isoformat()


def rfc3339(dt: datetime | None) -> str | None:
    """``2026-11-26T08:00:00.123456Z`` (UTC) or None."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def keyset_before(time_col: Any, id_col: Any, key: tuple[datetime, str]) -> Any:
    """Rows after ``key`` in the order ``time_col`` DESC, ``id_col`` DESC: the condition
    of the next page of a newest-first list (a stable total order: ids are unique)."""
    at, cid = key
    at = at.astimezone(UTC)
    return sa.or_(time_col < at, sa.and_(time_col == at, id_col < cid))


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Engine:
    """A SQLAlchemy engine with a connection pool.

    PostgreSQL (``postgresql+psycopg://``): a pool of ``pool_size`` connections (as
    many again in bursts), each checked before use, so a database restart or a
    failover costs the requests in flight, not the process. SQLite: the file's folder
    is created, WAL turned on, ``PRAGMA synchronous`` set.
    """
    u = sa.make_url(url)
    if u.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if u.get_backend_name() == "postgresql" and u.get_driver_name() == "psycopg":
            connect_args = {"application_name": "geofence", "connect_timeout": 10}
        return sa.create_engine(
            u,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=30,
            connect_args=connect_args,
        )
    if u.database and u.database != ":memory:":
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(u, connect_args={"timeout": 30.0})
    sync = sqlite_synchronous.upper()
    if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"unknown SQLite synchronous mode {sqlite_synchronous!r}")

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


# ---------------------------------------------------------------------------- keys
def new_key() -> str:
    """A fresh API key: ``gfk_`` and 43 URL-safe characters (256 random bits)."""
    return "gfk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """SHA-256 of a key, hex: the only form in which keys are stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key's record (never the key itself)."""

    id: str
    role: Role
    operator: str | None
    created_at: datetime
    revoked_at: datetime | None
    key_hash: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "operator": self.operator,
            "created_at": rfc3339(self.created_at),
            "revoked_at": rfc3339(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class Idempotent:
    """What an idempotency key recorded: a single check (``batch_id`` None) or a batch's
    checks in request order, as JSON texts (the bodies as received, the decisions as
    answered)."""

    batch_id: str | None
    bodies: list[str]
    decisions: list[str]

    def body_values(self) -> list[Any]:
        return [orjson.loads(b) for b in self.bodies]

    def decision_values(self) -> list[Any]:
        return [orjson.loads(d) for d in self.decisions]


def _key_from_row(r: Any) -> ApiKey:
    return ApiKey(
        id=r.id,
        role=r.role,
        operator=r.operator,
        created_at=as_utc(r.created_at),  # type: ignore[arg-type]
        revoked_at=as_utc(r.revoked_at),
        key_hash=r.key_hash,
    )


# ---------------------------------------------------------------------------- zone sets
@dataclass(frozen=True, slots=True)
class ZoneSetInfo:
    """A stored zone-set version, without its features."""

    version: int
    prev_version: int | None
    created_at: datetime
    source: str
    checksum: str
    n_zones: int
    n_parking: int
    n_fenced: int
    n_no_parking: int
    active: bool
    report: Mapping[str, Any] | None = None

    def to_dict(self, *, with_report: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "prev_version": self.prev_version,
            "created_at": rfc3339(self.created_at),
            "source": self.source,
            "checksum": self.checksum,
            "n_zones": self.n_zones,
            "n_parking": self.n_parking,
            "n_fenced": self.n_fenced,
            "n_no_parking": self.n_no_parking,
            "active": self.active,
        }
        if with_report:
            d["report"] = self.report
        return d


_ZS_COLS = (
    t.zone_sets.c.version,
    t.zone_sets.c.prev_version,
    t.zone_sets.c.created_at,
    t.zone_sets.c.source,
    t.zone_sets.c.checksum,
    t.zone_sets.c.n_zones,
    t.zone_sets.c.n_parking,
    t.zone_sets.c.n_fenced,
    t.zone_sets.c.n_no_parking,
)


def _zs_from_row(r: Any, active: int | None, report: str | None = None) -> ZoneSetInfo:
    return ZoneSetInfo(
        version=r.version,
        prev_version=r.prev_version,
        created_at=as_utc(r.created_at),  # type: ignore[arg-type]
        source=r.source,
        checksum=r.checksum,
        n_zones=r.n_zones,
        n_parking=r.n_parking,
        n_fenced=r.n_fenced,
        n_no_parking=r.n_no_parking,
        active=r.version == active,
        report=orjson.loads(report) if report is not None else None,
    )


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """A stored policy version; ``params`` is ``Policy.to_mapping()`` (when read)."""

    version: int
    policy_id: str
    prev_version: int | None
    created_at: datetime
    source: str
    active: bool
    params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "id": self.policy_id,
            "prev_version": self.prev_version,
            "created_at": rfc3339(self.created_at),
            "source": self.source,
            "active": self.active,
        }
        if self.params is not None:
            d["policy"] = {"id": self.policy_id, **self.params}
        return d


def _policy_from_row(r: Any, active: int | None, params: str | None = None) -> PolicyInfo:
    return PolicyInfo(
        version=r.version,
        policy_id=r.policy_id,
        prev_version=r.prev_version,
        created_at=as_utc(r.created_at),  # type: ignore[arg-type]
        source=r.source,
        active=r.version == active,
        params=orjson.loads(params) if params is not None else None,
    )


def _point(
    c: Connection,
    pointer: sa.Table,
    versions: sa.Table,
    history: sa.Table,
    version: int,
    *,
    actor: str | None,
    now: datetime,
) -> int | None:
    """Point the single-row table ``pointer`` at ``version`` of ``versions`` on ``c`` and
    record it in ``history``; the previous version (zone sets and policies alike).

    Raises ``KeyError`` when ``versions`` has no such version.
    """
    # Lock the pointer first: a no-op UPDATE takes the row lock on PostgreSQL (held
    # to commit, like SELECT … FOR UPDATE) and the write lock on SQLite, so two
    # concurrent activations (from two processes) are serialised and each records
    # the version it really replaced.
    locked = c.execute(
        sa.update(pointer).where(pointer.c.id == 1).values(version=pointer.c.version)
    ).rowcount
    exists = c.execute(sa.select(versions.c.version).where(versions.c.version == version)).first()
    if exists is None:
        raise KeyError(version)
    prev = None
    if locked:
        prev = c.execute(sa.select(pointer.c.version).where(pointer.c.id == 1)).scalar()
    if prev is None:
        c.execute(sa.insert(pointer).values(id=1, version=version, activated_at=now))
    else:
        c.execute(
            sa.update(pointer).where(pointer.c.id == 1).values(version=version, activated_at=now)
        )
    c.execute(
        sa.insert(history).values(version=version, previous=prev, activated_at=now, actor=actor)
    )
    return prev


class Store:
    """The database behind the service. Build with :meth:`open` (migrates the schema)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._bodies = _BodyCache(BODY_CACHE_BYTES)

    @classmethod
    def open(cls, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Store:
        """Connect, create or migrate the schema, and return the store."""
        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, pool_size=pool_size)
        t.migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def exclusive(self, name: str = "setup") -> Iterator[None]:
        """Hold a lock named ``name`` across processes (and hosts sharing the database).

        For work that must not run twice at once, such as seeding an empty database
        when several servers start together. PostgreSQL: a session advisory lock on
        a connection of its own. SQLite (one host): ``flock`` on a file beside the
        database.
        """
        if self.dialect == "postgresql":
            lock_id = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            with self.engine.connect() as c:
                c.execute(sa.select(sa.func.pg_advisory_lock(lock_id)))
                c.commit()
                try:
                    yield
                finally:
                    c.execute(sa.select(sa.func.pg_advisory_unlock(lock_id)))
                    c.commit()
            return
        with t.file_lock(self.engine, name):
            yield

    # ------------------------------------------------------------------ zone sets
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

    def _add_version(
        self,
        versions: sa.Table,
        pointer: sa.Table,
        history: sa.Table,
        values: Mapping[str, Any],
        *,
        activate: bool,
        actor: str | None,
    ) -> tuple[int, int | None, datetime]:
        """Insert a row of ``values`` into ``versions`` under the next version number
        (retried when a concurrent upload takes it), ``prev_version`` the one active;
        with ``activate`` it becomes active in the same transaction. Returns
        ``(version, previously active version, created_at)``."""
        for _attempt in range(20):
            now = datetime.now(UTC)
            try:
                with self.engine.begin() as c:
                    top = c.execute(sa.select(sa.func.max(versions.c.version))).scalar()
                    active = c.execute(
                        sa.select(pointer.c.version).where(pointer.c.id == 1)
                    ).scalar()
                    version = (top or 0) + 1
                    c.execute(
                        sa.insert(versions).values(
                            version=version, prev_version=active, created_at=now, **values
                        )
                    )
                    if activate:
                        _point(c, pointer, versions, history, version, actor=actor, now=now)
            except sa.exc.IntegrityError:  # another upload took this version number
                continue
            return version, active, now
        raise RuntimeError(
            f"could not assign a version in {versions.name} (too many concurrent uploads)"
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

    # ------------------------------------------------------------------ policies
    def ensure_policy(self, policy_id: str, params: Mapping[str, Any]) -> None:
        """Record a policy's parameters under its id (once)."""
        with self.engine.connect() as c:
            if c.execute(
                sa.select(t.policies.c.policy_id).where(t.policies.c.policy_id == policy_id)
            ).first():
                return
        try:
            with self.engine.begin() as c:
                c.execute(
                    sa.insert(t.policies).values(
                        policy_id=policy_id,
                        params=orjson.dumps(params).decode(),
                        created_at=datetime.now(UTC),
                    )
                )
        except sa.exc.IntegrityError:  # recorded meanwhile by another process
            pass

    def policy_params(self, policy_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            p = c.execute(
                sa.select(t.policies.c.params).where(t.policies.c.policy_id == policy_id)
            ).scalar()
        return None if p is None else orjson.loads(p)

    # ------------------------------------------------------------------ policy versions
    def has_policy_versions(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(t.policy_versions.c.version).limit(1)).first() is not None

    def active_policy_version(self) -> int | None:
        """The active policy version, or None before the first one is stored."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(t.active_policy.c.version).where(t.active_policy.c.id == 1)
            ).scalar()

    def active_versions(self) -> tuple[int | None, int | None]:
        """``(active zone-set version, active policy version)`` in one read (the poll)."""
        zs = (
            sa.select(t.active_zone_set.c.version)
            .where(t.active_zone_set.c.id == 1)
            .scalar_subquery()
        )
        pol = sa.select(t.active_policy.c.version).where(t.active_policy.c.id == 1)
        with self.engine.connect() as c:
            r = c.execute(sa.select(zs.label("zs"), pol.scalar_subquery().label("pol"))).first()
        return (None, None) if r is None else (r.zs, r.pol)

    def add_policy(
        self,
        params: Mapping[str, Any],
        policy_id: str,
        *,
        source: str,
        activate: bool = False,
        actor: str | None = None,
    ) -> PolicyInfo:
        """Store a policy (``Policy.to_mapping()`` and its id) as a new version; the store
        assigns the version. With ``activate`` (the first start's seed) it becomes active
        in the same transaction."""
        self.ensure_policy(policy_id, params)
        version, active, now = self._add_version(
            t.policy_versions,
            t.active_policy,
            t.policy_activations,
            {"policy_id": policy_id, "source": source, "actor": actor},
            activate=activate,
            actor=actor,
        )
        return PolicyInfo(
            version=version,
            policy_id=policy_id,
            prev_version=active,
            created_at=now,
            source=source,
            active=activate,
            params=dict(params),
        )

    def policy_versions(self) -> list[PolicyInfo]:
        """Every stored policy version, newest first (without their parameters)."""
        pv = t.policy_versions
        with self.engine.connect() as c:
            active = c.execute(
                sa.select(t.active_policy.c.version).where(t.active_policy.c.id == 1)
            ).scalar()
            rows = c.execute(sa.select(pv).order_by(pv.c.version.desc())).all()
        return [_policy_from_row(r, active) for r in rows]

    def policy_version(self, version: int) -> PolicyInfo | None:
        """One stored policy version with its parameters, or None."""
        pv = t.policy_versions
        with self.engine.connect() as c:
            active = c.execute(
                sa.select(t.active_policy.c.version).where(t.active_policy.c.id == 1)
            ).scalar()
            r = c.execute(
                sa.select(pv, t.policies.c.params)
                .join(t.policies, t.policies.c.policy_id == pv.c.policy_id)
                .where(pv.c.version == version)
            ).first()
        return None if r is None else _policy_from_row(r, active, r.params)

    def activate_policy(self, version: int, *, actor: str | None = None) -> int | None:
        """Make policy ``version`` the active one (atomic); returns the previous one.

        Raises ``KeyError`` when no such version is stored.
        """
        with self.engine.begin() as c:
            return _point(
                c,
                t.active_policy,
                t.policy_versions,
                t.policy_activations,
                version,
                actor=actor,
                now=datetime.now(UTC),
            )

    # ------------------------------------------------------------------ the audit log
    def insert_checks(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert audit-log rows on ``conn`` (the caller owns the transaction)."""
        if rows:
            conn.execute(sa.insert(t.checks), list(rows))

    def find_idempotent(self, operator: str, key: str) -> Idempotent | None:
        """What ``operator`` recorded under this idempotency key, or None.

        One key space per operator across ``POST /v1/checks`` and ``/v1/checks/batch``:
        a single check's row carries the key itself; a batch's first row carries the
        key too and its others ``key/1``, ``key/2``, … (a key has no ``/``), so the
        unique index on ``(operator, idempotency_key)`` refuses a key's second use on
        either route, race-free (on PostgreSQL the primary key of ``check_keys``, the
        checks table being partitioned: :mod:`api.partitions`). The first row is found
        by its exact key, a batch's others by its ``batch_id`` (indexed). Exact
        comparisons only, no ``LIKE`` pattern, so the result is the same on every
        backend and collation (case-sensitive, ``%`` and ``_`` taken literally). The
        bodies are read through the batch's stored body (migration 6) when the rows
        point into it.
        """
        c_ = t.checks.c
        cols = (c_.idempotency_key, c_.batch_id, c_.body, c_.decision, c_.body_start, c_.body_end)
        by_key = sa.select(*cols)
        with self.engine.connect() as c:
            if self.dialect == "postgresql":
                # partitioned: the key's check and time from check_keys, then the row
                # from its month's partition alone (pruned when the query is planned;
                # a join would plan every partition)
                k = t.check_keys.c
                claim = c.execute(
                    sa.select(k.check_id, k.decided_at).where(
                        k.operator == operator, k.idempotency_key == key
                    )
                ).first()
                if claim is None:
                    return None
                by_key = by_key.where(
                    c_.check_id == claim.check_id, c_.decided_at == claim.decided_at
                )
            else:
                by_key = by_key.where(c_.operator == operator, c_.idempotency_key == key)
            first = c.execute(by_key).first()
            if first is None:
                return None
            if first.batch_id is None:
                return Idempotent(None, self._body_texts(c, [first]), [first.decision])
            rows = c.execute(
                sa.select(*cols).where(c_.batch_id == first.batch_id, c_.operator == operator)
            ).all()
            texts = self._body_texts(c, rows)
        prefix = key + "/"
        found: dict[int, tuple[str, str]] = {}
        for r, b in zip(rows, texts, strict=True):
            k = r.idempotency_key
            if k == key:
                found[0] = (b, r.decision)
            elif k is not None and k.startswith(prefix) and k[len(prefix) :].isdigit():
                found[int(k[len(prefix) :])] = (b, r.decision)
        ordered = [found[i] for i in sorted(found)]
        return Idempotent(first.batch_id, [b for b, _ in ordered], [d for _, d in ordered])

    def _body_texts(self, c: Connection, rows: Sequence[Any]) -> list[str]:
        """Each row's check body as received: its own (``body``), or its bytes in its
        batch's stored body (``body_start``, ``body_end``)."""
        need = {r.batch_id for r in rows if r.body_start is not None}
        bodies = {b: raw for b in need if (raw := self._bodies.get(b)) is not None}
        missing = sorted(need - bodies.keys())
        if missing:
            bb = t.batch_bodies.c
            for batch_id, packed in c.execute(
                sa.select(bb.batch_id, bb.body).where(bb.batch_id.in_(missing))
            ):
                raw = zstandard.ZstdDecompressor().decompress(packed)
                bodies[batch_id] = raw
                self._bodies.put(batch_id, raw)
        return [
            r.body
            if r.body_start is None
            else bodies[r.batch_id][r.body_start : r.body_end].decode()
            for r in rows
        ]

    def get_check(self, check_id: str) -> dict[str, Any] | None:
        """One audit-log record, or None. On PostgreSQL (partitioned by month), looked
        for first around the time its id was drawn (:func:`api.partitions.id_window`)."""
        q = sa.select(t.checks).where(t.checks.c.check_id == check_id)
        window = id_window(check_id) if self.dialect == "postgresql" else None
        with self.engine.connect() as c:
            r = None
            if window is not None:  # partitioned: the month(s) of the id's time first
                at = t.checks.c.decided_at
                r = c.execute(q.where(at >= window[0], at < window[1])).first()
            if r is None:
                r = c.execute(q).first()
            return None if r is None else _check_record(r, self._body_texts(c, [r])[0])

    def search_checks(
        self,
        *,
        operator: str | None = None,
        trip_id: str | None = None,
        bike_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit-log records matching every filter given, newest first (``decided_at``
        then ``check_id``, descending: a total order), after ``before`` in that order.

        Served by an index: with a trip, ``ix_checks_trip_decided_at`` (migration 5);
        else the operator's and time's (``ix_checks_operator_decided_at``) or time's,
        newest first, the other filters read from the rows until the page is full (a
        bike is not indexed: give it a time range to bound that read).
        """
        c = t.checks.c
        conds = []
        if operator is not None:
            conds.append(c.operator == operator)
        if trip_id is not None:
            conds.append(c.trip_id == trip_id)
        if bike_id is not None:
            conds.append(c.bike_id == bike_id)
        if outcome is not None:
            conds.append(c.outcome == outcome)
        if since is not None:
            conds.append(c.decided_at >= since.astimezone(UTC))
        if until is not None:
            conds.append(c.decided_at < until.astimezone(UTC))
        if before is not None:
            conds.append(keyset_before(c.decided_at, c.check_id, before))
        q = (
            sa.select(t.checks)
            .where(*conds)
            .order_by(c.decided_at.desc(), c.check_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            texts = self._body_texts(conn, rows)
        return [_check_record(r, b) for r, b in zip(rows, texts, strict=True)]

    def count_checks(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t.checks)).scalar() or 0)

    def check_ids(self) -> set[str]:
        with self.engine.connect() as c:
            return set(c.execute(sa.select(t.checks.c.check_id)).scalars())

    def iter_checks(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        operator: str | None = None,
        device_class: str | None = None,
        chunk: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Audit-log records decided in ``[since, until)``, oldest first, in chunks
        (of one operator, one device class, when given)."""
        conds = []
        if device_class is not None:
            conds.append(t.checks.c.device_class == device_class)
        if since is not None:
            conds.append(t.checks.c.decided_at >= since.astimezone(UTC))
        if until is not None:
            conds.append(t.checks.c.decided_at < until.astimezone(UTC))
        if operator is not None:
            conds.append(t.checks.c.operator == operator)
        last: tuple[datetime, str] | None = None
        while True:
            q = sa.select(t.checks).where(*conds)
            if last is not None:
                q = q.where(
                    sa.or_(
                        t.checks.c.decided_at > last[0],
                        sa.and_(t.checks.c.decided_at == last[0], t.checks.c.check_id > last[1]),
                    )
                )
            q = q.order_by(t.checks.c.decided_at, t.checks.c.check_id).limit(chunk)
            with self.engine.connect() as c:
                rows = c.execute(q).all()
                texts = self._body_texts(c, rows)
            for r, b in zip(rows, texts, strict=True):
                yield _check_record(r, b)
            if len(rows) < chunk:
                return
            last = (rows[-1].decided_at, rows[-1].check_id)

    def stats(
        self,
        group_by: GroupBy,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """Checks, settle/reject/review counts and the in-box rate, per group.

        The in-box rate is ``settle / checks``: the share of trip ends that stood in a
        fenced box. Groups are sorted by key (days, operators, districts) or, for
        zones, by number of checks (the busiest first); ``truncated`` says that more
        than ``limit`` groups matched (``total`` counts every one).
        """
        col = {
            "operator": t.checks.c.operator,
            "district": t.checks.c.district,
            "zone": t.checks.c.zone_id,
            "day": t.checks.c.decided_day,
        }[group_by]
        conds = []
        if since is not None:
            conds.append(t.checks.c.decided_at >= since.astimezone(UTC))
        if until is not None:
            conds.append(t.checks.c.decided_at < until.astimezone(UTC))

        def count_of(outcome: str) -> Any:
            return sa.func.sum(sa.case((t.checks.c.outcome == outcome, 1), else_=0))

        n = sa.func.count().label("checks")
        aggs = (
            n,
            count_of("settle").label("settle"),
            count_of("reject").label("reject"),
            count_of("review").label("review"),
        )
        q = sa.select(col.label("key"), *aggs).where(*conds).group_by(col)
        q = q.order_by(n.desc(), col) if group_by == "zone" else q.order_by(col)
        with self.engine.connect() as c:
            rows = c.execute(q.limit(limit + 1)).all()
            total = c.execute(sa.select(*aggs).where(*conds)).first()
        truncated = len(rows) > limit
        rows = rows[:limit]

        def shape(r: Any) -> dict[str, Any]:
            checks = int(r.checks or 0)
            settle = int(r.settle or 0)
            return {
                "checks": checks,
                "settle": settle,
                "reject": int(r.reject or 0),
                "review": int(r.review or 0),
                "in_box_rate": (settle / checks) if checks else None,
            }

        return {
            "group_by": group_by,
            "from": rfc3339(since),
            "to": rfc3339(until),
            "groups": [{"key": r.key, **shape(r)} for r in rows],
            "total": shape(total),
            # more groups than ``limit``: ``total`` still counts them all
            "truncated": truncated,
        }

    # ------------------------------------------------------------------ API keys
    def has_keys(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(t.api_keys.c.id).limit(1)).first() is not None

    def create_key(self, role: str, operator: str | None = None) -> tuple[str, ApiKey]:
        """Create a key; returns ``(key, record)``. The key is not kept anywhere."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "operator" and not operator:
            raise ValueError("an operator key needs an operator name")
        if role == "admin" and operator:
            raise ValueError("an admin key has no operator")
        if operator is not None and len(operator) > 64:
            raise ValueError("an operator name has at most 64 characters")
        key = new_key()
        rec = ApiKey(
            id="key_" + secrets.token_hex(6),
            role=role,  # type: ignore[arg-type]
            operator=operator,
            created_at=datetime.now(UTC),
            revoked_at=None,
            key_hash=hash_key(key),
        )
        with self.engine.begin() as c:
            c.execute(
                sa.insert(t.api_keys).values(
                    id=rec.id,
                    key_hash=rec.key_hash,
                    role=rec.role,
                    operator=rec.operator,
                    created_at=rec.created_at,
                )
            )
        return key, rec

    def list_keys(self) -> list[ApiKey]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t.api_keys).order_by(t.api_keys.c.created_at)).all()
        return [_key_from_row(r) for r in rows]

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key by id (idempotent); raises ``KeyError`` for an unknown id."""
        with self.engine.begin() as c:
            c.execute(
                sa.update(t.api_keys)
                .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            r = c.execute(sa.select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
        if r is None:
            raise KeyError(key_id)
        return _key_from_row(r)

    def lookup_key(self, key: str) -> ApiKey | None:
        """The record of a presented key, or None; compares hashes in constant time."""
        h = hash_key(key)
        with self.engine.connect() as c:
            r = c.execute(sa.select(t.api_keys).where(t.api_keys.c.key_hash == h)).first()
        if r is None or not hmac.compare_digest(r.key_hash, h):
            return None
        return _key_from_row(r)


class _BodyCache:
    """Decompressed batch bodies by batch id, the most recently used kept up to
    ``max_bytes`` in all (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, batch_id: str) -> bytes | None:
        with self._lock:
            raw = self._items.get(batch_id)
            if raw is not None:
                self._items.move_to_end(batch_id)
            return raw

    def put(self, batch_id: str, raw: bytes) -> None:
        if len(raw) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(batch_id, None)
            self._size += len(raw) - (0 if old is None else len(old))
            self._items[batch_id] = raw
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


def _check_record(r: Any, body: str) -> dict[str, Any]:
    return {
        "check_id": r.check_id,
        "operator": r.operator,
        "trip_id": r.trip_id,
        "bike_id": r.bike_id,
        "idempotency_key": r.idempotency_key,
        "batch_id": r.batch_id,
        "zone_set_version": r.zone_set_version,
        "policy": r.policy_id,
        "policy_version": r.policy_version,
        "decided_at": rfc3339(as_utc(r.decided_at)),
        "request": orjson.loads(body),
        "decision": orjson.loads(r.decision),
    }
