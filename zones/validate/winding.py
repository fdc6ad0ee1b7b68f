"""Rewinding (``--fix``): :func:`rewind` / :func:`fix_winding` turn exterior rings
counter-clockwise and holes clockwise (RFC 7946) without touching anything else, and
:func:`dumps_geojson` writes the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from zones.validate.loading import _is_seq
from zones.validate.rings import _ring_array


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def rewind(fc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Like :func:`fix_winding`, also returning one line per feature it changed."""
    doc = dict(fc)
    features = fc.get("features")
    if not _is_seq(features):
        return doc, []
    fixed: list[str] = []
    new_features: list[Any] = []
    for i, feat in enumerate(features):
        new_features.append(feat)
        if not isinstance(feat, Mapping):
            continue
        geom = feat.get("geometry")
        if not isinstance(geom, Mapping) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        coords = geom.get("coordinates")
        if not _is_seq(coords):
            continue
        polys = [coords] if geom["type"] == "Polygon" else list(coords)
        n_ext = n_hole = 0
        new_polys: list[Any] = []
        for poly in polys:
            if not _is_seq(poly):
                new_polys.append(poly)
                continue
            new_rings: list[Any] = []
            for r, ring in enumerate(poly):
                a, _, _ = _ring_array(ring)
                if a is None:
                    new_rings.append(ring)
                    continue
                s = _signed_area(a)
                if (r == 0 and s < 0) or (r > 0 and s > 0):
                    new_rings.append(list(ring)[::-1])
                    if r == 0:
                        n_ext += 1
                    else:
                        n_hole += 1
                else:
                    new_rings.append(ring)
            new_polys.append(new_rings)
        if not (n_ext or n_hole):
            continue
        new_geom = dict(geom)
        new_geom["coordinates"] = new_polys[0] if geom["type"] == "Polygon" else new_polys
        new_feat = dict(feat)
        new_feat["geometry"] = new_geom
        new_features[-1] = new_feat
        fid = feat.get("id")
        label = str(fid) if isinstance(fid, str | int) and fid != "" else f"#{i}"
        what = []
        if n_ext:
            what.append(f"{n_ext} exterior ring{'s' if n_ext > 1 else ''} to counter-clockwise")
        if n_hole:
            what.append(f"{n_hole} hole{'s' if n_hole > 1 else ''} to clockwise")
        fixed.append(f"{label}: rewound {' and '.join(what)}")
    doc["features"] = new_features
    return doc, fixed


def fix_winding(fc: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``fc`` with RFC 7946 winding: exterior rings counter-clockwise,
    holes clockwise. Malformed rings are left as they are; the input is not modified
    (unchanged features are shared with it)."""
    return rewind(fc)[0]


def dumps_geojson(doc: Any) -> bytes:
    """Serialize a FeatureCollection as compact UTF-8 JSON (NaN written as null)."""
    return orjson.dumps(doc) + b"\n"
