"""What a decision answers: :class:`Decision` (one check) and :class:`DecisionBatch`
(arrays from :func:`~geofence.decisions.decide_arrays`), and the reason names of a bit set.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geofence.decisions.inputs import OUTCOMES, REASONS, Policy, _rfc3339
from geofence.decisions.tables import _tables, _zone_info
from geofence.index import ZoneIndex


@dataclass(frozen=True)
class Decision:
    """The outcome of one check, with the evidence and the versions that decided it."""

    outcome: str
    zone: Mapping[str, Any] | None
    p_inside: float
    distance_m: float | None
    nearest: tuple[Mapping[str, Any], ...]
    reasons: tuple[str, ...]
    zone_set_version: int | None
    policy: str
    check_id: str | None
    decided_at: float
    position: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping with the DESIGN §3 fields (``decided_at`` as RFC 3339)."""
        return {
            "outcome": self.outcome,
            "zone": dict(self.zone) if self.zone is not None else None,
            "p_inside": self.p_inside,
            "distance_m": self.distance_m,
            "nearest": [dict(n) for n in self.nearest],
            "reasons": list(self.reasons),
            "zone_set_version": self.zone_set_version,
            "policy": self.policy,
            "check_id": self.check_id,
            "decided_at": _rfc3339(self.decided_at),
            "position": dict(self.position),
        }


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions as arrays (see :func:`decide_arrays`); ``decision(i)`` gives one."""

    index: ZoneIndex
    policy: Policy
    now: float
    outcome: np.ndarray  # int8 codes into OUTCOMES
    reasons: np.ndarray  # int32 bit sets over REASONS
    zone: np.ndarray  # matched zone position or -1
    p_inside: np.ndarray
    distance_m: np.ndarray  # signed, NaN without a zone
    nearest_pos: np.ndarray  # (n, k) positions, -1 padded
    nearest_dist: np.ndarray
    nearest_bearing: np.ndarray
    lon: np.ndarray  # fused position, WGS-84
    lat: np.ndarray
    accuracy_m: np.ndarray  # fused 68 % radius

    def __len__(self) -> int:
        return len(self.outcome)

    def decision(self, i: int, check_id: str | None = None) -> Decision:
        """Decision ``i`` as a :class:`Decision`."""
        zs = self.index.zone_set
        t = _tables(self.index, self.policy.tolerance_m)
        ids = t.ids
        z = int(self.zone[i])
        zone = None if z < 0 else dict(_zone_info(self.index, t, z))
        nearest = tuple(
            {
                "zone_id": ids[p],
                "distance_m": round(d, 2),
                "bearing_deg": round(b, 1),
            }
            for p, d, b in zip(
                self.nearest_pos[i].tolist(),
                self.nearest_dist[i].tolist(),
                self.nearest_bearing[i].tolist(),
                strict=True,
            )
            if p >= 0
        )
        bits = int(self.reasons[i])
        dist = float(self.distance_m[i])
        return Decision(
            outcome=OUTCOMES[int(self.outcome[i])],
            zone=zone,
            p_inside=round(float(self.p_inside[i]), 4),
            distance_m=None if math.isnan(dist) else round(dist, 2),
            nearest=nearest,
            reasons=_reason_names(bits),
            zone_set_version=zs.version,
            policy=self.policy.id,
            check_id=check_id,
            decided_at=self.now,
            position={
                "lon": round(float(self.lon[i]), 7),
                "lat": round(float(self.lat[i]), 7),
                "accuracy_m": round(float(self.accuracy_m[i]), 2),
            },
        )


@functools.lru_cache(maxsize=1024)
def _reason_names(bits: int) -> tuple[str, ...]:
    """The reason codes set in ``bits``, in REASONS order."""
    return tuple(r for b, r in enumerate(REASONS) if bits >> b & 1)
