"""Fitting the GNSS error model to labelled trips: maximum likelihood per class.

This module owns the fit behind ``geofence calibrate``: from checks whose true
position is known (a surveyed point) or bounded (the box the bike stood in), the
:class:`~geofence.calibration.CalibrationRow` values of each (operator, device class,
fix quality) that make the labelled trails most probable.

The model (the one the engine's fusion assumes; see :mod:`geofence.calibration`), in
local metres (EPSG:4547, after converting GCJ-02 / BD-09 fixes to WGS-84): fix ``j``
of trail ``i`` is ``truth_i + bias_i + noise_ij`` with

- ``bias_i ~ N(0, b^2 I2)``, shared by every fix of the trail;
- ``noise_ij ~ (1 - eps) N(0, s_ij^2 I2) + eps N(0, S^2 I2)``, where
  ``s_ij = max(f * accuracy_m_ij, a0) / 1.5096`` (``accuracy_m`` is a 68 % radius; a
  fix without one gets ``policy.default_accuracy_m``) and ``S`` =
  :data:`OUTLIER_SIGMA_M` (30 m per axis: "tens of metres");
- exactly repeated fixes (same lon and lat) count once (the first is kept); fixes the
  engine would drop as stale (``policy.max_fix_age_s``, ``max_clock_skew_s``) are
  dropped here too.

Why a quadrature over ``c = truth + bias`` and not a closed form: without outliers a
trail's errors are jointly Gaussian, but the outlier mixture makes the exact
likelihood a sum over the 2^n ways of choosing which fixes are outliers. Given ``c``
the fixes are independent, so the likelihood is a 2-D integral over ``c`` of
``prior(c) * prod_j mixture_j(c)``:

- a point label: ``prior(c) = N(c - truth, b^2)``;
- a box label (the position uniform over the box): ``prior(c)`` is the uniform box
  convolved with ``N(0, b^2)``. For a rectangle (every box whose area is within 1 %
  of its minimum rotated rectangle's) that is a product of two normal-CDF
  differences in the rectangle's own frame (the noise is isotropic, so turning the
  frame changes nothing); for other shapes a mean of Gaussians over a grid of points
  inside the polygon, each widened by the grid cell's own variance (``h^2 / 12``).

The integral is a tensor trapezoid rule (:data:`NODES` per axis for point labels,
:data:`BOX_NODES` for box labels) over a window placed per trail: a few EM steps find
the posterior mode of ``c`` (outliers down-weighted by their responsibilities, a box
approximated by a Gaussian of its variance for this step only) and its spread; the
window is that mode +- 7 spreads, clipped to the box widened by 7 ``b``. The
trapezoid rule, not Gauss-Legendre: for an integrand that has decayed at the
window's ends its error falls like ``exp(-2 pi^2 sigma^2 / h^2)``; 12 Legendre
nodes over +-7 sigma lost 1 % of a Gaussian. Against a dense-grid integral
(tests/geofence/test_fitting.py) the per-trail log-likelihood agrees to ~1e-5 for
point labels and for box labels whose bias is not far below the box (<= 2e-3 at
b = 0.15 m in a 2 x 5 m box); with b = 0.05 m the box's sharp edges cost up to
~3e-2 (the worst case measured). The mixture is evaluated separably on the tensor
grid (one ``log1p`` per node and fix), over trails sorted by length in blocks of
256 padded only to their own longest trail.

The optimiser is L-BFGS-B over ``(log f, log a0, log b, logit eps)`` within the
ranges :mod:`geofence.calibration` accepts (a floor and a bias of 1 mm, an outlier
share of 1e-4 stand for zero). ``f`` and ``a0`` are only separable when the labelled
fixes report a spread of accuracies (``max(f * acc, a0)``): with one reported value
only their maximum is determined, and the fit keeps the starting split.

One module (~700 lines) because it is one algorithm: the trails, their likelihood, the
optimiser and the per-class calibration share the model's constants and are read in
that order, top to bottom (sections ``labels``, ``likelihood``, ``fitting``,
``calibration``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from scipy import optimize, special

from geofence import crs as _crs
from geofence.calibration import _RANGES, WILDCARD, Calibration, CalibrationRow
from geofence.decisions import Check, Policy, decide_many
from geofence.errors import CheckError
from geofence.index import ZoneIndex

__all__ = [
    "BOX_NODES",
    "MIN_TRIPS",
    "NARROW_TRIPS",
    "NODES",
    "OUTLIER_SIGMA_M",
    "SIGMA_PER_R68",
    "ClassFit",
    "ClassReport",
    "Fit",
    "Label",
    "Trails",
    "check_class",
    "fit_calibration",
    "fit_class",
    "log_likelihood",
    "trails_from_labels",
]

#: r68 / sigma of an isotropic 2-D Gaussian: sqrt(-2 ln(1 - 0.68))
SIGMA_PER_R68 = 1.5095921854516636
#: per-axis standard deviation of an outlying fix (metres): "tens of metres"
OUTLIER_SIGMA_M = 30.0
#: a class with fewer labelled trips keeps its base row
MIN_TRIPS = 50
#: a class fitted on at least this many labelled trips may settle narrow boxes
NARROW_TRIPS = 200
#: Gauss-Legendre nodes per axis of the quadrature over ``truth + bias``
NODES = 12
#: nodes per axis for box labels (the box's edges need a finer grid)
BOX_NODES = 24
_WINDOW = 7.0  # the quadrature window: mode +- this many spreads, box + this many b
_EM_STEPS = 8
_BLOCK = 256  # trails per vectorised block
_MIN_POS = 1e-3  # a floor or bias of 1 mm stands for zero
_MIN_EPS = 1e-4  # an outlier share of 1e-4 stands for zero
_RECT_AREA = 0.99  # a box this close to its minimum rotated rectangle counts as one
_GRID_CELL_M = 0.25  # grid spacing for boxes that are not rectangles
_LOG2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- labels
@dataclass(frozen=True)
class Label:
    """A check whose truth is known: a surveyed point, or the box the bike stood in.

    ``check.operator`` must be set (the class is per operator). Exactly one of
    ``(lon, lat)`` (WGS-84 degrees) and ``zone_id`` is given; ``box_m`` is the box's
    polygon in EPSG:4547 metres when the caller has it (audit labels carry the
    geometry of the zone-set version the check was decided with), else it is looked
    up by ``zone_id`` in the index given to :func:`fit_calibration`.
    """

    check: Check
    lon: float | None = None
    lat: float | None = None
    zone_id: str | None = None
    box_m: Any = None  # shapely.Polygon in EPSG:4547 metres

    def __post_init__(self) -> None:
        point = self.lon is not None and self.lat is not None
        if point == (self.zone_id is not None) or (self.lon is None) != (self.lat is None):
            raise ValueError("a label has either a truth point (lon, lat) or a zone_id")
        if not self.check.operator:
            raise ValueError("a label's check needs its operator")


def check_class(check: Check) -> tuple[str, str, str]:
    """The calibration class of a check: (operator, device class or ``*``, quality).

    The quality is the last fix's (``"none"`` when it reported none).
    """
    q = check.fixes[-1].quality or "none"
    return (check.operator or WILDCARD, check.device_class or WILDCARD, q)


@dataclass(frozen=True)
class Trails:
    """Labelled trails as padded arrays, in each label's own frame (metres).

    ``dx, dy`` (n, m): the fixes relative to the truth point or the box's centre,
    turned into the box's frame (its minimum rotated rectangle's sides); ``acc``:
    the reported 68 % radius (the policy's default where none); ``mask``: real fixes.
    ``half`` (n, 2): the box's half-sides in that frame (0 for a point). ``grid``:
    for boxes that are not rectangles, ``{trail: (k, 2) points inside, cell}``.
    """

    dx: np.ndarray
    dy: np.ndarray
    acc: np.ndarray
    mask: np.ndarray
    half: np.ndarray
    grid: Mapping[int, tuple[np.ndarray, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.dx)

    def subset(self, rows: np.ndarray) -> Trails:
        rows = np.asarray(rows)
        pos = {int(r): i for i, r in enumerate(rows.tolist())}
        return Trails(
            self.dx[rows],
            self.dy[rows],
            self.acc[rows],
            self.mask[rows],
            self.half[rows],
            {pos[k]: v for k, v in self.grid.items() if k in pos},
        )


def _fixes_m(check: Check, policy: Policy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A check's usable fixes: (x, y) metres and accuracy; duplicates and stale ones out."""
    seen: set[tuple[float, float]] = set()
    lon, lat, acc, crs = [], [], [], []
    for f in check.fixes:
        if (f.lon, f.lat) in seen:
            continue
        seen.add((f.lon, f.lat))
        if f.at is not None and not (
            check.ended_at - policy.max_fix_age_s
            <= f.at
            <= check.ended_at + policy.max_clock_skew_s
        ):
            continue
        lon.append(f.lon)
        lat.append(f.lat)
        acc.append(policy.default_accuracy_m if f.accuracy_m is None else f.accuracy_m)
        crs.append(f.crs)
    lo, la = np.array(lon, np.float64), np.array(lat, np.float64)
    for name in set(crs) - {"wgs84", "cgcs2000"}:
        sel = np.array([c == name for c in crs])
        lo[sel], la[sel] = _crs.to_wgs84(lo[sel], la[sel], name)
    x, y = _crs.project(lo, la)
    return np.asarray(x, np.float64), np.asarray(y, np.float64), np.array(acc, np.float64)


def _project_point(lon: float, lat: float) -> np.ndarray:
    """(x, y) metres of one WGS-84 point."""
    x, y = _crs.project(np.array([lon], np.float64), np.array([lat], np.float64))
    return np.array([np.ravel(x)[0], np.ravel(y)[0]], np.float64)


def _frame(poly: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """A box's frame: centre, unit axes (2, 2), half-sides, and whether it is a rectangle."""
    rect = shapely.minimum_rotated_rectangle(poly)
    xy = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = xy[1] - xy[0], xy[2] - xy[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    if l1 == 0.0 or l2 == 0.0:  # a degenerate box: treat as a point of its centroid
        c = np.array(poly.centroid.coords[0])
        return c, np.eye(2), np.zeros(2), True
    axes = np.array([e1 / l1, e2 / l2])
    centre = xy[:4].mean(axis=0)
    is_rect = poly.area >= _RECT_AREA * rect.area
    return centre, axes, np.array([l1 / 2, l2 / 2]), is_rect


def _inside_grid(poly: Any, centre: np.ndarray, axes: np.ndarray, half: np.ndarray):
    """Points of a grid inside ``poly``, in its frame, and the grid's cell (metres)."""
    cell = min(_GRID_CELL_M, float(half.min()) / 4 or _GRID_CELL_M)
    nu, nv = (np.ceil(2 * half / cell).astype(int) + 1).tolist()
    u = np.linspace(-half[0], half[0], nu)
    v = np.linspace(-half[1], half[1], nv)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    local = np.column_stack([uu.ravel(), vv.ravel()])
    xy = centre + local @ axes
    inside = shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
    pts = local[inside]
    if len(pts) == 0:
        pts = np.zeros((1, 2))
    return pts, cell


def trails_from_labels(
    labels: Sequence[Label], policy: Policy, index: ZoneIndex | None = None
) -> tuple[Trails, np.ndarray]:
    """The labels' trails as :class:`Trails`, and the positions of the labels used.

    A label whose fixes are all stale, or whose zone is not in ``index``, is left out
    (it is not in the returned positions). Raises ``ValueError`` for a zone label
    without geometry and without an index.
    """
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]] = []
    used: list[int] = []
    ids = None if index is None else index.zone_set.position
    for k, lab in enumerate(labels):
        x, y, acc = _fixes_m(lab.check, policy)
        if len(x) == 0:
            continue
        if lab.zone_id is None:
            centre = _project_point(lab.lon, lab.lat)  # type: ignore[arg-type]
            axes, half, grid = np.eye(2), np.zeros(2), None
        else:
            poly = lab.box_m
            if poly is None:
                if ids is None:
                    raise ValueError(f"label {k}: zone {lab.zone_id!r} needs an index")
                pos = ids.get(lab.zone_id)
                if pos is None:
                    continue
                poly = index.zone_set.geometry_m[pos]  # type: ignore[union-attr]
            centre, axes, half, is_rect = _frame(poly)
            grid = None if is_rect else _inside_grid(poly, centre, axes, half)
        d = np.column_stack([x, y]) - centre
        local = d @ axes.T
        rows.append((local[:, 0], local[:, 1], acc, half, grid))
        used.append(k)
    n = len(rows)
    m = max((len(r[0]) for r in rows), default=1)
    dx = np.zeros((n, m))
    dy = np.zeros((n, m))
    acc = np.ones((n, m))
    mask = np.zeros((n, m), bool)
    half = np.zeros((n, 2))
    grids: dict[int, tuple[np.ndarray, float]] = {}
    for i, (u, v, a, h, g) in enumerate(rows):
        k = len(u)
        dx[i, :k], dy[i, :k], acc[i, :k], mask[i, :k] = u, v, a, True
        half[i] = h
        if g is not None:
            grids[i] = g
    return Trails(dx, dy, acc, mask, half, grids), np.array(used, np.int64)


# --------------------------------------------------------------------------- likelihood
# the trapezoid rule on a uniform grid: for a smooth integrand that has decayed at the
# window's ends its error falls like exp(-2 pi^2 sigma^2 / h^2), far faster than
# Gauss-Legendre's on a Gaussian over +-7 sigma (measured: 12 Legendre nodes lose 1 %)
def _rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, k)
    w = np.full(k, 2.0 / (k - 1))
    w[[0, -1]] /= 2
    return x, w


