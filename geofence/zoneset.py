"""The immutable zone set: zone attributes in parallel arrays, geometries in two CRSs.

A :class:`ZoneSet` knows nothing about indexes or decisions; :class:`geofence.ZoneIndex`
answers spatial queries over it with integer positions into these arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from geofence import crs as _crs
from geofence.errors import ZoneDataError

__all__ = ["KIND_NAMES", "KIND_NO_PARKING", "KIND_PARKING", "ZoneSet"]

KIND_PARKING = 0
KIND_NO_PARKING = 1
KIND_NAMES = ("parking", "no_parking")
#: the layout of :meth:`ZoneSet.to_snapshot`; a snapshot of another is rebuilt from GeoJSON
SNAPSHOT_FORMAT = "zoneset-npz-1"
_KIND_CODES = {name: code for code, name in enumerate(KIND_NAMES)}

_NO_TIME_FROM = -math.inf
_NO_TIME_TO = math.inf


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def parse_time(value: Any, *, feature_id: str | None, field_name: str) -> float | None:
    """Parse an RFC 3339 timestamp (or None) to POSIX seconds; naive times are refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ZoneDataError(
            f"zone {feature_id!r}: property {field_name!r} must be an RFC 3339 string or null, "
            f"got {type(value).__name__}",
            feature_id=feature_id,
            rule="bad-property-type",
        )
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ZoneDataError(
            f"zone {feature_id!r}: property {field_name!r} is not an RFC 3339 time: {value!r}",
            feature_id=feature_id,
            rule="bad-property-type",
        ) from None
    if t.tzinfo is None:
        raise ZoneDataError(
            f"zone {feature_id!r}: property {field_name!r} has no UTC offset: {value!r}",
            feature_id=feature_id,
            rule="bad-property-type",
        )
    return t.timestamp()


def _ring(coords: Any, *, feature_id: str, where: str) -> np.ndarray:
    try:
        a = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError):
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} is not an array of [lon, lat] positions",
            feature_id=feature_id,
            rule="bad-geometry",
        ) from None
    if a.ndim != 2 or a.shape[1] < 2:
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} is not an array of [lon, lat] positions",
            feature_id=feature_id,
            rule="bad-geometry",
        )
    a = a[:, :2]
    if not np.isfinite(a).all():
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} has a NaN or infinite coordinate",
            feature_id=feature_id,
            rule="non-finite-coordinate",
        )
    if len(a) < 4:
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} has {len(a)} positions; a ring needs at least 4",
            feature_id=feature_id,
            rule="too-few-positions",
        )
    if not (a[0] == a[-1]).all():
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} is not closed (first position != last)",
            feature_id=feature_id,
            rule="unclosed-ring",
        )
    if (np.abs(a[:, 0]) > 180).any() or (np.abs(a[:, 1]) > 90).any():
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} has a position beyond lon ±180 / lat ±90 "
            "(lon/lat swapped?)",
            feature_id=feature_id,
            rule="lonlat-out-of-range",
        )
    return a


def _polygon(rings: Any, *, feature_id: str, where: str) -> shapely.Polygon:
    if not isinstance(rings, list) or not rings:
        raise ZoneDataError(
            f"zone {feature_id!r}: {where} must be a non-empty list of rings",
            feature_id=feature_id,
            rule="bad-geometry",
        )
    shell = _ring(rings[0], feature_id=feature_id, where=f"{where} exterior ring")
    holes = [
        _ring(r, feature_id=feature_id, where=f"{where} hole {i}")
        for i, r in enumerate(rings[1:], start=1)
    ]
    return shapely.Polygon(shell, holes)


