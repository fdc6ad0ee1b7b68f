"""The synthetic Zhuhai zone set: a seeded, reproducible city of parking boxes.

``synth_zhuhai(seed)`` builds a GeoJSON FeatureCollection (RFC 7946, WGS-84 lon/lat,
counter-clockwise exteriors, clockwise holes) of

* parking boxes (1.5-3 m x 4-20 m, ~5 % non-rectangular), laid in runs along the kerbs
  of a synthetic local street grid per neighbourhood (each with its own orientation),
  clustered around real-ish anchors (ports, stations, malls, campuses, town centres)
  plus many random neighbourhoods on land, densest in 香洲区;
* no-parking areas: port and airshow precincts, plazas (some MultiPolygons, some with
  holes) and major road junctions.

Geometry is built in metres (EPSG:4547 via :mod:`geofence.crs`), kept a few metres
inside the real district outlines (:mod:`zones.districts`), unprojected and rounded to
7 decimals, then re-checked (valid, inside the labelled district, no two boxes touching,
no box touching a no-parking area). The same seed gives a byte-identical file.

Modules, in the order the generator runs:

* :mod:`~zones.synth.params`: seed, path, operators, metric constraints, named places;
* :mod:`~zones.synth.geometry`: projection, box outlines, the keep-apart pass;
* :mod:`~zones.synth.land`: district land in metres and the anchors with their grids;
* :mod:`~zones.synth.noparking`: precincts, plazas and junctions;
* :mod:`~zones.synth.boxes`: kerb-side runs of boxes and their placement;
* :mod:`~zones.synth.features`: GeoJSON features, the re-check, the file text;
* :mod:`~zones.synth.city`: ``synth_zhuhai``, the stages in order;
* :mod:`~zones.synth.cli`: ``geofence zones synth``.
"""

from zones.synth.city import synth_zhuhai
from zones.synth.cli import run_cli
from zones.synth.features import geojson_text, write_geojson
from zones.synth.params import DEFAULT_PATH, DEFAULT_SEED, GENERATOR, OPERATORS

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_SEED",
    "GENERATOR",
    "OPERATORS",
    "geojson_text",
    "run_cli",
    "synth_zhuhai",
    "write_geojson",
]