def _log_box_axis(c: np.ndarray, h: np.ndarray, b: float) -> np.ndarray:
    """log of the uniform [-h, h] convolved with N(0, b^2), at ``c`` (h = 0: a normal)."""
    with np.errstate(divide="ignore"):
        hi = (h - c) / b
        lo = (-h - c) / b
        # the difference of the upper tails where both are far up: no cancellation
        diff = np.where(
            lo > 0, special.ndtr(-lo) - special.ndtr(-hi), special.ndtr(hi) - special.ndtr(lo)
        )
        box = np.log(np.maximum(diff, 1e-300)) - np.log(np.maximum(2 * h, 1e-300))
        point = -0.5 * (c / b) ** 2 - math.log(b) - 0.5 * _LOG2PI
    return np.where(h > 0, box, point)


def _log_mix(d2: np.ndarray, s2: np.ndarray, eps: float) -> np.ndarray:
    """log density of a fix at squared distance ``d2`` under the outlier mixture."""
    s_out2 = OUTLIER_SIGMA_M**2
    a = math.log1p(-eps) - _LOG2PI - np.log(s2) - 0.5 * d2 / s2
    b = math.log(eps) - _LOG2PI - math.log(s_out2) - 0.5 * d2 / s_out2
    return np.logaddexp(a, b)


