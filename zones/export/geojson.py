"""GeoJSON export: ``zones.geojson``, the RFC 7946 FeatureCollection as bundled.

Counter-clockwise exteriors and clockwise holes; ids, properties, order and the
collection's own members (``zone_set`` metadata) kept; coordinates as given (this is the
lossless form, unlike the GBFS and MDS feeds, which round to 6 decimals).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from zones.export._common import Progress, geojson_fragments

__all__ = ["write_geojson"]


def write_geojson(
    fc: Mapping[str, Any], table: Any, geoms: np.ndarray, out: Path, report: Progress
) -> Path:
    """Write ``out/zones.geojson`` from the parsed ``table`` and its rewound ``geoms``."""
    n = len(table)
    report("writing GeoJSON", 0, n)
    feats = [
        {
            "type": "Feature",
            "id": fid,
            "geometry": g,
            "properties": table.features[i].get("properties") or {},
        }
        for i, (fid, g) in enumerate(zip(table.ids.tolist(), geojson_fragments(geoms), strict=True))
    ]
    doc = {k: v for k, v in fc.items() if k not in ("type", "features")}
    path = out / "zones.geojson"
    path.write_bytes(orjson.dumps({"type": "FeatureCollection", **doc, "features": feats}))
    report("writing GeoJSON", n, n)
    return path
