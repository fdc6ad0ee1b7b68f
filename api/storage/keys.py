"""API keys: made, hashed, stored, listed, revoked, looked up.

A key is shown once, when made; the store keeps only its SHA-256
(:func:`hash_key`), and a presented key is found by its hash and compared in constant
time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa

from api import schema as t
from api.storage.base import StoreBase
from api.storage.records import ROLES, ApiKey, _key_from_row

__all__ = ["KeyStore", "hash_key", "new_key"]


def new_key() -> str:
    """A fresh API key: ``gfk_`` and 43 URL-safe characters (256 random bits)."""
    return "gfk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """SHA-256 of a key, hex: the only form in which keys are stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyStore(StoreBase):
    """The API keys of :class:`api.storage.Store`."""

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