def _block_loglik(
    t: Trails, lo: int, hi: int, f: float, a0: float, b: float, eps: float, k: int
) -> np.ndarray:
    gx, gw = _rule(k)
    m = max(int(t.mask[lo:hi].sum(axis=1).max()), 1)  # the block's own padding only
    dx, dy, mask = t.dx[lo:hi, :m], t.dy[lo:hi, :m], t.mask[lo:hi, :m]
    half = t.half[lo:hi]
    s = np.maximum(f * t.acc[lo:hi, :m], a0) / SIGMA_PER_R68
    s2 = s * s
    s_out2 = OUTLIER_SIGMA_M**2
    # the posterior mode of c and its spread (EM; a box as a Gaussian of its variance)
    prior_prec = 1.0 / (half**2 / 3.0 + b * b)  # (n, 2)
    big = np.where(mask, 0.0, np.nan)
    cu = np.nanmedian(dx + big, axis=1)
    cv = np.nanmedian(dy + big, axis=1)
    log_a = math.log1p(-eps) - np.log(s2)
    log_b = math.log(eps) - math.log(s_out2)
    for _ in range(_EM_STEPS):
        d2 = (dx - cu[:, None]) ** 2 + (dy - cv[:, None]) ** 2
        z = (log_a - 0.5 * d2 / s2) - (log_b - 0.5 * d2 / s_out2)
        w = special.expit(z)
        prec = np.where(mask, w / s2 + (1.0 - w) / s_out2, 0.0)
        pu = prior_prec[:, 0] + prec.sum(axis=1)
        pv = prior_prec[:, 1] + prec.sum(axis=1)
        cu = (prec * dx).sum(axis=1) / pu
        cv = (prec * dy).sum(axis=1) / pv
    su, sv = 1.0 / np.sqrt(pu), 1.0 / np.sqrt(pv)
    # the window: mode +- _WINDOW spreads, within the box widened by _WINDOW b
    ulo = np.maximum(cu - _WINDOW * su, -half[:, 0] - _WINDOW * b)
    uhi = np.minimum(cu + _WINDOW * su, half[:, 0] + _WINDOW * b)
    vlo = np.maximum(cv - _WINDOW * sv, -half[:, 1] - _WINDOW * b)
    vhi = np.minimum(cv + _WINDOW * sv, half[:, 1] + _WINDOW * b)
    ulo, uhi = np.minimum(ulo, uhi), np.maximum(ulo, uhi)
    vlo, vhi = np.minimum(vlo, vhi), np.maximum(vlo, vhi)
    um, ur = (ulo + uhi) / 2, (uhi - ulo) / 2
    vm, vr = (vlo + vhi) / 2, (vhi - vlo) / 2
    un = um[:, None] + ur[:, None] * gx  # (n, K)
    vn = vm[:, None] + vr[:, None] * gx
    logw = (
        np.log(ur)[:, None, None]
        + np.log(vr)[:, None, None]
        + np.log(gw)[None, :, None]
        + np.log(gw)[None, None, :]
    )  # (n, K, K)
    prior = (
        _log_box_axis(un, half[:, :1], b)[:, :, None]
        + _log_box_axis(vn, half[:, 1:], b)[:, None, :]
    )
    for i, (pts, cell) in t.grid.items():
        if not lo <= i < hi:
            continue
        r = i - lo
        be2 = b * b + cell * cell / 12.0
        du = un[r][:, None] - pts[:, 0]  # (K, g)
        dv = vn[r][:, None] - pts[:, 1]
        e = -0.5 * (du[:, None, :] ** 2 + dv[None, :, :] ** 2) / be2  # (K, K, g)
        prior[r] = special.logsumexp(e, axis=2) - math.log(len(pts)) - _LOG2PI - math.log(be2)
    # the fixes, separably over the tensor grid: log mixture = log outlier term +
    # log1p(inlier / outlier), and both factor into a u part times a v part
    du2 = (dx[:, None, :] - un[:, :, None]) ** 2  # (n, K, m)
    dv2 = (dy[:, None, :] - vn[:, :, None]) ** 2
    kappa = np.where(mask, 0.5 / s2 - 0.5 / s_out2, 0.0)[:, None, :]  # (n, 1, m)
    ratio0 = np.where(mask, log_a - log_b, -np.inf)[:, None, :]
    ru = np.exp(ratio0 - du2 * kappa)  # (n, K, m): 0 on padding
    rv = np.exp(-dv2 * kappa)
    lm = np.log1p(ru[:, :, None, :] * rv[:, None, :, :]).sum(axis=3)  # (n, K, K)
    w_out = np.where(mask, 0.5 / s_out2, 0.0)[:, None, :]
    out_u = (du2 * w_out).sum(axis=2)  # (n, K)
    out_v = (dv2 * w_out).sum(axis=2)
    n_fix = mask.sum(axis=1)
    const = n_fix * (math.log(eps) - _LOG2PI - math.log(s_out2))
    lm = lm - out_u[:, :, None] - out_v[:, None, :] + const[:, None, None]
    total = (lm + prior + logw).reshape(len(dx), -1)
    return special.logsumexp(total, axis=1)


