"""The datum checks: with a reference layer (an earlier zone set), a zone that moved
100 m to 2.5 km from the reference zone with the same id, and that reading as GCJ-02 or
BD-09 puts back within 5 m, is flagged ``looks-like-gcj02`` / ``looks-like-bd09``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import shapely

from zones.validate.loading import _is_seq, load_geojson
from zones.validate.report import _Collector
from zones.validate.rings import _build, _geometry_rings, _range_filter, _Zones
from zones.validate.rules import DATUM_MATCH_M, DATUM_SHIFT_RANGE_M


def _reference_centroids(reference: Any) -> dict[str, tuple[float, float]]:
    try:
        doc = load_geojson(reference)
    except ValueError as exc:
        raise ValueError(f"reference: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise ValueError("reference: not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not _is_seq(features):
        raise ValueError("reference: 'features' is not an array")
    z = _Zones()
    for feat in features:
        if not isinstance(feat, Mapping):
            continue
        fid = feat.get("id")
        if isinstance(fid, bool) or not isinstance(fid, str | int) or fid == "":
            continue
        parts, gtype, _ = _geometry_rings(feat.get("geometry"), None)
        if parts is None:
            continue
        z.feat.append(len(z.feat))
        z.label.append(str(fid))
        z.kind.append(None)
        z.parts.append(parts)
        z.multi.append(gtype == "MultiPolygon")
    if z.parts:
        z = _range_filter(z, None)
    if not z.parts:
        return {}
    geoms = _build(z)[0]
    cen = shapely.get_coordinates(shapely.centroid(geoms))
    return {lab: (float(x), float(y)) for lab, (x, y) in zip(z.label, cen, strict=True)}


def _datum_checks(
    z: _Zones, geoms: np.ndarray, valid: np.ndarray, reference: Any, out: _Collector
) -> None:
    from geofence import crs

    ref = _reference_centroids(reference)
    ks = [k for k in np.flatnonzero(valid).tolist() if z.label[k] in ref]
    if not ks:
        return
    cen = shapely.get_coordinates(shapely.centroid(geoms[ks]))
    ref_c = np.array([ref[z.label[k]] for k in ks])
    rx, ry = crs.project(ref_c[:, 0], ref_c[:, 1])
    x, y = crs.project(cen[:, 0], cen[:, 1])
    moved = np.hypot(np.asarray(x) - rx, np.asarray(y) - ry)
    cand = (moved >= DATUM_SHIFT_RANGE_M[0]) & (moved <= DATUM_SHIFT_RANGE_M[1])
    if not cand.any():
        return
    lon, lat = cen[cand, 0], cen[cand, 1]
    crx, cry = np.asarray(rx)[cand], np.asarray(ry)[cand]
    found = np.zeros(int(cand.sum()), dtype=object)
    for name, conv in (("gcj02", crs.gcj02_to_wgs84), ("bd09", crs.bd09_to_wgs84)):
        wl, wa = conv(lon, lat)
        wx, wy = crs.project(np.asarray(wl, dtype=float), np.asarray(wa, dtype=float))
        d = np.hypot(np.asarray(wx) - crx, np.asarray(wy) - cry)
        hit = (d <= DATUM_MATCH_M) & (found == 0)
        found[hit] = name
    idx = np.flatnonzero(cand)
    for j, name in enumerate(found.tolist()):
        if not name:
            continue
        k = ks[idx[j]]
        label = "GCJ-02" if name == "gcj02" else "BD-09"
        out.warning(
            f"looks-like-{name}",
            f"is {moved[idx[j]]:.0f} m from the reference zone with the same id; read as "
            f"{label} it is within {DATUM_MATCH_M:g} m of it",
            feature=z.label[k],
            index=z.feat[k],
        )
