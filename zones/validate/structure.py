""":func:`validate`, and the file and feature structure it checks first: the
FeatureCollection, its ``crs`` member, the feature count, each feature's type and id
(missing, not a string, too long, duplicated) and vertex counts. Each feature's
properties, sizes and geometry structure are checked in the same pass; the zones that
pass go on to the vectorized geometry checks. Issues are sorted by feature index, file
issues first, keeping the order the rules found them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zones.validate.geometry import _geometry_checks
from zones.validate.loading import _a_type, _is_seq, _short, _source_name, load_geojson
from zones.validate.properties import _check_properties
from zones.validate.report import Report, _Collector
from zones.validate.rings import _geometry_rings, _range_filter, _Zones
from zones.validate.sizes import SizeLimits, _check_sizes

_WGS84_CRS_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
    "urn:ogc:def:crs:EPSG::4490",  # CGCS2000: within centimetres of WGS-84
    "EPSG:4490",
}


def validate(
    source: Mapping[str, Any] | str | Path | bytes,
    *,
    reference: Mapping[str, Any] | str | Path | None = None,
    service_area: Any = None,
    limits: SizeLimits | None = None,
) -> Report:
    """Validate a zone set; the rules: :mod:`zones.validate.rules`.

    ``source``: a FeatureCollection mapping, JSON bytes, JSON text, or a file path.
    ``reference``: an earlier zone set (same forms) to compare against by id, which
    enables the GCJ-02 / BD-09 checks; a reference that is not a FeatureCollection
    raises ``ValueError``. ``service_area``: a shapely geometry in WGS-84 (default
    :func:`zones.districts.service_area`, the Zhuhai city outline). ``limits``: the
    size rules (default :class:`SizeLimits`).
    """
    report = Report(source=_source_name(source))
    out = _Collector()
    try:
        doc = load_geojson(source)
    except ValueError as exc:
        out.error("not-json", f"the file is {exc}")
        report.issues = out.issues
        return report
    _validate_doc(
        doc,
        out,
        report,
        reference=reference,
        service_area=service_area,
        limits=limits or SizeLimits(),
    )
    order = {id(iss): k for k, iss in enumerate(out.issues)}
    report.issues = sorted(
        out.issues, key=lambda i: (-1 if i.index is None else i.index, order[id(i)])
    )
    return report


def _validate_doc(
    doc: Any,
    out: _Collector,
    report: Report,
    *,
    reference: Any,
    service_area: Any,
    limits: SizeLimits,
) -> None:
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        what = (
            f"its type is {_short(doc.get('type'))}"
            if isinstance(doc, Mapping)
            else f"the top level is {_a_type(doc)}"
        )
        out.error("not-feature-collection", f"not a GeoJSON FeatureCollection: {what}")
        return
    features = doc.get("features")
    if not _is_seq(features):
        out.error(
            "not-feature-collection",
            f"'features' is {_a_type(features)}, not an array",
        )
        return
    report.n_features = len(features)
    crs_member = doc.get("crs")
    if crs_member is not None:
        name = None
        if isinstance(crs_member, Mapping) and isinstance(crs_member.get("properties"), Mapping):
            name = crs_member["properties"].get("name")
        if name not in _WGS84_CRS_NAMES:
            out.error("unsupported-crs", f"the file declares crs {_short(name or crs_member)}")
    if not features:
        out.error("no-features", "the FeatureCollection has no features")
        return
    if len(features) > limits.zones:
        out.error(
            "too-many-zones",
            f"the file has {len(features)} features; a zone set holds at most {limits.zones}",
        )
        return

    zones = _Zones()
    set_vertices = 0
    first_index: dict[str, int] = {}
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
            what = (
                f"its type is {_short(feat.get('type'))}"
                if isinstance(feat, Mapping)
                else f"it is {_a_type(feat)}"
            )
            out.error(
                "not-a-feature", f"feature #{i} is not a Feature: {what}", feature=f"#{i}", index=i
            )
            continue
        raw_id = feat.get("id")
        label = f"#{i}"
        if raw_id is None or raw_id == "":
            hint = None
            props = feat.get("properties")
            if isinstance(props, Mapping) and props.get("id") not in (None, ""):
                hint = 'move properties.id to the Feature\'s top-level "id" member'
            out.error("missing-id", f"feature #{i} has no id", feature=label, index=i, hint=hint)
        elif isinstance(raw_id, str):
            label = raw_id
        elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
            label = str(raw_id)
            out.error(
                "bad-id-type",
                f"id {raw_id} is a number, not a string",
                feature=label,
                index=i,
                hint=f'write "id": "{raw_id}"',
            )
        else:
            out.error(
                "bad-id-type",
                f"id {_short(raw_id)} is {_a_type(raw_id)}, not a string",
                feature=label,
                index=i,
            )
        if len(label) > limits.id_chars:
            out.error(
                "id-too-long",
                f"id of {len(label)} characters; at most {limits.id_chars}",
                feature=label[: limits.id_chars] + "…",
                index=i,
            )
            label = label[: limits.id_chars] + "…"
        if label != f"#{i}":
            if label in first_index:
                out.error(
                    "duplicate-id",
                    f"id {label!r} is also used by feature #{first_index[label]} (this is #{i})",
                    feature=label,
                    index=i,
                )
            else:
                first_index[label] = i
        kind = _check_properties(feat.get("properties"), label, i, out)
        _check_sizes(feat.get("properties"), label, i, out, limits)
        parts, gtype, problems = _geometry_rings(feat.get("geometry"), kind)
        for rule, msg in problems:
            out.error(rule, msg, feature=label, index=i)
        if parts is None:
            continue
        n_vertices = sum(len(r) for p in parts for r in p)
        set_vertices += n_vertices
        if n_vertices > limits.vertices:
            out.error(
                "too-many-vertices",
                f"has {n_vertices} vertices; a zone has at most {limits.vertices}",
                feature=label,
                index=i,
            )
            continue
        zones.feat.append(i)
        zones.label.append(label)
        zones.kind.append(kind)
        zones.parts.append(parts)
        zones.multi.append(gtype == "MultiPolygon")

    if set_vertices > limits.set_vertices:
        out.error(
            "too-many-vertices-in-set",
            f"the zones have {set_vertices} vertices in all; a zone set at most "
            f"{limits.set_vertices}",
        )
        return
    if zones.feat:
        zones = _range_filter(zones, out)
    if zones.feat:
        _geometry_checks(zones, out, reference=reference, service_area=service_area)