def log_likelihood(
    trails: Trails,
    factor: float,
    floor_m: float,
    bias_m: float,
    outlier_share: float,
    *,
    nodes: int = NODES,
    box_nodes: int = BOX_NODES,
) -> np.ndarray:
    """Per-trail log-likelihood (densities in metres) of the model's parameters."""
    b = max(bias_m, _MIN_POS)
    a0 = max(floor_m, 1e-6)
    eps = min(max(outlier_share, _MIN_EPS), 0.5)
    out = np.empty(len(trails))
    is_box = np.asarray(trails.half.any(axis=1), bool)
    # blocks of trails of similar length (each block is padded to its longest)
    by_len = np.argsort(trails.mask.sum(axis=1), kind="stable")
    for rows, k in ((by_len[~is_box[by_len]], nodes), (by_len[is_box[by_len]], box_nodes)):
        if not len(rows):
            continue
        part = trails.subset(rows)
        for lo in range(0, len(part), _BLOCK):
            hi = min(lo + _BLOCK, len(part))
            out[rows[lo:hi]] = _block_loglik(part, lo, hi, factor, a0, b, eps, k)
    return out


# --------------------------------------------------------------------------- fitting
_LO = {name: lo for name, lo, _ in _RANGES}
_HI = {name: hi for name, _, hi in _RANGES}


