"""The geofence engine: zone sets, coordinate systems, the spatial index, decisions.

Pure domain code: numpy, scipy, shapely, pyproj and numba only; no web, no database, no
environment reads.

Modules:

* :mod:`~geofence.zoneset`: the immutable zone set (attributes in parallel arrays,
  geometries in WGS-84 and metres);
* :mod:`~geofence.index`: the spatial index (covering zone, nearest zones), over the
  compiled kernels of :mod:`~geofence._kernels`;
* :mod:`~geofence.crs`: coordinate systems (GCJ-02 / BD-09, the EPSG:4547 projection),
  with :mod:`~geofence._tmerc`, the vectorized transverse Mercator;
* :mod:`~geofence.decisions`: settle / reject / review (its own modules are listed there);
* :mod:`~geofence.calibration`: the GNSS error model per device class and quality;
  :mod:`~geofence.fitting` fits it to labelled trips;
* :mod:`~geofence.rfc3339`: the one parser of client times;
* :mod:`~geofence.errors`: the exception classes.

The public names:

>>> import geofence
>>> sorted(n for n in geofence.__all__ if n[0].isupper())[:3]
['BeaconReading', 'CRSError', 'Check']
"""

from geofence import crs
from geofence.decisions import (
    OUTCOMES,
    REASONS,
    BeaconReading,
    Check,
    CheckBatch,
    Decision,
    DecisionBatch,
    Fix,
    Policy,
    decide,
    decide_arrays,
    decide_many,
    decide_values,
)
from geofence.errors import CheckError, CRSError, GeofenceError, PolicyError, ZoneDataError
from geofence.index import ZoneIndex
from geofence.zoneset import KIND_NAMES, KIND_NO_PARKING, KIND_PARKING, ZoneSet

__all__ = [
    "KIND_NAMES",
    "KIND_NO_PARKING",
    "KIND_PARKING",
    "OUTCOMES",
    "REASONS",
    "BeaconReading",
    "CRSError",
    "Check",
    "CheckBatch",
    "CheckError",
    "Decision",
    "DecisionBatch",
    "Fix",
    "GeofenceError",
    "Policy",
    "PolicyError",
    "ZoneDataError",
    "ZoneIndex",
    "ZoneSet",
    "crs",
    "decide",
    "decide_arrays",
    "decide_many",
    "decide_values",
]
