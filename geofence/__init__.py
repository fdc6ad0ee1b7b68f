"""The geofence engine: zone sets, coordinate systems, the spatial index, decisions.

Pure domain code: numpy, scipy, shapely, pyproj and numba only; no web, no database, no
environment reads. The public names:

>>> import geofence
>>> sorted(n for n in geofence.__all__ if n[0].isupper())[:3]
['CRSError', 'CheckError', 'GeofenceError']
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
