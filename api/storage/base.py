"""What every area of the store shares: the engine, the lock, a versioned table's moves.

:class:`StoreBase` holds the engine (:meth:`StoreBase.open` migrates the schema), its
dialect and :meth:`StoreBase.exclusive`, the lock across processes. Zone sets and
policies are both versioned tables with a single-row pointer at the active version and
a history of activations; :meth:`StoreBase._add_version` (a new row under the next
number) and :func:`_point` (move the pointer, record the move) serve both, so they
live here, below the two areas, written once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api import schema as t
from api.storage.engine import make_engine

__all__ = ["StoreBase"]


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


class StoreBase:
    """The engine and what the areas share; :class:`api.storage.Store` is all the areas."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Self:
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
