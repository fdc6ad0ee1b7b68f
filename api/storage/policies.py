"""Decision policies: their parameters by id, and their versions and activation.

``policies`` keeps each policy id's parameters once (``Policy.to_mapping()``);
``policy_versions`` are versions of the active choice, moved like the zone sets'
(:func:`api.storage.base._point`). :meth:`PolicyStore.active_versions` reads both
pointers in one query: the poll by which every worker follows an activation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from api import schema as t
from api.storage.base import StoreBase, _point
from api.storage.records import PolicyInfo, _policy_from_row

__all__ = ["PolicyStore"]


class PolicyStore(StoreBase):
    """The policies and policy versions of :class:`api.storage.Store`."""

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
