"""What decisions derive from an index once: :class:`_Tables` per (index, tolerance).

Rectangle frames, buffered polygons in their frames, beacon positions, the box grid,
the open masks per operator (:func:`_open_masks`); the kernel's arguments that depend
on (index, policy, operator) only (:func:`_static_args`); a decision's ``zone``
mapping (:func:`_zone_info`). Built lazily, under a lock, kept while the index lives.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geofence.decisions.grid import _NO_SERVICE_MAP, _box_grid, _service_map
from geofence.decisions.probability import _frames, _rectangles
from geofence.index import ZoneIndex
from geofence.zoneset import KIND_NAMES, KIND_PARKING

if TYPE_CHECKING:  # inputs imports this module (CheckBatch.from_checks)
    from geofence.decisions.inputs import Policy

_MITRE_LIMIT = 5.0  # buffered corners reach at most this many tolerances out


@dataclass(frozen=True)
class _Tables:
    """What decisions need beyond the index, derived once per (index, tolerance)."""

    rect: np.ndarray  # (n, 6): cx, cy, ux, uy, half-length, half-width (metres); NaN: not a rect
    poly_of: np.ndarray  # zone -> buffered polygon number, -1 for none
    pframe: np.ndarray  # (polygons, 4): origin x, y and cos, sin of the frame's rotation
    pvx: np.ndarray  # buffered non-rectangular fenced boxes in their frames, flat rings
    pvy: np.ndarray
    pring_start: np.ndarray
    pzone_ring_start: np.ndarray
    fenced: np.ndarray  # fenced parking boxes
    width: np.ndarray  # each fenced box's width (m): its oriented envelope's short side
    beacon_position: Mapping[str, int]
    open_masks: dict[str | None, tuple[np.ndarray, np.ndarray]]
    box_grid: tuple[Any, ...]  # see _box_grid
    # the single-check path's caches: kernel arguments per (policy id, operator), and
    # the ids and zone mappings of the zone set as Python objects
    ids: list[str] = field(default_factory=list)
    single_args: dict[tuple[str, str | None], tuple[Any, ...]] = field(default_factory=dict)
    zone_info: dict[int, Mapping[str, Any]] = field(default_factory=dict)


_TABLES: weakref.WeakKeyDictionary[ZoneIndex, dict[float, _Tables]] = weakref.WeakKeyDictionary()


_TABLES_LOCK = threading.Lock()


def _build_tables(index: ZoneIndex, tolerance: float) -> _Tables:
    from geofence.index import _flatten  # the index's own ring layout

    zs = index.zone_set
    fenced = (zs.kind == KIND_PARKING) & zs.fenced
    rect = _rectangles(zs.geometry_m)
    rect[~fenced] = np.nan
    others = np.flatnonzero(fenced & np.isnan(rect[:, 0]))
    poly_of = np.full(len(zs), -1, np.int64)
    poly_of[others] = np.arange(len(others))
    buffered = shapely.buffer(
        zs.geometry_m[others], tolerance, join_style="mitre", mitre_limit=_MITRE_LIMIT
    )
    # exteriors counter-clockwise, holes clockwise: _poly_p's signed triangles need one
    # consistent sense (GEOS's buffer gives the other; rotations keep it)
    buffered = shapely.orient_polygons(buffered)
    framed, pframe = _frames(buffered)
    if len(others):
        pvx, pvy, pring, pzone = _flatten(framed)
    else:
        pvx = pvy = np.zeros(1)
        pring = np.zeros(1, np.int64)
        pzone = np.zeros(1, np.int64)
    width = np.full(len(zs), np.inf)
    width[fenced] = 2.0 * np.minimum(rect[fenced, 4], rect[fenced, 5])
    for p in others:
        env = shapely.oriented_envelope(zs.geometry_m[p])
        xy = shapely.get_coordinates(env)
        sides = np.hypot(*np.diff(xy, axis=0).T) if len(xy) > 1 else np.zeros(1)
        width[p] = float(sides[:2].min()) if len(sides) >= 2 else 0.0
    stud: dict[str, int] = {}
    for p in np.flatnonzero(fenced):
        for b in zs.beacons[p]:
            stud.setdefault(b, int(p))
    return _Tables(
        rect=np.ascontiguousarray(rect),
        poly_of=poly_of,
        pframe=pframe,
        pvx=pvx,
        pvy=pvy,
        pring_start=pring,
        pzone_ring_start=pzone,
        fenced=fenced,
        width=width,
        beacon_position=stud,
        open_masks={},
        box_grid=_box_grid(index, fenced),
        ids=[str(i) for i in zs.ids.tolist()],
    )


def _tables(index: ZoneIndex, tolerance: float) -> _Tables:
    with _TABLES_LOCK:
        per_index = _TABLES.setdefault(index, {})
        t = per_index.get(tolerance)
        if t is None:
            t = per_index[tolerance] = _build_tables(index, tolerance)
        return t


def _open_masks(index: ZoneIndex, t: _Tables, operator: str | None) -> tuple[np.ndarray, ...]:
    """(zones open to the operator, fenced boxes open to it); cached per operator."""
    masks = t.open_masks.get(operator)
    if masks is None:
        open_any = index.zone_set.open_to(operator)
        masks = t.open_masks[operator] = (open_any, t.fenced & open_any)
    return masks


def _static_args(
    index: ZoneIndex, t: _Tables, policy: Policy, operator: str | None
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The arguments of :func:`_decide` that depend on (index, policy, operator) only."""
    zs = index.zone_set
    service = index.service_index
    open_any, open_fenced = _open_masks(index, t, operator)
    head = (
        (index._gtuple, False, _NO_SERVICE_MAP)
        if service is None
        else (service._gtuple, True, _service_map(service))
    )
    tail = (
        zs.kind,
        zs.heading_deg,
        zs.active_from,
        zs.active_to,
        t.fenced,
        open_fenced,
        open_any,
        t.rect,
        t.poly_of,
        t.pframe,
        t.pvx,
        t.pvy,
        t.pring_start,
        t.pzone_ring_start,
        policy.tolerance_m,
        policy.settle_p,
        policy.reject_p,
        policy.max_accuracy_m,
        policy.heading_tolerance_deg,
        policy.beacon_p,
        policy.k_nearest,
        policy.nearest_radius_m,
        t.box_grid,
        t.width,
        policy.narrow_box_m,
        policy.reject_sigmas,
        policy.reject_margin_m,
    )
    return head, tail


def _zone_info(index: ZoneIndex, t: _Tables, z: int) -> Mapping[str, Any]:
    """The ``zone`` mapping of a decision matched to position z (cached; copy it)."""
    info = t.zone_info.get(z)
    if info is None:
        zs = index.zone_set
        info = t.zone_info[z] = {
            "id": str(zs.ids[z]),
            "kind": KIND_NAMES[int(zs.kind[z])],
            "fenced": bool(zs.fenced[z]),
            "district": str(zs.district[z]),
            "name": str(zs.name[z]),
        }
    return info