def _geometry(geom: Any, *, feature_id: str) -> shapely.Geometry:
    if not isinstance(geom, Mapping):
        raise ZoneDataError(
            f"zone {feature_id!r}: geometry is missing",
            feature_id=feature_id,
            rule="missing-geometry",
        )
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Polygon":
        g: shapely.Geometry = _polygon(coords, feature_id=feature_id, where="Polygon")
    elif gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise ZoneDataError(
                f"zone {feature_id!r}: MultiPolygon has no polygons",
                feature_id=feature_id,
                rule="bad-geometry",
            )
        g = shapely.MultiPolygon(
            [
                _polygon(p, feature_id=feature_id, where=f"MultiPolygon part {i}")
                for i, p in enumerate(coords)
            ]
        )
    else:
        raise ZoneDataError(
            f"zone {feature_id!r}: geometry type {gtype!r} is not Polygon or MultiPolygon",
            feature_id=feature_id,
            rule="bad-geometry-type",
        )
    if shapely.area(shapely.convex_hull(g)) <= 0:
        raise ZoneDataError(
            f"zone {feature_id!r}: geometry has zero area", feature_id=feature_id, rule="zero-area"
        )
    if not shapely.is_valid(g):
        reason = shapely.is_valid_reason(g)
        raise ZoneDataError(
            f"zone {feature_id!r}: invalid geometry ({reason})",
            feature_id=feature_id,
            rule="self-intersection" if "intersection" in reason.lower() else "invalid-geometry",
        )
    return g


def _prop(props: Mapping[str, Any], name: str, types: tuple[type, ...], default: Any, fid: str):
    value = props.get(name, default)
    # bool is an int subclass: refuse it where a number is wanted
    if value is not None and (
        not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
    ):
        want = " or ".join(t.__name__ for t in types)
        raise ZoneDataError(
            f"zone {fid!r}: property {name!r} must be {want}, got {type(value).__name__}",
            feature_id=fid,
            rule="bad-property-type",
        )
    return value


def _str_list(props: Mapping[str, Any], name: str, fid: str) -> tuple[str, ...]:
    value = props.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ZoneDataError(
            f"zone {fid!r}: property {name!r} must be a list of strings",
            feature_id=fid,
            rule="bad-property-type",
        )
    return tuple(value)


