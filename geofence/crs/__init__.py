"""Coordinate reference systems: WGS-84, CGCS2000, GCJ-02, BD-09 and the metric projection.

Operators report fixes in one of four geographic systems (`CRS_NAMES`):

``wgs84``
    Raw GNSS longitude/latitude (EPSG:4326). The engine's internal system.
``cgcs2000``
    China Geodetic Coordinate System 2000 (EPSG:4490). Treated here as identical to
    WGS-84: the two realisations differ by a few centimetres, far below the error of
    any phone fix, and no public transformation between them is more accurate than
    the null one (PROJ itself uses a "ballpark" null transformation).
``gcj02``
    The obfuscated "Mars" system required for maps published in China (AMap/Gaode,
    Tencent, Apple and Google maps of China). It shifts WGS-84 by a smooth, non-linear
    offset: 570-640 m in Zhuhai (about +0.005 deg lon, -0.003 deg lat).
``bd09``
    Baidu's system: a second, small rotation-and-scale obfuscation on top of GCJ-02
    (1.2-1.3 km from WGS-84 in Zhuhai).

Conventions shared by every function taking ``lon, lat``:

- Inputs are anything numeric that NumPy converts to float64: Python numbers, lists,
  arrays of any shape and numeric dtype. ``lon`` and ``lat`` are broadcast together.
- Outputs are new float64 arrays (never views of the inputs) of the broadcast shape;
  a scalar input gives arrays of shape ``(1,)`` ("a single fix is an array of one").
- NaN propagates: a NaN input coordinate is NaN in the output, and a point the
  GCJ-02/BD-09 formulas are applied to comes back as ``(nan, nan)`` if either of its
  coordinates is NaN (NaN compares false, so `out_of_china` does not flag it).
  Infinite coordinates are outside China and therefore returned unchanged.
- Non-numeric input (strings, booleans, complex or object arrays) and shapes that do
  not broadcast raise `CRSError`.

Everything here is thread-safe (pyproj transformers are, since pyproj 3.1).

Modules:

* :mod:`~geofence.crs.names`: `CRS_NAMES`, `PROJECTED_CRS`, `check_crs` and the input
  checks every function shares;
* :mod:`~geofence.crs.formulas`: the GCJ-02 / BD-09 formulas (vector and scalar kernels,
  the iterative inverses);
* :mod:`~geofence.crs.datum`: the public datum conversions and the out-of-China rule;
* :mod:`~geofence.crs.projection`: `project` / `unproject` (EPSG:4547 metres).
"""

from geofence.crs.datum import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geofence.crs.names import CRS_NAMES, PROJECTED_CRS, check_crs
from geofence.crs.projection import project, unproject

__all__ = [
    "CRS_NAMES",
    "PROJECTED_CRS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "check_crs",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "project",
    "to_wgs84",
    "unproject",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
