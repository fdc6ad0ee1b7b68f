"""``p_inside``: the probability that a fused position lies in a box widened by the tolerance.

A closed form for rectangles (:func:`_rect_p`, two error functions in the box's own
frame, from :func:`_rectangles`) and one for other polygons (:func:`_poly_p`, signed
triangles and Owen's T function, on the polygons in frames from :func:`_frames`).
Owen's T is scipy's C function, bound here by name so that the kernels stay cacheable.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numba as nb
import numpy as np
import shapely
from numba.extending import get_cython_function_address

from geofence.decisions._jit import _jit_inline


def _rectangles(geoms_m: np.ndarray) -> np.ndarray:
    """(n, 6) rectangle frames of the geometries that are rectangles, NaN elsewhere.

    Coordinates rounded to 1e-7 degrees (1 cm) bend right angles by up to ~0.3
    degrees on a 2 m box, so a quadrilateral counts as a rectangle when every corner
    is within 0.6 degrees of square and opposite sides agree to 2 cm; its frame is
    then the mean of its sides (the p_inside error that leaves is far below 0.001).
    """
    out = np.full((len(geoms_m), 6), np.nan)
    cand = np.flatnonzero(
        (shapely.get_type_id(geoms_m) == 3)
        & (shapely.get_num_interior_rings(geoms_m) == 0)
        & (shapely.get_num_coordinates(geoms_m) == 5)
    )
    if len(cand) == 0:
        return out
    c = shapely.get_coordinates(geoms_m[cand]).reshape(-1, 5, 2)
    e = np.diff(c, axis=1)  # 4 edges
    ln = np.hypot(e[..., 0], e[..., 1])
    nxt = np.roll(e, -1, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosang = np.abs((e * nxt).sum(-1)) / (ln * np.roll(ln, -1, axis=1))
    ok = (
        (cosang < 0.01).all(axis=1)
        & (ln > 0).all(axis=1)
        & (np.abs(ln[:, 0] - ln[:, 2]) < 0.02)
        & (np.abs(ln[:, 1] - ln[:, 3]) < 0.02)
    )
    c, e, ln, cand = c[ok], e[ok], ln[ok], cand[ok]
    # mean direction of each pair of opposite sides (the second of a pair runs backwards)
    d0 = e[:, 0] - e[:, 2]
    d1 = e[:, 1] - e[:, 3]
    l0 = (ln[:, 0] + ln[:, 2]) / 2
    l1 = (ln[:, 1] + ln[:, 3]) / 2
    long0 = l0 >= l1
    axis = np.where(long0[:, None], d0, d1)
    out[cand, 0:2] = c[:, :4].mean(axis=1)
    out[cand, 2:4] = axis / np.hypot(axis[:, 0], axis[:, 1])[:, None]
    out[cand, 4] = np.where(long0, l0, l1) / 2
    out[cand, 5] = np.where(long0, l1, l0) / 2
    return out


def _frames(geoms_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each polygon in its own frame: centred, its long axis along y.

    Centred, so that :func:`_poly_p` computes with small coordinates (EPSG:4547
    metres are in the millions). The rotation served an earlier slab integral along
    y and changes nothing now.
    """
    n = len(geoms_m)
    frame = np.zeros((n, 4))
    if n == 0:
        return geoms_m, frame
    mrr = shapely.get_coordinates(shapely.minimum_rotated_rectangle(geoms_m)).reshape(n, 5, 2)
    e0 = mrr[:, 1] - mrr[:, 0]
    e1 = mrr[:, 2] - mrr[:, 1]
    long_edge = np.where(
        (np.hypot(*e0.T) >= np.hypot(*e1.T))[:, None], e0, e1
    )  # rotate this onto +y
    angle = np.arctan2(long_edge[:, 0], long_edge[:, 1])  # from +y, clockwise
    c = shapely.get_coordinates(shapely.centroid(geoms_m))
    frame[:, 0:2] = c
    frame[:, 2] = np.cos(angle)
    frame[:, 3] = np.sin(angle)
    framed = np.empty(n, dtype=object)
    for i in range(n):  # a few hundred boxes, once per (index, tolerance)
        cs, sn = frame[i, 2], frame[i, 3]

        def to_frame(a: np.ndarray, i: int = i, cs: float = cs, sn: float = sn) -> np.ndarray:
            d = a - frame[i, 0:2]
            return np.column_stack((d[:, 0] * cs - d[:, 1] * sn, d[:, 0] * sn + d[:, 1] * cs))

        framed[i] = shapely.transform(geoms_m[i], to_frame)
    return framed, frame


