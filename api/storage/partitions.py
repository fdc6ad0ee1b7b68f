"""PostgreSQL: the audit log partitioned by month, and its retention.

On PostgreSQL ``checks`` is a partitioned table (``PARTITION BY RANGE (decided_at)``),
one partition per calendar month in UTC (``checks_p202612`` holds
``[2026-12-01T00:00Z, 2027-01-01T00:00Z)``) and a ``DEFAULT`` partition
(``checks_default``), so that no insert ever fails for a month nobody created. SQLite
keeps its plain table: nothing here runs there.

Why partitions: retention. ``geofence audit prune --before T`` drops each month that
lies wholly before ``T`` (``DROP TABLE`` of a partition: no row-by-row delete, no
bloat, no vacuum, whatever its size) and deletes only the rows of the month ``T``
falls in (and of the default partition) one by one (:func:`prune_partitions`: how it
keeps the audit writer from waiting behind a drop).

What partitioning costs, and how it is paid:

- Every unique constraint of a partitioned table must contain the partition key, so
  ``(operator, idempotency_key)`` (one key space per operator across the single and
  batch routes; the constraint that settles idempotency races) cannot stay on
  ``checks``. It lives on a small unpartitioned table, ``check_keys`` (its primary
  key), filled by a row trigger on ``checks`` (``AFTER INSERT ... WHEN`` the row
  carries a request's key) in the inserting statement. One row per request, not per
  check: a batch's first row carries the request's key, its others ``key/1``,
  ``key/2`` … (:meth:`api.storage.Store.find_idempotent`), and as a request's key has
  no ``/`` only that batch could ever use them; they are not claimed. A key used
  twice raises the same unique violation from the same ``INSERT INTO checks`` as
  before, so the audit writer (:mod:`api.audit`) answers ``CONFLICT`` unchanged, and a
  race is settled by the key table's index exactly as it was by the checks table's.
  Why a trigger and not a second insert in the writer: the writer stays one statement
  and knows nothing of partitions; every other insert path (the tests'
  ``Store.insert_checks``, a migration's copy, a ``COPY``) is covered too. AFTER
  rather than BEFORE: AFTER row triggers work on a partitioned table from PostgreSQL
  11 (BEFORE from 13), and a BEFORE row trigger turns off ``COPY``'s batched inserts.
- The audit log is append-only, and must stay so: an ``UPDATE`` of ``decided_at``
  that moved a row to another month is an insert into that partition, which would
  claim its key again (and be refused). Moving a month's rows out of the default
  partition (:func:`ensure_months`) is done on a table not yet attached, without the
  trigger.
- The primary key is ``(check_id, decided_at)``: ``check_id`` is no longer unique by
  itself in the database. It is a ULID drawn by the server (80 random bits per
  millisecond), unique by construction; the key table keeps ``check_id`` too, so
  ``find_idempotent`` reads the first row of a key by ``(check_id, decided_at)``, one
  partition.
- A look-up by ``check_id`` alone would probe the primary key's index of every
  partition, and plan them all (measured with 16 partitions: 240 µs of planning and
  75 µs of execution on the server against 34 and 18 µs on the plain table). But a
  check id is a ULID (:func:`api.service.new_id`): its first 48 bits are the
  millisecond it was drawn, a few milliseconds from the ``decided_at`` the same
  request records. :func:`id_window` turns it into a time range of a day either side,
  so ``GET /v1/checks/{id}`` reads one partition (two at a month's edge) and falls
  back to every partition only when that finds nothing (an id of another form, a
  404).

Partitions are created ahead: :func:`ensure_months` makes the current month's and
the next :data:`MONTHS_AHEAD`' partitions, run by every migration (every command that
opens the database and every server start, :func:`api.storage.schema.migrate`) under the
migration lock, waiting 5 s at most for its locks (then the start goes on and the
months come at the next one). Rows that landed in the default partition (a server
that ran for months without a restart) are moved into their month's partition when it
is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection, Engine

__all__ = [
    "DEFAULT",
    "KEYS",
    "MONTHS_AHEAD",
    "Partition",
    "PruneBlocked",
    "ensure_months",
    "id_window",
    "is_partitioned",
    "month_of",
    "partition_checks",
    "partitions",
    "prune_partitions",
]

#: Months created ahead of the current one
MONTHS_AHEAD = 3
#: The default partition (rows of a month without a partition of its own)
DEFAULT = "checks_default"
#: The idempotency keys' table
KEYS = "check_keys"

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of ``checks``: its table and ``[lo, hi)`` (None for the default)."""

    name: str
    lo: datetime | None
    hi: datetime | None


def month_of(dt: datetime) -> datetime:
    """The first instant (UTC) of ``dt``'s calendar month in UTC."""
    d = dt.astimezone(UTC)
    return datetime(d.year, d.month, 1, tzinfo=UTC)


