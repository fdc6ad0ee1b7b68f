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
- ``single``: :func:`decide`, the single-check path (:func:`decide_values`: the same
  of a check given as numbers), and its per-thread buffers.

The error model
---------------
A fix's ``accuracy_m`` is what the device claims: a 68 % radius. The policy's
calibration (:mod:`geofence.calibration`) turns the claim of a fix of a given
(operator, device class, quality) into a model: an isotropic 2-D Gaussian of 68 %
radius ``max(accuracy_factor * accuracy_m, accuracy_floor_m)`` (per-axis sigma: that
over ``sqrt(-2 ln 0.32)`` = 1.5096), an error of per-axis sigma ``bias_m`` shared by
every fix of the trail (multipath, a correction stream's error: averaging does not
shrink it), and a share ``outlier_share`` of fixes off by tens of metres. A fix
without accuracy gets ``Policy.default_accuracy_m``.

Fusing a trail (the bike stands still while the lock closes), :func:`fusion._fuse`:

1. A fix at exactly the lon and lat of an earlier one is a cached fix sent again:
   counted once. Fixes older than ``ended_at - max_fix_age_s`` or newer than
   ``ended_at + max_clock_skew_s`` are stale and dropped; a fix without a time
   counts as taken at ``ended_at``. If every fix is stale the check is decided
   on all of them but cannot settle (``stale_fix``).
2. From the coordinate-wise median of the kept fixes and a robust scale (the median
   squared residual over chi-square(2)'s), two passes of a Student-t
   M-estimator (``Policy.student_nu`` = 4 degrees of freedom) with a scale ``c2`` on
   the claimed variances: each fix weighs ``w_i * min(1, (nu + 2) / (nu + r_i**2 / c2))``,
   ``w_i = 1 / sigma_i**2`` and ``r_i`` its distance from the estimate in its own
   sigmas, so a fix tens of sigmas away weighs almost nothing, with no hard cut; ``c2``
   is re-estimated each pass from the weighted residuals (2 axes a fix, 2 for the
   mean), shrunk toward 1 by 2 pseudo degrees of freedom and never below 1: a trail
   scattered wider than its claims allow widens the estimate.
3. The fused per-axis variance is ``B + c2 / W``: ``B`` the fixes' shared-bias variance
   (weighted like the fixes), ``W`` the sum of the weights.
4. The fused position is itself an outlier with the probability that at least half
   the kept fixes are (binomial in their mean ``outlier_share``): ``p_inside`` is
   scaled by one minus that.
5. The trail may settle a box narrower than ``Policy.narrow_box_m`` only when fixes
   whose class may (``settles_narrow``) carry at least half its weight.

A check is rejected only when no box where it may settle has ``p_inside`` above
``reject_p`` nor lies within ``reject_sigmas`` fused sigmas (bias included) or
``reject_margin_m`` of the widened box; otherwise it is settled or reviewed.

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
    SIGMA_PER_R68,  # noqa: F401 (not public; bench.decisions imports it from here)
    BeaconReading,
    Check,
    CheckBatch,
    Fix,
    Policy,
)
from geofence.decisions.outputs import Decision, DecisionBatch
from geofence.decisions.single import decide, decide_values

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
    "decide_values",
]