@dataclass(frozen=True, eq=False)
class ZoneSet:
    """An immutable set of parking boxes and no-parking areas.

    Zone attributes live in parallel numpy arrays (read-only), indexed by position
    ``0 .. len(zs) - 1``; :class:`geofence.ZoneIndex` answers queries with these
    positions. Geometries are kept in WGS-84 lon/lat (``geometry``) and projected once
    to metres in EPSG:4547 (``geometry_m``, CGCS2000 3-degree Gauss-Kruger CM 114E).

    ``version`` is the store's version number of the set (None when it was not
    stored); every decision records it.

    Build one with :meth:`from_geojson` (a GeoJSON FeatureCollection, DESIGN §3) or
    :meth:`from_arrays`. Bad input raises :class:`geofence.errors.ZoneDataError`
    naming the feature id, the field and the rule; nothing is silently dropped.

    Examples
    --------
    >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
    ...   "id": "ZH-XZ-000001", "properties": {"kind": "parking", "fenced": True},
    ...   "geometry": {"type": "Polygon", "coordinates": [[[113.55, 22.25],
    ...     [113.55008, 22.25], [113.55008, 22.25002], [113.55, 22.25002], [113.55, 22.25]]]}}]}
    >>> zs = ZoneSet.from_geojson(fc)
    >>> len(zs), zs.ids[0], bool(zs.fenced[0])
    (1, 'ZH-XZ-000001', True)
    >>> round(float(zs.area_m2[0]), 1)
    18.3
    """

    ids: np.ndarray
    kind: np.ndarray
    fenced: np.ndarray
    geometry: np.ndarray
    geometry_m: np.ndarray
    district: np.ndarray
    name: np.ndarray
    capacity: np.ndarray
    heading_deg: np.ndarray
    active_from: np.ndarray
    active_to: np.ndarray
    operators: tuple[frozenset[str], ...]
    beacons: tuple[tuple[str, ...], ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_geojson(
        cls, source: Mapping[str, Any] | str | Path, *, version: int | None = None
    ) -> ZoneSet:
        """Build a zone set from a GeoJSON FeatureCollection (a mapping or a file path).

        Every feature needs a unique string (or integer) ``id``, a Polygon or
        MultiPolygon geometry with closed rings of at least 4 finite positions that
        is valid (no self-intersection), and properties as DESIGN §3 lists them.
        Missing optional properties take their defaults (``fenced`` false,
        ``operators`` empty = every operator, times null = always active).
        """
        if isinstance(source, str | Path):
            path = Path(source)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ZoneDataError(f"{path}: cannot read ({exc.strerror})", rule="io") from None
            try:
                source = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ZoneDataError(f"{path}: not JSON ({exc})", rule="not-json") from None
        if not isinstance(source, Mapping) or source.get("type") != "FeatureCollection":
            raise ZoneDataError(
                "not a GeoJSON FeatureCollection (top-level 'type' must be 'FeatureCollection')",
                rule="not-feature-collection",
            )
        features = source.get("features")
        if not isinstance(features, list):
            raise ZoneDataError(
                "FeatureCollection has no 'features' array", rule="not-feature-collection"
            )
        meta = {k: v for k, v in source.items() if k not in ("type", "features")}
        return cls.from_features(features, metadata=meta, version=version)

    @classmethod
    def from_features(
        cls,
        features: Sequence[Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> ZoneSet:
        """Build a zone set from a sequence of GeoJSON Feature mappings."""
        n = len(features)
        ids: list[str] = []
        seen: set[str] = set()
        kind = np.empty(n, np.int8)
        fenced = np.zeros(n, bool)
        capacity = np.zeros(n, np.int32)
        heading = np.full(n, np.nan)
        t_from = np.full(n, _NO_TIME_FROM)
        t_to = np.full(n, _NO_TIME_TO)
        district: list[str] = []
        name: list[str] = []
        operators: list[frozenset[str]] = []
        beacons: list[tuple[str, ...]] = []
        geoms: list[shapely.Geometry] = []
        for i, feat in enumerate(features):
            if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
                raise ZoneDataError(f"feature #{i} is not a GeoJSON Feature", rule="not-a-feature")
            raw_id = feat.get("id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
                raise ZoneDataError(
                    f"feature #{i} has no id (a non-empty string)", rule="missing-id"
                )
            fid = str(raw_id)
            if fid in seen:
                raise ZoneDataError(
                    f"zone {fid!r}: duplicate id (feature #{i})",
                    feature_id=fid,
                    rule="duplicate-id",
                )
            seen.add(fid)
            ids.append(fid)
            props = feat.get("properties") or {}
            if not isinstance(props, Mapping):
                raise ZoneDataError(
                    f"zone {fid!r}: properties must be an object",
                    feature_id=fid,
                    rule="bad-property-type",
                )
            k = props.get("kind")
            if not isinstance(k, str) or k not in _KIND_CODES:
                raise ZoneDataError(
                    f"zone {fid!r}: {'missing' if k is None else 'unknown'} kind {k!r} "
                    "(expected 'parking' or 'no_parking')",
                    feature_id=fid,
                    rule="unknown-kind",
                )
            kind[i] = _KIND_CODES[k]
            fenced[i] = bool(_prop(props, "fenced", (bool,), False, fid)) and k == "parking"
            cap = _prop(props, "capacity", (int,), 0, fid)
            if cap is not None and not 0 <= cap < 2**31:
                raise ZoneDataError(
                    f"zone {fid!r}: capacity must be an integer from 0 to 2**31 - 1, got {cap}",
                    feature_id=fid,
                    rule="bad-property-type",
                )
            capacity[i] = cap or 0
            h = _prop(props, "heading_deg", (int, float), None, fid)
            if h is not None:
                if not (math.isfinite(h) and 0 <= h < 360):
                    raise ZoneDataError(
                        f"zone {fid!r}: heading_deg must be in [0, 360), got {h}",
                        feature_id=fid,
                        rule="bad-property-type",
                    )
                heading[i] = h
            a = parse_time(props.get("active_from"), feature_id=fid, field_name="active_from")
            b = parse_time(props.get("active_to"), feature_id=fid, field_name="active_to")
            if a is not None:
                t_from[i] = a
            if b is not None:
                t_to[i] = b
            if t_from[i] >= t_to[i]:
                raise ZoneDataError(
                    f"zone {fid!r}: active_from must be before active_to",
                    feature_id=fid,
                    rule="bad-active-period",
                )
            district.append(_prop(props, "district", (str,), "", fid) or "")
            name.append(_prop(props, "name", (str,), "", fid) or "")
            operators.append(frozenset(_str_list(props, "operators", fid)))
            beacons.append(_str_list(props, "beacons", fid))
            geoms.append(_geometry(feat.get("geometry"), feature_id=fid))
        return cls.from_arrays(
            np.array(geoms, dtype=object),
            ids,
            kind=kind,
            fenced=fenced,
            district=district,
            name=name,
            capacity=capacity,
            heading_deg=heading,
            active_from=t_from,
            active_to=t_to,
            operators=operators,
            beacons=beacons,
            metadata=metadata,
            version=version,
        )

    @classmethod
    def from_arrays(
        cls,
        geometry: np.ndarray | Sequence[shapely.Geometry],
        ids: Sequence[str] | np.ndarray,
        *,
        kind: Any = KIND_PARKING,
        fenced: Any = False,
        district: Any = "",
        name: Any = "",
        capacity: Any = 0,
        heading_deg: Any = np.nan,
        active_from: Any = _NO_TIME_FROM,
        active_to: Any = _NO_TIME_TO,
        operators: Iterable[Iterable[str]] | None = None,
        beacons: Iterable[Iterable[str]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> ZoneSet:
        """Build a zone set from shapely geometries (WGS-84 lon/lat) and attribute arrays.

        Scalars broadcast. This is the fast path for synthetic cities; it trusts
        its geometries (use :meth:`from_geojson` for untrusted input).
        """
        geometry = np.asarray(geometry, dtype=object)
        n = len(geometry)
        ids_a = np.asarray(ids, dtype=str)
        if ids_a.shape != (n,):
            raise ZoneDataError(f"{len(ids_a)} ids for {n} geometries", rule="shape")
        if len(np.unique(ids_a)) != n:
            raise ZoneDataError("zone ids are not unique", rule="duplicate-id")

        def arr(v: Any, dtype: Any) -> np.ndarray:
            return _frozen(np.array(np.broadcast_to(np.asarray(v, dtype=dtype), (n,))))

        geometry_m = shapely.transform(
            geometry, lambda c: np.column_stack(_crs.project(c[:, 0], c[:, 1]))
        )
        return cls(
            ids=_frozen(ids_a),
            kind=arr(kind, np.int8),
            fenced=arr(fenced, bool),
            geometry=_frozen(geometry),
            geometry_m=_frozen(geometry_m),
            district=arr(district, str),
            name=arr(name, str),
            capacity=arr(capacity, np.int32),
            heading_deg=arr(heading_deg, np.float64),
            active_from=arr(active_from, np.float64),
            active_to=arr(active_to, np.float64),
            operators=tuple(frozenset(o) for o in operators)
            if operators is not None
            else (frozenset(),) * n,
            beacons=tuple(tuple(b) for b in beacons) if beacons is not None else ((),) * n,
            metadata=dict(metadata or {}),
            version=version,
        )

    # ------------------------------------------------------------------ snapshots
    def to_snapshot(self) -> bytes:
        """The zone set as plain arrays in one NumPy ``.npz`` (no pickled objects):
        what :meth:`from_snapshot` rebuilds without parsing GeoJSON or checking every
        feature again (geometries as WKB, exact). ``version`` is not included.

        Examples
        --------
        >>> fc = {"type": "FeatureCollection", "features": [{"type": "Feature",
        ...   "id": "A", "properties": {"kind": "parking", "operators": ["x"]},
        ...   "geometry": {"type": "Polygon", "coordinates": [[[113.55, 22.25],
        ...     [113.55008, 22.25], [113.55008, 22.25002], [113.55, 22.25]]]}}]}
        >>> zs = ZoneSet.from_geojson(fc)
        >>> ZoneSet.from_snapshot(zs.to_snapshot()).checksum == zs.checksum
        True
        """
        wkb = shapely.to_wkb(self.geometry)
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            format=np.array(SNAPSHOT_FORMAT),
            ids=self.ids,
            kind=self.kind,
            fenced=self.fenced,
            district=self.district,
            name=self.name,
            capacity=self.capacity,
            heading_deg=self.heading_deg,
            active_from=self.active_from,
            active_to=self.active_to,
            wkb=np.frombuffer(b"".join(wkb.tolist()), np.uint8),
            wkb_len=np.array([len(b) for b in wkb.tolist()], np.int64),
            operators=np.array([json.dumps(sorted(o)) for o in self.operators], dtype=str),
            beacons=np.array([json.dumps(list(b)) for b in self.beacons], dtype=str),
            metadata=np.array(json.dumps(dict(self.metadata))),
        )
        return buf.getvalue()

    @classmethod
    def from_snapshot(cls, data: bytes, *, version: int | None = None) -> ZoneSet:
        """Rebuild a zone set from :meth:`to_snapshot`'s bytes (trusted: made by this
        code from a zone set that passed its checks). Raises ``ValueError`` for bytes
        of another snapshot format."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if str(z["format"]) != SNAPSHOT_FORMAT:
                raise ValueError(f"snapshot format {str(z['format'])!r}, not {SNAPSHOT_FORMAT!r}")
            raw = z["wkb"].tobytes()
            ends = np.cumsum(z["wkb_len"]).tolist()
            starts = [0, *ends[:-1]] if ends else []
            geometry = shapely.from_wkb([raw[a:b] for a, b in zip(starts, ends, strict=True)])
            return cls.from_arrays(
                np.asarray(geometry, dtype=object),
                z["ids"],
                kind=z["kind"],
                fenced=z["fenced"],
                district=z["district"],
                name=z["name"],
                capacity=z["capacity"],
                heading_deg=z["heading_deg"],
                active_from=z["active_from"],
                active_to=z["active_to"],
                operators=[json.loads(o) for o in z["operators"].tolist()],
                beacons=[json.loads(b) for b in z["beacons"].tolist()],
                metadata=json.loads(str(z["metadata"])),
                version=version,
            )

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"<ZoneSet {len(self)} zones: {int((self.kind == KIND_PARKING).sum())} parking "
            f"({int(self.fenced.sum())} fenced), {int((self.kind == KIND_NO_PARKING).sum())} "
            f"no-parking; checksum {self.checksum[:12]}>"
        )

    @cached_property
    def area_m2(self) -> np.ndarray:
        """Zone areas in square metres (EPSG:4547)."""
        return _frozen(shapely.area(self.geometry_m))

    @cached_property
    def position(self) -> Mapping[str, int]:
        """Zone id -> position."""
        return {zid: i for i, zid in enumerate(self.ids.tolist())}

    @cached_property
    def checksum(self) -> str:
        """SHA-256 over the zones' ids, attributes and WKB geometries, in order."""
        h = hashlib.sha256()
        for i in range(len(self)):
            h.update(
                json.dumps(
                    [
                        str(self.ids[i]),
                        int(self.kind[i]),
                        bool(self.fenced[i]),
                        str(self.district[i]),
                        str(self.name[i]),
                        int(self.capacity[i]),
                        None if math.isnan(self.heading_deg[i]) else float(self.heading_deg[i]),
                        float(self.active_from[i]),
                        float(self.active_to[i]),
                        sorted(self.operators[i]),
                        list(self.beacons[i]),
                    ],
                    ensure_ascii=False,
                ).encode()
            )
        for wkb in shapely.to_wkb(self.geometry):
            h.update(wkb)
        return h.hexdigest()

    def open_to(self, operator: str | None) -> np.ndarray:
        """Boolean mask of zones whose allow-list admits ``operator`` (empty list = all)."""
        return np.fromiter(
            (not ops or (operator is not None and operator in ops) for ops in self.operators),
            dtype=bool,
            count=len(self),
        )

    def active_at(self, t: float) -> np.ndarray:
        """Boolean mask of zones active at POSIX time ``t`` (``active_from <= t < active_to``)."""
        return (self.active_from <= t) & (t < self.active_to)

    def feature(self, pos: int) -> dict[str, Any]:
        """The zone at ``pos`` as a GeoJSON Feature mapping (WGS-84)."""
        return {
            "type": "Feature",
            "id": str(self.ids[pos]),
            "geometry": json.loads(shapely.to_geojson(self.geometry[pos])),
            "properties": self.properties(pos),
        }

    def properties(self, pos: int) -> dict[str, Any]:
        """The zone's DESIGN §3 properties as plain Python values."""

        def iso(t: float) -> str | None:
            if not math.isfinite(t):
                return None
            return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")

        h = float(self.heading_deg[pos])
        return {
            "kind": KIND_NAMES[int(self.kind[pos])],
            "fenced": bool(self.fenced[pos]),
            "district": str(self.district[pos]),
            "name": str(self.name[pos]),
            "capacity": int(self.capacity[pos]),
            "operators": sorted(self.operators[pos]),
            "heading_deg": None if math.isnan(h) else h,
            "beacons": list(self.beacons[pos]),
            "active_from": iso(float(self.active_from[pos])),
            "active_to": iso(float(self.active_to[pos])),
        }
