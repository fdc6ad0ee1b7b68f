"""The engine and the values read back through it: times in UTC, days in Zhuhai, pages.

:func:`make_engine` builds the one engine a store (or the audit writer's process,
:mod:`api.audit.child`) opens: a pool on PostgreSQL, WAL and ``PRAGMA synchronous`` on
SQLite; the URL is the only difference. The helpers below shape what every area reads
back (SQLite returns naive UTC; the API speaks RFC 3339 in UTC and China's calendar
days), and :func:`keyset_before` is the newest-first page condition the audit log and
the map's lists share.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = [
    "CHINA_STANDARD_TIME",
    "as_utc",
    "china_day",
    "keyset_before",
    "make_engine",
    "rfc3339",
]

#: Days in ``GET /v1/stats?group_by=day`` are calendar days in Zhuhai (UTC+8, no DST).
CHINA_STANDARD_TIME = timedelta(hours=8)


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
