"""The database schema (SQLAlchemy Core) and its migrations.

Portable by construction: only SQLAlchemy types and constructs, JSON stored as
UTF-8 text, times as ``DateTime(timezone=True)`` always written in UTC. The same
tables work on SQLite (the embedded default) and PostgreSQL.

Migrations (the documented equivalent of Alembic): ``schema_version`` holds one row,
the number of the last migration applied. :func:`migrate` applies the missing steps
of :data:`MIGRATIONS` in order, each in its own transaction, and is called by every
command that touches the database, so they all work on an empty database in any
order. To change the schema, append a step; never edit an applied one.

Tables
------
``zone_sets``      one row per uploaded version: the FeatureCollection as received
                   (normalised JSON), its checksum, counts and validation report.
                   Versions are assigned by the store (1, 2, …) and never edited.
``active_zone_set`` a single row (``id = 1``): the active version. Activation is one
                   UPDATE, so it is atomic; ``activations`` keeps the history.
``policies``       the parameters of every decision policy ever used
                   (``Policy.to_mapping()``), by id, so a recorded decision can be
                   replayed with the policy it used.
``policy_versions`` one row per stored policy version (1, 2, …): its policy id, as
                   zone sets (migration 4). Two versions may share an id (the same
                   document stored twice).
``active_policy``  a single row (``id = 1``): the active policy version; activation
                   is one UPDATE; ``policy_activations`` keeps the history.
``checks``         the audit log: one row per decision, with the request as
                   received and the decision as answered, its policy id and version
                   and the check's device class (migration 4, for the calibration's
                   read-back). ``(operator, idempotency_key)`` is unique (one key space
                   across the single and batch routes: a batch's rows carry ``key``,
                   ``key/1``, …); indexed by time, operator and time, batch, zone
                   and time, trip and time (migration 5). A batch's check (migration
                   6) has no body of its own: ``body_start``/``body_end`` point into
                   its batch's body in ``batch_bodies``.
``batch_bodies``   a batch's request body as received, once, zstd-compressed.
                   and time, trip and time (migration 5). On PostgreSQL partitioned by
                   month of ``decided_at`` (migration 7, :mod:`api.storage.partitions`): the
                   primary key is ``(check_id, decided_at)`` there, and the key
                   uniqueness lives in ``check_keys``; this definition is SQLite's and
                   the columns every query uses.
``check_keys``     PostgreSQL only (migration 7): ``(operator, idempotency_key)`` ->
                   ``(check_id, decided_at)``, the primary key that refuses a key's
                   second use, filled by a trigger on ``checks``.
``api_keys``       SHA-256 hashes of the API keys (never the keys), role, operator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "activations",
    "active_policy",
    "active_zone_set",
    "api_keys",
    "batch_bodies",
    "check_keys",
    "checks",
    "file_lock",
    "metadata",
    "migrate",
    "policies",
    "policy_activations",
    "policy_versions",
    "schema_version",
    "zone_set_snapshots",
    "zone_sets",
]

metadata = sa.MetaData()

_TS = sa.DateTime(timezone=True)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("migrated_at", _TS, nullable=False),
)

zone_sets = sa.Table(
    "zone_sets",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("prev_version", sa.Integer, nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("n_zones", sa.Integer, nullable=False),
    sa.Column("n_parking", sa.Integer, nullable=False),
    sa.Column("n_fenced", sa.Integer, nullable=False),
    sa.Column("n_no_parking", sa.Integer, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
)

#: a stored version's zone set as plain arrays (geofence.ZoneSet.to_snapshot): a restart
#: rebuilds it in ~0.1 s instead of parsing and checking the document again (~1.3 s for
#: Zhuhai); the document stays the record, a snapshot of another format is ignored
zone_set_snapshots = sa.Table(
    "zone_set_snapshots",
    metadata,
    sa.Column("version", sa.Integer, sa.ForeignKey("zone_sets.version"), primary_key=True),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

active_zone_set = sa.Table(
    "active_zone_set",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, sa.ForeignKey("zone_sets.version"), nullable=False),
    sa.Column("activated_at", _TS, nullable=False),
)

activations = sa.Table(
    "activations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, sa.ForeignKey("zone_sets.version"), nullable=False),
    sa.Column("previous", sa.Integer, nullable=True),
    sa.Column("activated_at", _TS, nullable=False),
    sa.Column("actor", sa.String(64), nullable=True),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("policy_id", sa.String(128), primary_key=True),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

checks = sa.Table(
    "checks",
    metadata,
    sa.Column("check_id", sa.String(40), primary_key=True),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("trip_id", sa.String(256), nullable=False),
    sa.Column("bike_id", sa.String(256), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("batch_id", sa.String(40), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("zone_id", sa.Text, nullable=True),  # zone ids and districts: any length
    sa.Column("district", sa.Text, nullable=True),
    sa.Column("zone_set_version", sa.Integer, nullable=True),
    sa.Column("policy_id", sa.String(128), nullable=False),
    sa.Column("ended_at", _TS, nullable=True),
    sa.Column("decided_at", _TS, nullable=False),
    sa.Column("decided_day", sa.String(10), nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=True),  # migration 4
    sa.Column("device_class", sa.String(64), nullable=True),  # migration 4
    # migration 6: a batch's check reads its body from ``batch_bodies`` (these bytes of
    # the batch's request body); its own ``body`` is then empty
    sa.Column("body_start", sa.Integer, nullable=True),
    sa.Column("body_end", sa.Integer, nullable=True),
    sa.UniqueConstraint("operator", "idempotency_key", name="uq_checks_operator_idempotency"),
    sa.Index("ix_checks_decided_at", "decided_at"),
    sa.Index("ix_checks_operator_decided_at", "operator", "decided_at"),
    sa.Index("ix_checks_batch", "batch_id"),
    sa.Index("ix_checks_zone_decided_at", "zone_id", "decided_at"),  # migration 2
    sa.Index("ix_checks_trip_decided_at", "trip_id", "decided_at"),  # migration 5
)

#: a batch's request body as received, once, zstd-compressed (migration 6): each of its
#: checks' rows points into it (``body_start``, ``body_end``: bytes of the decompressed
#: body). Committed in the same transaction as the rows; ``geofence audit prune``
#: removes the bodies no row points to.
batch_bodies = sa.Table(
    "batch_bodies",
    metadata,
    sa.Column("batch_id", sa.String(40), primary_key=True),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("decided_at", _TS, nullable=False),
    sa.Column("n_checks", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

#: PostgreSQL only (migration 7): the idempotency key space of the partitioned
#: ``checks`` (a unique constraint there would have to contain ``decided_at``)
check_keys = sa.Table(
    "check_keys",
    metadata,
    sa.Column("operator", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("check_id", sa.String(40), nullable=False),
    sa.Column("decided_at", _TS, nullable=False),
    sa.Index("ix_check_keys_decided_at", "decided_at"),  # prune
)

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("policy_id", sa.String(128), sa.ForeignKey("policies.policy_id"), nullable=False),
    sa.Column("prev_version", sa.Integer, nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("actor", sa.String(64), nullable=True),
)

active_policy = sa.Table(
    "active_policy",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, sa.ForeignKey("policy_versions.version"), nullable=False),
    sa.Column("activated_at", _TS, nullable=False),
)

policy_activations = sa.Table(
    "policy_activations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, sa.ForeignKey("policy_versions.version"), nullable=False),
    sa.Column("previous", sa.Integer, nullable=True),
    sa.Column("activated_at", _TS, nullable=False),
    sa.Column("actor", sa.String(64), nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("operator", sa.String(64), nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("revoked_at", _TS, nullable=True),
)


def _v1(conn: Connection) -> None:
    """Create every table of the first schema."""
    metadata.create_all(
        conn,
        tables=[zone_sets, active_zone_set, activations, policies, checks, api_keys],
        checkfirst=True,
    )


def _v2(conn: Connection) -> None:
    """Index the audit log by zone and time (per-zone statistics, the map); on
    PostgreSQL, free zone ids and district names of a length limit (SQLite has none)."""
    ix = next(i for i in checks.indexes if i.name == "ix_checks_zone_decided_at")
    ix.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "ALTER TABLE checks ALTER COLUMN zone_id TYPE TEXT, ALTER COLUMN district TYPE TEXT"
        )


def _v3(conn: Connection) -> None:
    """Zone-set snapshots, for a fast restart."""
    zone_set_snapshots.create(conn, checkfirst=True)


def _v4(conn: Connection) -> None:
    """Versioned policies (stored, activated and followed like zone sets); each recorded
    decision's policy version and the check's device class (the calibration reads the
    audit log back per class). Old rows keep NULL in both."""
    for table in (policy_versions, active_policy, policy_activations):
        table.create(conn, checkfirst=True)
    have = {c["name"] for c in sa.inspect(conn).get_columns("checks")}
    for name in ("policy_version", "device_class"):  # a new database has them (step 1)
        if name not in have:
            col = checks.c[name]
            kind = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE checks ADD COLUMN {name} {kind}")


def _v5(conn: Connection) -> None:
    """``GET /v1/checks?trip_id=``: the audit log indexed by trip (then time). Not by
    bike: each index on a key in no time order costs the audit writer a page per row
    (measured on SQLite, 10,000-row commits into 300,000 rows: the trip index 1.13x
    with sequential trip ids, 1.8x with random ones; a bike index too, 2.1-2.4x), and a
    bike's checks are read within a time range. One idempotency key space per operator
    across the single and batch routes: a batch's first row now carries the key itself,
    not ``key/0``; rename the old rows (unless a single check took the bare key
    meanwhile: that row keeps it)."""
    ix = next(i for i in checks.indexes if i.name == "ix_checks_trip_decided_at")
    ix.create(conn, checkfirst=True)
    c = checks.c
    rows = conn.execute(
        sa.select(c.check_id, c.operator, c.idempotency_key).where(
            c.batch_id.is_not(None), c.idempotency_key.like("%/0")
        )
    ).all()
    for check_id, operator, key in rows:
        bare = key[:-2]
        if not key.endswith("/0") or "/" in bare:
            continue
        taken = conn.execute(
            sa.select(c.check_id).where(c.operator == operator, c.idempotency_key == bare)
        ).first()
        if taken is None:
            conn.execute(
                sa.update(checks).where(c.check_id == check_id).values(idempotency_key=bare)
            )


def _v6(conn: Connection) -> None:
    """A batch's request body stored once, compressed (``batch_bodies``), its checks'
    rows pointing into it (``body_start``, ``body_end``): measured, the verbatim body of
    every row was most of the audit log's bytes and of the writer's CPU per batch. Old
    rows keep their inline body (NULL pointers) and read as before."""
    batch_bodies.create(conn, checkfirst=True)
    have = {c["name"] for c in sa.inspect(conn).get_columns("checks")}
    for name in ("body_start", "body_end"):  # a new database has them (step 1)
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE checks ADD COLUMN {name} INTEGER")


def _partition_checks(conn: Connection) -> None:
    """PostgreSQL: the audit log partitioned by month (:mod:`api.storage.partitions`), every row
    copied in this step's transaction; the idempotency keys in ``check_keys``. SQLite:
    nothing (its plain table stays)."""
    if conn.dialect.name == "postgresql":
        from datetime import UTC, datetime

        from api.storage.partitions import partition_checks

        partition_checks(conn, datetime.now(UTC))


#: Ordered migration steps: step ``i`` (1-based) brings the schema to version ``i``.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    _v6,
    _partition_checks,
)
SCHEMA_VERSION = len(MIGRATIONS)


#: The advisory lock of migrations on PostgreSQL (any constant; "geofence" in ASCII)
_MIGRATION_LOCK = 0x67656F66656E6365


def _serialise(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))


@contextlib.contextmanager
def file_lock(engine: sa.Engine, name: str = "migrate") -> Iterator[None]:
    """On a SQLite file, an exclusive ``flock`` named ``name`` beside it (for migrations:
    servers on one host starting together; SQLite's DDL runs outside the driver's
    transactions, so two processes could both see a table missing and both create
    it); elsewhere nothing."""
    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:":
        yield
        return
    import fcntl

    with open(f"{db}.{name}.lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def migrate(engine: sa.Engine, upto: int | None = None) -> int:
    """Create or upgrade the schema to :data:`SCHEMA_VERSION` (or to version ``upto``:
    the tests' and benchmarks' databases of an earlier schema); returns the version.

    Safe to call from several processes at once: each step runs in one transaction
    and re-reads the version inside it; on PostgreSQL, where several servers may
    start together on an empty database, each transaction first takes an advisory
    lock, so the steps run once, one process at a time; on a SQLite file, the whole
    migration holds a file lock.
    """
    with file_lock(engine):
        return _migrate(engine, SCHEMA_VERSION if upto is None else upto)


def _months_ahead(conn: Connection, now: Any) -> None:
    """PostgreSQL: the audit log's partitions of this month and the next ones, created
    at every migration (every start) if missing (:func:`api.storage.partitions.ensure_months`)."""
    if conn.dialect.name == "postgresql":
        from api.storage.partitions import ensure_months, is_partitioned

        if not is_partitioned(conn):
            return
        try:
            with conn.begin_nested():
                # a start must not wait behind a long query, nor make inserts wait
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                ensure_months(conn, now)
        except sa.exc.OperationalError as exc:
            import logging

            logging.getLogger("geofence.schema").warning(
                "the audit log's partitions of the coming months were not created "
                "(%s); their checks go to the default partition until the next start",
                str(exc).splitlines()[0],
            )


def _migrate(engine: sa.Engine, upto: int) -> int:
    from datetime import UTC, datetime

    with engine.begin() as conn:
        _serialise(conn)
        schema_version.create(conn, checkfirst=True)
    while True:
        with engine.begin() as conn:
            _serialise(conn)
            row = conn.execute(
                sa.select(schema_version.c.version).where(schema_version.c.id == 1)
            ).first()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database schema is version {current}, newer than this code "
                    f"({SCHEMA_VERSION}): upgrade the code"
                )
            if current >= upto:
                _months_ahead(conn, now=datetime.now(UTC))
                return current
            MIGRATIONS[current](conn)
            now = datetime.now(UTC)
            if row is None:
                conn.execute(
                    sa.insert(schema_version).values(id=1, version=current + 1, migrated_at=now)
                )
            else:
                conn.execute(
                    sa.update(schema_version)
                    .where(schema_version.c.id == 1, schema_version.c.version == current)
                    .values(version=current + 1, migrated_at=now)
                )
