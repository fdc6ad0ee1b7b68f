"""Settlement decisions that respect GPS uncertainty: settle, reject or review.

A trip end's evidence (a trail of fixes, each with a 68 % accuracy radius, an
optional heading and Bluetooth road studs heard) becomes the probability that the
bike stands in a fenced parking box, and then an outcome with stable reason codes.
Everything here is a pure function of (index, check, policy, now): replaying a
recorded check against the same zone-set version and policy gives the same
decision.

The modules
-----------
- ``inputs``: the constants (outcomes, reason codes and bits, qualities, limits), the
  checks and policies (:class:`Fix`, :class:`BeaconReading`, :class:`Check`,
  :class:`Policy`, :class:`CheckBatch`) and the parsing of their fields.
- ``outputs``: :class:`Decision` and :class:`DecisionBatch`, and reason names of bits.
- ``_jit``: numba's decorators for the kernels (cached on disk) and the index's
  helpers compiled for them.
- ``fusion``: :func:`~geofence.decisions.fusion._fuse` (a trail to one position and
  sigma), its allocation-free medians and sorting networks.
- ``probability``: ``p_inside`` of a box (rectangles, polygons via Owen's T), and the
  rectangle frames and polygon frames it reads.
- ``grid``: the fenced-box grid, its per-cell near lists and the nearest-box
  searches over them; the service-area cell map.
- ``tables``: what decisions derive once per (index, tolerance), and the kernel's
  arguments per (policy, operator).
- ``kernel``: :func:`~geofence.decisions.kernel._decide`, the compiled decision of
  fused checks, and its work buffers.
- ``order``: the Z-order in which a batch is decided, and the gathers and scatters
  into it and back.
- ``bearings``: the true bearings of the nearest boxes (grid bearing plus meridian
  convergence).
- ``batch``: :func:`decide_arrays` and :func:`decide_many`.
- ``single``: :func:`decide`, the single-check path, and its per-thread buffers.

The fix model
-------------
A fix's ``accuracy_m`` is the 68 % radius of an isotropic 2-D Gaussian, so its
per-axis standard deviation is ``accuracy_m / 1.5096`` (``sqrt(-2 ln 0.32)``).
A fix without accuracy gets ``Policy.default_accuracy_m``.

Fusing a trail (the bike stands still while the lock closes):

1. Fixes older than ``ended_at - max_fix_age_s`` or newer than
   ``ended_at + max_clock_skew_s`` are stale and dropped; a fix without a time
   counts as taken at ``ended_at``. If every fix is stale the check is decided
   on all of them but cannot settle (``stale_fix``).
2. Start from the coordinate-wise median of the fixes (robust to a minority of
   outliers), then twice: keep the fixes whose squared distance to the estimate
   is within ``outlier_chi2`` of their own variance (chi-square, 2 degrees of
   freedom; 13.8 is the 99.9 % point), and take their inverse-variance weighted
   mean. If none is kept, the fix nearest the estimate is.
3. The fused variance is that of a weighted mean of equicorrelated errors,
   ``(1 - rho) / W + rho * (sum(1 / sigma_i) / W) ** 2`` with ``W = sum(1 / sigma_i**2)``
   and ``rho = Policy.fix_correlation``: a standing phone's consecutive fixes share
   satellites and multipath, so their errors are correlated and averaging shrinks
   them less than for independent fixes (``rho = 0``: 1/sqrt(W); ``rho = 1``: no
   shrinking at all).

``p_inside`` is the probability that the true position lies in the best fenced
box widened by ``tolerance_m`` on every side: a closed form for rectangles (a
product of two error functions in the box's own frame) and, for other shapes, a
closed form too: a sum over the edges of signed triangles with apex at the fused
position, each an angle and two values of Owen's T function (scipy's), exact to
rounding.
"""

from __future__ import annotations

from geofence.decisions.batch import decide_arrays, decide_many
from geofence.decisions.inputs import (
    MAX_FIXES,
    OUTCOMES,
    QUALITIES,
    REASONS,
    SIGMA_PER_R68,  # noqa: F401 (not public; bench/decisions.py imports it from here)
    BeaconReading,
    Check,
    CheckBatch,
    Fix,
    Policy,
)
from geofence.decisions.outputs import Decision, DecisionBatch
from geofence.decisions.single import decide

__all__ = [
    "MAX_FIXES",
    "OUTCOMES",
    "QUALITIES",
    "REASONS",
    "BeaconReading",
    "Check",
    "CheckBatch",
    "Decision",
    "DecisionBatch",
    "Fix",
    "Policy",
    "decide",
    "decide_arrays",
    "decide_many",
]