# Owen's T function, scipy's C implementation (scipy.special.owens_t), called from the
# kernels by name: the symbol is registered with LLVM here, at import, before any cached
# kernel is loaded, so the kernels stay cacheable (a ctypes pointer would embed the
# address and numba would refuse to cache them). The trailing int is Cython's
# skip-dispatch flag.
llvm.add_symbol(
    "geofence_scipy_owens_t",
    get_cython_function_address("scipy.special.cython_special", "owens_t"),
)


_owens_t = nb.types.ExternalFunction(
    "geofence_scipy_owens_t",
    nb.types.float64(nb.types.float64, nb.types.float64, nb.types.intc),
)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)


_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@_jit_inline
def _rect_p(x, y, s, r, z, tol):
    dx = x - r[z, 0]
    dy = y - r[z, 1]
    u = dx * r[z, 2] + dy * r[z, 3]
    v = -dx * r[z, 3] + dy * r[z, 2]
    a = r[z, 4] + tol
    b = r[z, 5] + tol
    k = 0.7071067811865476 / s
    pu = 0.5 * (math.erf((a - u) * k) + math.erf((a + u) * k))
    pv = 0.5 * (math.erf((b - v) * k) + math.erf((b + v) * k))
    return pu * pv


@_jit_inline
def _poly_p(q, x, y, s, pvx, pvy, pring, pzone):
    """P(N((x, y), s^2 I) in polygon q), exact: signed triangles with apex at the mean.

    Each edge (a, b) spans a triangle with the mean; its probability, signed by the
    turn from a to b, is ``dpsi / 2 pi - [T(h, t_b / h) - T(h, t_a / h)]``: ``dpsi``
    the angle it subtends, ``h`` the distance from the mean to the edge's line and
    ``t`` the ends' positions along that line from the foot of the perpendicular
    (all in units of s), ``T`` Owen's T function. Summed over every edge of every
    ring, the triangles outside cancel and holes subtract, given one consistent
    orientation (``_build_tables`` orients the rings; either sense gives +-p, hence
    the ``abs``). A polygon beyond 8 s on either axis gives 0 (p < 1e-15).
    """
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    for v in range(pring[pzone[q]], pring[pzone[q + 1]]):
        xmin = min(xmin, pvx[v])
        xmax = max(xmax, pvx[v])
        ymin = min(ymin, pvy[v])
        ymax = max(ymax, pvy[v])
    reach = 8.0 * s
    if x + reach < xmin or x - reach > xmax or y + reach < ymin or y - reach > ymax:
        return 0.0
    inv_s = 1.0 / s
    angle = 0.0  # sum of the signed angles
    owen = 0.0  # sum of the signed Owen's T differences
    for r in range(pzone[q], pzone[q + 1]):
        ax = (pvx[pring[r]] - x) * inv_s
        ay = (pvy[pring[r]] - y) * inv_s
        for v in range(pring[r] + 1, pring[r + 1]):
            bx = (pvx[v] - x) * inv_s
            by = (pvy[v] - y) * inv_s
            ex = bx - ax
            ey = by - ay
            ln = math.sqrt(ex * ex + ey * ey)
            cross = ax * by - ay * bx  # = ln * signed distance of the line
            h = abs(cross) / ln if ln > 0.0 else 0.0
            # h -> 0: the triangle and its probability vanish (and atan2 of the
            # mean on the segment would be +-pi); zero-length edges likewise
            if h > 1e-12:
                angle += math.atan2(cross, ax * bx + ay * by)
                if h < 8.0:  # T(h, a) <= Phi(-h) / 2 < 1e-15 beyond
                    ta = (ax * ex + ay * ey) / ln
                    tb = (bx * ex + by * ey) / ln
                    d = _owens_t(h, tb / h, 0) - _owens_t(h, ta / h, 0)
                    owen += d if cross > 0.0 else -d
            ax = bx
            ay = by
    return min(abs(angle * 0.15915494309189535 - owen), 1.0)