def _next(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _name(month: datetime) -> str:
    return f"checks_p{month.year:04d}{month.month:02d}"


def _lit(dt: datetime) -> str:
    """A timestamptz literal (only ever of a datetime built here)."""
    return "'" + dt.astimezone(UTC).isoformat() + "'"


_CROCKFORD = {ch: i for i, ch in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
#: how far from its id's time a check's ``decided_at`` is looked for first
ID_SLACK = timedelta(days=1)


def id_window(check_id: str) -> tuple[datetime, datetime] | None:
    """``[t - 1 day, t + 1 day)`` around the time ``t`` a ULID check id (``c_`` and 26
    Crockford base-32 characters, :func:`api.service.new_id`) was drawn; None for an
    id of another form."""
    body = check_id[2:]
    if len(body) != 26:
        return None
    ms = 0
    for ch in body[:10]:  # 50 bits: 2 zero bits, then the 48 bits of the millisecond
        v = _CROCKFORD.get(ch)
        if v is None:
            return None
        ms = ms * 32 + v
    try:
        at = datetime.fromtimestamp(ms / 1000, UTC)
        return at - ID_SLACK, at + ID_SLACK
    except (OverflowError, ValueError, OSError):  # past year 9999: not a time
        return None


def is_partitioned(conn: Connection) -> bool:
    """Whether ``checks`` is a partitioned table (PostgreSQL after the migration)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('checks')"
    ).scalar()
    return kind == "p"


def partitions(conn: Connection) -> list[Partition]:
    """The partitions of ``checks``, oldest first, the default last."""
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
    conn.exec_driver_sql("SET LOCAL DateStyle = 'ISO'")
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('checks')"
    ).all()
    out: list[Partition] = []
    default: list[Partition] = []
    for name, bound in rows:
        m = _BOUND.search(bound or "")
        if m is None:
            default.append(Partition(name, None, None))
            continue
        lo, hi = (datetime.fromisoformat(x).astimezone(UTC) for x in m.groups())
        out.append(Partition(name, lo, hi))
    out.sort(key=lambda p: p.lo)  # type: ignore[arg-type, return-value]
    return out + default


def _add_month(conn: Connection, month: datetime, have_default: bool) -> None:
    """Create ``month``'s partition; its rows in the default partition move into it.

    Built beside and attached, not ``CREATE TABLE … PARTITION OF``: an attach takes
    ``SHARE UPDATE EXCLUSIVE`` on ``checks`` (inserts and reads go on; ``ACCESS
    EXCLUSIVE`` only on the default partition, which it checks holds no row of the
    month), a create ``ACCESS EXCLUSIVE`` on ``checks``: behind a long export, every
    insert would queue behind it. The attach builds the partition's indexes (on an
    empty table: nothing) and clones the trigger.
    """
    name, lo, hi = _name(month), _lit(month), _lit(_next(month))
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE checks INCLUDING DEFAULTS)")
    if have_default:  # PostgreSQL refuses the attach while the default holds such rows
        conn.exec_driver_sql(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE decided_at >= {lo} "
            f"AND decided_at < {hi} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        )
    conn.exec_driver_sql(
        f"ALTER TABLE checks ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"
    )


def ensure_months(
    conn: Connection, now: datetime, *, ahead: int = MONTHS_AHEAD, since: datetime | None = None
) -> list[str]:
    """Create the partitions of the months from ``since`` (default: ``now``'s) to
    ``ahead`` months after ``now``'s, and the default partition, where missing; the
    names created. A no-op (two catalog reads) when they all exist."""
    have = partitions(conn)
    covered = [(p.lo, p.hi) for p in have if p.lo is not None]
    has_default = any(p.lo is None for p in have)
    made: list[str] = []
    month = month_of(since if since is not None and since < now else now)
    last = month_of(now)
    for _ in range(ahead):
        last = _next(last)
    while month <= last:
        end = _next(month)
        if not any(lo < end and month < hi for lo, hi in covered):  # type: ignore[operator]
            _add_month(conn, month, has_default)
            made.append(_name(month))
        month = end
    if not has_default:
        conn.exec_driver_sql(f"CREATE TABLE {DEFAULT} PARTITION OF checks DEFAULT")
        made.append(DEFAULT)
    return made


#: the rows whose key is claimed: a request's own key (a key has no ``/``), not the
#: ``key/1``, ``key/2`` … of a batch's other rows, which only that batch can use
_CLAIMS = "{0}idempotency_key IS NOT NULL AND strpos({0}idempotency_key, '/') = 0"
_KEY_TRIGGER = f"""
CREATE FUNCTION checks_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {KEYS} (operator, idempotency_key, check_id, decided_at)
    VALUES (NEW.operator, NEW.idempotency_key, NEW.check_id, NEW.decided_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER checks_claim_key AFTER INSERT ON checks FOR EACH ROW
    WHEN ({_CLAIMS.format("NEW.")}) EXECUTE FUNCTION checks_claim_key();
"""


def partition_checks(conn: Connection, now: datetime) -> None:
    """Turn the plain ``checks`` table into the partitioned one, on ``conn``'s
    transaction (the migration's): every row copied, the key table filled, the indexes
    of the plain table built on the partitioned one. A no-op if already done.

    The new table is ``LIKE`` the old (so columns added by any earlier step come
    along, in order); the indexes and the primary key are built after the copy (one
    sort per index rather than a B-tree insert per row).
    """
    from api.storage import schema as t

    if is_partitioned(conn):
        return
    old = "checks_unpartitioned"
    conn.exec_driver_sql(f"ALTER TABLE checks RENAME TO {old}")
    # index and constraint names are the schema's: free them for the new table's
    for name in conn.exec_driver_sql(
        f"SELECT conname FROM pg_constraint WHERE conrelid = '{old}'::regclass "
        "AND contype IN ('p', 'u')"
    ).scalars():
        conn.exec_driver_sql(f'ALTER TABLE {old} DROP CONSTRAINT "{name}"')
    for name in conn.exec_driver_sql(
        f"SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = '{old}'::regclass"
    ).scalars():
        conn.exec_driver_sql(f"DROP INDEX {name}")
    conn.exec_driver_sql(
        f"CREATE TABLE checks (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (decided_at)"
    )
    t.check_keys.create(conn)
    first = conn.exec_driver_sql(f"SELECT min(decided_at) FROM {old}").scalar()
    ensure_months(conn, now, since=first)
    conn.exec_driver_sql(f"INSERT INTO checks SELECT * FROM {old}")
    claimed = _CLAIMS.format("")
    conn.exec_driver_sql(
        f"INSERT INTO {KEYS} (operator, idempotency_key, check_id, decided_at) "
        f"SELECT operator, idempotency_key, check_id, decided_at FROM {old} WHERE {claimed}"
    )
    conn.exec_driver_sql("ALTER TABLE checks ADD PRIMARY KEY (check_id, decided_at)")
    for ix in t.checks.indexes:
        ix.create(conn)
    conn.exec_driver_sql(_KEY_TRIGGER)
    conn.exec_driver_sql(f"DROP TABLE {old}")


#: how long a drop waits for its lock on ``checks`` before it gives up and tries again
#: (the audit writer's inserts queue behind a waiting drop: this bounds their wait)
LOCK_TIMEOUT = "2s"
#: how many times
LOCK_TRIES = 30


def prune_partitions(engine: Engine, before: datetime) -> int:
    """Remove the checks decided before ``before``; the number removed.

    Each month wholly before ``before``: in a transaction of its own, its key rows
    deleted, its rows counted, its partition dropped. Dropping a partition takes
    ``ACCESS EXCLUSIVE`` on ``checks`` until the commit (right after), and while it
    waits for that lock (behind a long export, say) the audit writer's inserts queue
    behind it: so it waits :data:`LOCK_TIMEOUT` at most, and the month is tried again
    after a pause, up to :data:`LOCK_TRIES` times (then :class:`PruneBlocked`, saying
    how many were removed). Then, in one transaction, the rows before ``before`` of
    the month it falls in and of the default partition, and their key rows, are
    deleted. Each transaction removes its checks and their keys together: a key is
    free again exactly when its check is gone.
    """
    import time

    from sqlalchemy.exc import OperationalError

    cut = _lit(before)
    with engine.begin() as c:
        parts = partitions(c)
    n = 0
    whole = [(p.name, p.lo, p.hi) for p in parts if p.lo and p.hi and p.hi <= before]
    for name, lo, hi in whole:
        for attempt in range(LOCK_TRIES):
            try:
                with engine.begin() as c:
                    c.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    c.exec_driver_sql(
                        f"DELETE FROM {KEYS} WHERE decided_at >= {_lit(lo)} "
                        f"AND decided_at < {_lit(hi)}"
                    )
                    # SHARE on the month itself: nothing inserts there between the count
                    # and the drop (and the writer, inserting into this month, goes on)
                    c.exec_driver_sql(f"LOCK TABLE {name} IN SHARE MODE")
                    k = int(c.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() or 0)
                    c.exec_driver_sql(f"DROP TABLE {name}")
                n += k
                break
            except OperationalError as exc:
                timed_out = getattr(exc.orig, "sqlstate", None) == "55P03"  # lock_not_available
                if not timed_out:
                    raise
                if attempt == LOCK_TRIES - 1:
                    raise PruneBlocked(name, n) from exc
                time.sleep(min(1.0, 0.1 * (attempt + 1)))
    with engine.begin() as c:
        for p in partitions(c):
            if p.hi is None or (p.lo is not None and p.lo < before < p.hi):
                n += c.exec_driver_sql(f"DELETE FROM {p.name} WHERE decided_at < {cut}").rowcount
        c.exec_driver_sql(f"DELETE FROM {KEYS} WHERE decided_at < {cut}")
    return n


class PruneBlocked(RuntimeError):
    """A month's partition could not be dropped: its lock was never granted."""

    def __init__(self, name: str, removed: int) -> None:
        super().__init__(
            f"could not drop {name}: the lock on checks was not granted within "
            f"{LOCK_TIMEOUT} in {LOCK_TRIES} tries (a long query holds it); "
            f"{removed} checks were removed before it: run prune again later"
        )
        self.removed = removed
