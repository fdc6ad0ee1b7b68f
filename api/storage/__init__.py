"""The store: zone-set and policy versions, their active pointers, the audit log, API keys.

SQLAlchemy Core over SQLite (WAL mode, a file under ``var/``) or PostgreSQL; the
URL is the only difference. Every method is synchronous and thread-safe (one
engine, a connection pool); the web layer calls them from worker threads. The
audit log is written through :class:`api.audit.AuditWriter` (group commit), and
read here. The tables and their migrations are :mod:`api.schema`; the audit log's
monthly partitions on PostgreSQL, :mod:`api.partitions`.

This package is the public face: everything is imported from ``api.storage``. Its
modules, one area each:

* :mod:`~api.storage.engine`: :func:`make_engine`, and the values read back (times in
  UTC, RFC 3339, China's calendar days, the newest-first page condition);
* :mod:`~api.storage.records`: the frozen records reads return (:class:`ApiKey`,
  :class:`Idempotent`, :class:`ZoneSetInfo`, :class:`PolicyInfo`) and their rows;
* :mod:`~api.storage.base`: what the areas share: the engine, :meth:`Store.open`, the
  lock across processes, and a versioned table's two moves (a new version, activation);
* :mod:`~api.storage.zonesets`: zone-set versions, snapshots, activations;
* :mod:`~api.storage.policies`: policies and policy versions, and the poll of both
  active versions;
* :mod:`~api.storage.checks`: the audit log's reads (idempotency, one check, search,
  export walk, stats) and the cache of decompressed batch bodies they share;
* :mod:`~api.storage.keys`: API keys, stored as hashes.

Why :class:`Store` is composed of one class per area (each a :class:`StoreBase`) rather
than delegating to per-area objects: every caller (the web layer, the CLI, the benches,
the tests) calls ``store.<method>`` on one object, some forty methods. Delegation would
either change every call site or forward each method by hand (a second copy of every
signature); the areas' classes keep one object and one method set, each method written
once in its area's module, and the areas share nothing but :class:`StoreBase` (the
audit log's body cache is that area's own state).
"""

from __future__ import annotations

from api.storage.checks import BODY_CACHE_BYTES, CheckStore, GroupBy
from api.storage.engine import (
    CHINA_STANDARD_TIME,
    as_utc,
    china_day,
    keyset_before,
    make_engine,
    rfc3339,
)
from api.storage.keys import KeyStore, hash_key, new_key
from api.storage.policies import PolicyStore
from api.storage.records import ROLES, ApiKey, Idempotent, PolicyInfo, Role, ZoneSetInfo
from api.storage.zonesets import ZoneSetStore

__all__ = [
    "BODY_CACHE_BYTES",
    "CHINA_STANDARD_TIME",
    "ROLES",
    "ApiKey",
    "GroupBy",
    "Idempotent",
    "PolicyInfo",
    "Role",
    "Store",
    "ZoneSetInfo",
    "as_utc",
    "china_day",
    "hash_key",
    "keyset_before",
    "make_engine",
    "new_key",
    "rfc3339",
]


class Store(ZoneSetStore, PolicyStore, CheckStore, KeyStore):
    """The database behind the service. Build with :meth:`open` (migrates the schema)."""
