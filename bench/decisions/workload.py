"""The setting of the decision benchmark: the zone set, operator, trip end and fix classes,
the confusion-matrix rows, the targets and the sweep; the ground truth of a workload
(:class:`Truth`, true distances in EPSG:4547 with shapely) and the workload as a
:class:`geofence.CheckBatch`; the engine's fingerprint and the git state a run records.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import shapely

import geofence
from geofence import crs as gcrs
from geofence.decisions import QUALITIES

ROOT = Path(__file__).resolve().parents[2]

RESULTS = ROOT / "bench" / "results"
ENGINE_SRC = ROOT / "geofence" / "decisions"  # the engine: the package's modules
ENGINE_FILES = sorted(p.name for p in ENGINE_SRC.glob("*.py"))


def engine_sha(read: Any) -> str:
    """SHA-256 (16 hex digits) over the engine's modules, ``read(name)`` each's bytes."""
    h = hashlib.sha256()
    for name in ENGINE_FILES:
        h.update(name.encode() + b"\0" + hashlib.sha256(read(name)).digest())
    return h.hexdigest()[:16]


ENGINE_SHA_AT_IMPORT = engine_sha(lambda name: (ENGINE_SRC / name).read_bytes())
ZONES = ROOT / "zones" / "data" / "zhuhai.geojson"
ENDED_AT = "2026-11-26T12:00:00+08:00"
OPERATOR = "meituan"
SEEDS = {"consumer": 20261126_1, "precise": 20261126_2}
FIXES_PER_TRIP = 5
FIX_INTERVAL_S = 2.0  # fixes 2 s apart, the last one at ended_at
FIX_CLASSES = ("consumer", "precise")
FIX_QUALITY = {"consumer": None, "precise": "rtk_fixed"}  # what each class's devices report
OUTCOMES = geofence.OUTCOMES
SETTLE, REJECT, REVIEW = (OUTCOMES.index(o) for o in ("settle", "reject", "review"))
# rows of the confusion matrices
ROWS = (
    "inside_eligible",
    "inside_closed",
    "beside_within_tol",
    "beside_beyond_tol",
    "near",
    "far",
    "inside_unfenced",
    "no_parking",
)
TARGET_WRONG_PCT = 0.5
TARGET_CORRECT_PRECISE_PCT = 98.0
SWEEP = {
    "settle_p": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
    "tolerance_m": [0.0, 0.15, 0.3, 0.5],
    "centre_p": [0.0, 0.95, 0.99],
}


def reasons_text(bits: int) -> str:
    names = [r for b, r in enumerate(geofence.REASONS) if bits >> b & 1]
    return "+".join(names) if names else "(none)"


def git_info() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": run("rev-parse", "HEAD"),
        "geofence_uncommitted": run("status", "--porcelain", "--", "geofence").splitlines(),
        "geofence_decisions_py_sha256": ENGINE_SHA_AT_IMPORT,
        "geofence_decisions_py_committed_sha256": engine_sha(
            lambda name: (
                subprocess.run(
                    ["git", "show", f"HEAD:geofence/decisions/{name}"],
                    cwd=ROOT,
                    capture_output=True,
                ).stdout
            )
        ),
    }


class Truth:
    """Ground truth of one workload, judged for ``operator`` at ``ended_at``."""

    def __init__(self, zs: geofence.ZoneSet, w: Any, eligible: np.ndarray, fenced_tree: Any):
        self.cls = w.truth
        self.n = len(w)
        self.x, self.y = (
            np.asarray(a, dtype=np.float64) for a in gcrs.project(w.true_lon, w.true_lat)
        )
        pts = shapely.points(self.x, self.y)
        # true distance to the nearest fenced box (any operator, any time): 0 inside
        _, dist = fenced_tree.query_nearest(pts, return_distance=True, all_matches=False)
        self.d_fenced = dist
        pos = zs.position
        self.zone = np.array([pos.get(z, -1) if z else -1 for z in w.truth_zone.tolist()])
        self.inside = self.cls == "inside"
        self.should_settle = self.inside & eligible[np.maximum(self.zone, 0)] & (self.zone >= 0)
        self.inside_closed = self.inside & ~self.should_settle
        self.pts = pts
        self.acc = w.accuracy_m[:, -1]

    def rows(self, tol: float) -> dict[str, np.ndarray]:
        c = self.cls
        return {
            "inside_eligible": self.should_settle,
            "inside_closed": self.inside_closed,
            "beside_within_tol": (c == "beside") & (self.d_fenced <= tol),
            "beside_beyond_tol": (c == "beside") & (self.d_fenced > tol),
            "near": c == "near",
            "far": c == "far",
            "inside_unfenced": c == "inside_unfenced",
            "no_parking": c == "no_parking",
        }

    def outside(self, tol: float) -> np.ndarray:
        """Truly outside every fenced box by more than ``tol``."""
        return ~self.inside & (self.d_fenced > tol)


def batch_of(w: Any, ended_at: float, operator: str, quality: str | None) -> geofence.CheckBatch:
    """The workload's checks as arrays; ``quality`` is every fix's (the precise class's
    locks report ``rtk_fixed``; phones report none)."""
    n, m = w.fix_lon.shape
    at = ended_at - FIX_INTERVAL_S * (m - 1 - np.arange(m, dtype=np.float64))
    return geofence.CheckBatch(
        lon=np.ascontiguousarray(w.fix_lon),
        lat=np.ascontiguousarray(w.fix_lat),
        accuracy_m=np.ascontiguousarray(w.accuracy_m),
        at=np.ascontiguousarray(np.broadcast_to(at, (n, m))),
        n_fixes=np.full(n, m, np.int64),
        ended_at=np.full(n, ended_at),
        heading_deg=np.full(n, np.nan),  # heading not sent: heading rules cannot fire
        beacon_zone=np.full(n, -1, np.int64),  # no road studs heard
        operator=operator,
        quality=None if quality is None else np.full((n, m), QUALITIES.index(quality), np.int8),
    )
