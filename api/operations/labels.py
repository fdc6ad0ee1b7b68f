"""Labelled trips for ``geofence calibrate``: a label file, or the audit log's beacon hits.

A label file is JSON Lines: each line a check body as ``POST /v1/checks`` takes it,
plus ``"operator"`` (the class is per operator) and ``"truth"``: ``{"lon", "lat"}``
(a surveyed WGS-84 position) or ``{"zone_id"}`` (the box the bike stood in). The
whole file is read before anything is fitted: the first bad line raises
:class:`LabelError` naming the line (1-based) and the field (``truth.zone_id``,
``fixes[0].lat``, ...), so the command writes nothing.

From the audit log, a recorded check whose body heard a Bluetooth stud at
``>= policy.beacon_rssi_dbm`` (the base policy's threshold) that is bound to a box
(the zone's ``beacons`` in the zone-set version the check was decided with) is a
label naming that box; the strongest stud wins, as in the engine. The label carries
that version's geometry of the box, so a later layout change does not move it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geofence
from geofence.fitting import Label

__all__ = ["AuditLabels", "LabelError", "labels_from_audit", "read_labels"]

_MAX_NAME = 64


class LabelError(ValueError):
    """A label file's line breaks a rule: ``line`` (1-based) and ``field`` name it."""

    def __init__(self, line: int, field: str, message: str) -> None:
        where = f"line {line}" + (f", {field}" if field else "")
        super().__init__(f"{where}: {message}")
        self.line = line
        self.field = field


def _truth(doc: Any, line: int, zone_ids: Mapping[str, int] | None) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        raise LabelError(line, "truth", 'expected {"lon", "lat"} or {"zone_id"}')
    keys = set(doc)
    if keys == {"zone_id"}:
        z = doc["zone_id"]
        if not isinstance(z, str) or not z:
            raise LabelError(line, "truth.zone_id", "expected a non-empty string")
        if zone_ids is not None and z not in zone_ids:
            raise LabelError(line, "truth.zone_id", f"no zone {z!r} in the zone set")
        return {"zone_id": z}
    if keys == {"lon", "lat"}:
        out = {}
        for name, lim in (("lon", 180.0), ("lat", 90.0)):
            v = doc[name]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise LabelError(line, f"truth.{name}", "expected a finite number")
            if abs(v) > lim:
                raise LabelError(line, f"truth.{name}", f"{v} is out of range (+-{lim:g})")
            out[name] = float(v)
        return out
    extra = sorted(keys - {"lon", "lat", "zone_id"})
    if extra:
        raise LabelError(line, f"truth.{extra[0]}", "unknown field (expected lon, lat or zone_id)")
    missing = "lat" if "lon" in keys else "lon" if "lat" in keys else "zone_id"
    if "zone_id" in keys:  # both a point and a zone
        raise LabelError(line, "truth", "give either lon and lat or zone_id, not both")
    raise LabelError(line, f"truth.{missing}", "missing")


def read_labels(path: Path, zone_ids: Mapping[str, int] | None = None) -> list[Label]:
    """Every label of a JSON Lines file (blank lines skipped); :class:`LabelError` else.

    ``zone_ids`` (the zone set's id -> position) checks that each truth box exists.
    """
    labels = []
    with path.open(encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LabelError(n, "", f"not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(doc, dict):
                raise LabelError(n, "", "expected a JSON object")
            op = doc.pop("operator", None)
            if not isinstance(op, str) or not 1 <= len(op) <= _MAX_NAME:
                raise LabelError(n, "operator", f"expected a name of 1-{_MAX_NAME} characters")
            if "truth" not in doc:
                raise LabelError(n, "truth", "missing")
            truth = _truth(doc.pop("truth"), n, zone_ids)
            try:
                check = geofence.Check.from_mapping(doc, operator=op)
            except geofence.CheckError as exc:
                raise LabelError(n, exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None
            labels.append(Label(check, **truth))
    return labels


@dataclass
class AuditLabels:
    """Labels drawn from the audit log, and what was passed over."""

    labels: list[Label]
    records: int = 0  # recorded checks read
    unparsable: int = 0  # bodies the engine can no longer parse


def _beacon_boxes(zs: geofence.ZoneSet) -> dict[str, int]:
    """Stud id -> position of the fenced parking box it is bound to."""
    out: dict[str, int] = {}
    for pos, studs in enumerate(zs.beacons):
        if zs.kind[pos] == geofence.KIND_PARKING and zs.fenced[pos]:
            for s in studs:
                out.setdefault(s, pos)
    return out


def labels_from_audit(
    store: Any,
    *,
    operator: str,
    policy: geofence.Policy,
    since: datetime | None = None,
    load_zone_set: Any = None,
) -> AuditLabels:
    """Beacon-named labels of ``operator``'s recorded checks (see the module docstring).

    ``store`` is an :class:`api.storage.Store`; ``load_zone_set(store, version)``
    builds a stored version (default :func:`api.service.load_zone_set`).
    """
    if load_zone_set is None:
        from api.service import load_zone_set
    studs: dict[int, tuple[geofence.ZoneSet, dict[str, int]]] = {}
    out = AuditLabels([])
    for rec in _records(store, operator, since):
        out.records += 1
        body = rec["request"]
        heard = [
            b
            for b in body.get("beacons") or ()
            if isinstance(b, Mapping)
            and isinstance(b.get("rssi"), int | float)
            and b["rssi"] >= policy.beacon_rssi_dbm
        ]
        if not heard:
            continue
        v = rec["zone_set_version"]
        if v not in studs:
            zs = load_zone_set(store, v)
            studs[v] = (zs, _beacon_boxes(zs))
        zs, bound = studs[v]
        named = [b for b in heard if b.get("id") in bound]
        if not named:
            continue
        best = max(named, key=lambda b: (b["rssi"], b["id"]))
        pos = bound[best["id"]]
        try:
            check = geofence.Check.from_mapping(body, operator=rec["operator"])
        except geofence.CheckError:
            out.unparsable += 1
            continue
        out.labels.append(Label(check, zone_id=str(zs.ids[pos]), box_m=zs.geometry_m[pos]))
    return out


def _records(store: Any, operator: str, since: datetime | None) -> Iterator[dict[str, Any]]:
    yield from store.iter_checks(since=since, operator=operator)