def _to_theta(f: float, a0: float, b: float, eps: float) -> np.ndarray:
    eps = min(max(eps, _MIN_EPS), 0.5 - 1e-9)
    return np.array(
        [math.log(f), math.log(max(a0, _MIN_POS)), math.log(max(b, _MIN_POS)), special.logit(eps)]
    )


def _from_theta(th: np.ndarray) -> tuple[float, float, float, float]:
    return (
        float(math.exp(th[0])),
        float(math.exp(th[1])),
        float(math.exp(th[2])),
        float(special.expit(th[3])),
    )


_BOUNDS = [
    (math.log(_LO["accuracy_factor"]), math.log(_HI["accuracy_factor"])),
    (math.log(_MIN_POS), math.log(_HI["accuracy_floor_m"])),
    (math.log(_MIN_POS), math.log(_HI["bias_m"])),
    (float(special.logit(_MIN_EPS)), 0.0),
]


@dataclass(frozen=True)
class ClassFit:
    """The maximum-likelihood values of one class, and how the fit went."""

    accuracy_factor: float
    accuracy_floor_m: float
    bias_m: float
    outlier_share: float
    loglik: float  # at the fitted values, summed over the trails
    start_loglik: float  # at the starting values
    trips: int
    evaluations: int
    seconds: float
    converged: bool

    def row(self, key: tuple[str, str, str], *, narrow_trips: int = NARROW_TRIPS) -> CalibrationRow:
        """The fitted calibration row (values clipped to the accepted ranges, rounded)."""

        def clip(name: str, v: float, digits: int) -> float:
            return round(min(max(v, _LO[name]), _HI[name]), digits)

        small = _MIN_POS * 1.5
        return CalibrationRow(
            operator=key[0],
            device_class=key[1],
            quality=key[2],
            accuracy_factor=clip("accuracy_factor", self.accuracy_factor, 4),
            accuracy_floor_m=0.0
            if self.accuracy_floor_m < small
            else clip("accuracy_floor_m", self.accuracy_floor_m, 4),
            bias_m=0.0 if self.bias_m < small else clip("bias_m", self.bias_m, 4),
            outlier_share=0.0
            if self.outlier_share < _MIN_EPS * 1.5
            else clip("outlier_share", self.outlier_share, 5),
            settles_narrow=self.trips >= narrow_trips,
            trips=self.trips,
        )


def fit_class(trails: Trails, start: CalibrationRow | None = None) -> ClassFit:
    """Maximum-likelihood (factor, floor, bias, outlier share) of one class's trails."""
    t0 = time.perf_counter()
    s = start or CalibrationRow()
    th0 = _to_theta(s.accuracy_factor, s.accuracy_floor_m, s.bias_m, s.outlier_share)
    th0 = np.clip(th0, [lo for lo, _ in _BOUNDS], [hi for _, hi in _BOUNDS])
    n = max(len(trails), 1)
    evals = 0

    def nll(th: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        v = -float(log_likelihood(trails, *_from_theta(th)).sum()) / n
        return v if math.isfinite(v) else 1e30

    start_ll = -nll(th0) * n
    res = optimize.minimize(nll, th0, method="L-BFGS-B", bounds=_BOUNDS, options={"eps": 1e-5})
    f, a0, b, eps = _from_theta(res.x)
    return ClassFit(
        accuracy_factor=f,
        accuracy_floor_m=a0,
        bias_m=b,
        outlier_share=eps,
        loglik=-float(res.fun) * n,
        start_loglik=start_ll,
        trips=len(trails),
        evaluations=evals,
        seconds=time.perf_counter() - t0,
        converged=bool(res.success),
    )


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class ClassReport:
    """One class of the labels: its trips, its row before and after, its coverage.

    ``coverage_*`` is the share of labelled trips whose true position lies inside the
    fused 68 % radius of the decision under the base and under the fitted policy; a
    box label counts its box's nearest point to the fused position (so box labels
    give an upper bound). ``z_*`` are those distances over the fused per-axis sigma
    (``accuracy_m / 1.5096``), per trip: the reliability plot's data.
    """

    key: tuple[str, str, str]
    trips: int
    fitted: bool
    base_row: CalibrationRow
    row: CalibrationRow
    fit: ClassFit | None
    coverage_before: float
    coverage_after: float
    z_before: np.ndarray
    z_after: np.ndarray
    note: str = ""


@dataclass(frozen=True)
class Fit:
    """The result of :func:`fit_calibration`: the new policy and a report per class."""

    policy: Policy
    rows: tuple[CalibrationRow, ...]
    classes: tuple[ClassReport, ...]


def _true_xy(labels: Sequence[Label], index: ZoneIndex | None) -> list[Any]:
    """Each label's truth in metres: a shapely Point or the box polygon."""
    out: list[Any] = []
    ids = None if index is None else index.zone_set.position
    for lab in labels:
        if lab.zone_id is None:
            out.append(shapely.Point(_project_point(lab.lon, lab.lat)))  # type: ignore[arg-type]
        elif lab.box_m is not None:
            out.append(lab.box_m)
        else:
            pos = None if ids is None else ids.get(lab.zone_id)
            out.append(None if pos is None else index.zone_set.geometry_m[pos])  # type: ignore[union-attr]
    return out


def _normalised_errors(
    index: ZoneIndex, labels: Sequence[Label], truths: Sequence[Any], policy: Policy
) -> np.ndarray:
    """Distance from the fused position to the truth over the fused sigma, per label.

    NaN where the engine refused the check (a trail spread too wide) or the truth is
    unknown.
    """
    out = np.full(len(labels), np.nan)
    todo = [i for i, t in enumerate(truths) if t is not None]
    while todo:
        checks = [labels[i].check for i in todo]
        now = max(c.ended_at for c in checks)
        try:
            decisions = decide_many(index, checks, policy, now)
        except CheckError as exc:
            if exc.check_index is None:
                raise
            todo.pop(exc.check_index)
            continue
        lon = np.array([d.position["lon"] for d in decisions])
        lat = np.array([d.position["lat"] for d in decisions])
        acc = np.array([d.position["accuracy_m"] for d in decisions])
        x, y = _crs.project(lon, lat)
        pts = shapely.points(np.asarray(x), np.asarray(y))
        dist = shapely.distance(pts, np.array([truths[i] for i in todo], dtype=object))
        out[todo] = dist / np.maximum(acc / SIGMA_PER_R68, 1e-9)
        break
    return out


def _coverage(z: np.ndarray) -> float:
    ok = z[np.isfinite(z)]
    return float((ok <= SIGMA_PER_R68).mean()) if len(ok) else float("nan")


def fit_calibration(
    index: ZoneIndex,
    labels: Iterable[Label],
    base: Policy,
    *,
    min_trips: int = MIN_TRIPS,
    narrow_trips: int = NARROW_TRIPS,
    progress: Callable[[tuple[str, str, str], int], None] | None = None,
) -> Fit:
    """Fit every class of ``labels`` with at least ``min_trips`` trips; report all.

    The fitted rows replace the base policy's rows of the same key (or add to them);
    a class with fewer trips keeps its base row (its report says so). ``index`` is
    used to decide the labelled checks (coverage before and after) and to find the
    boxes of zone labels. ``progress(key, trips)`` is called after each class.
    """
    labels = list(labels)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(check_class(lab.check), []).append(i)
    truths = _true_xy(labels, index)
    fitted: dict[tuple[str, str, str], tuple[CalibrationRow, ClassFit, int]] = {}
    skipped: dict[tuple[str, str, str], tuple[str, int]] = {}
    for key in sorted(groups):
        members = [labels[i] for i in groups[key]]
        base_row = base.calibration.row(*key)
        trails, _used = trails_from_labels(members, base, index)
        if len(trails) < min_trips:
            skipped[key] = (
                f"{len(trails)} usable trips (< {min_trips}): base row kept",
                len(trails),
            )
        else:
            fit = fit_class(trails, base_row)
            fitted[key] = (fit.row(key, narrow_trips=narrow_trips), fit, len(trails))
        if progress is not None:
            progress(key, len(members))
    new_rows = tuple(row for row, _, _ in fitted.values())
    keys = {r.key for r in new_rows}
    merged = new_rows + tuple(r for r in base.calibration.rows if r.key not in keys)
    policy = replace(base, calibration=Calibration(merged))
    z_before = _normalised_errors(index, labels, truths, base)
    z_after = _normalised_errors(index, labels, truths, policy)
    reports = []
    for key in sorted(groups):
        rows = np.array(groups[key])
        zb, za = z_before[rows], z_after[rows]
        base_row = base.calibration.row(*key)
        if key in fitted:
            row, fit, n = fitted[key]
            note = "" if fit.converged else "the optimiser stopped before converging"
            reports.append(
                ClassReport(
                    key, n, True, base_row, row, fit, _coverage(zb), _coverage(za), zb, za, note
                )
            )
        else:
            note, n = skipped[key]
            reports.append(
                ClassReport(
                    key,
                    n,
                    False,
                    base_row,
                    base_row,
                    None,
                    _coverage(zb),
                    _coverage(za),
                    zb,
                    za,
                    note,
                )
            )
    return Fit(policy=policy, rows=new_rows, classes=tuple(reports))
