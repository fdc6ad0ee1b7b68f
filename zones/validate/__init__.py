"""Zone-set validation: ``geofence zones validate FILE``.

:func:`validate` reads a GeoJSON FeatureCollection (DESIGN §3) and returns a
:class:`Report`: one :class:`Issue` per broken rule and feature, each naming the
feature (its id, ``#<index>`` when it has none, ``None`` for the file itself), a
stable kebab-case ``rule`` code, a message and a hint on how to fix it. Errors make
a file unfit to upload; warnings do not. The validator never raises on bad content:
whatever the bytes, it returns a report (only an unreadable path raises ``OSError``).
Every rule, its severity and the module that checks it: :mod:`zones.validate.rules`.

Speed: per-feature structure and property checks are one Python pass; geometry
construction, validity, winding, area, service-area, size and overlap checks are
vectorized shapely calls over all zones at once (an 18,000-zone file validates in
well under the 5 s budget).

Modules, in the order a file goes through them:

* :mod:`~zones.validate.rules`: the rule catalogue (codes, severities, thresholds, hints);
* :mod:`~zones.validate.report`: ``Issue``, ``Report`` and the collector rules add to;
* :mod:`~zones.validate.loading`: reading the file (NaN-tolerant JSON) and the JSON-type
  words messages use;
* :mod:`~zones.validate.structure`: ``validate``; the file's and each feature's structure
  and ids, in one pass with the property, size and ring checks;
* :mod:`~zones.validate.properties`: the DESIGN §3 property rules;
* :mod:`~zones.validate.sizes`: ``SizeLimits`` and the size rules;
* :mod:`~zones.validate.rings`: geometry structure (rings, ranges) and the vectorized
  shapely construction;
* :mod:`~zones.validate.geometry`: area, validity, service area, winding, box sizes and
  overlaps;
* :mod:`~zones.validate.datum`: the GCJ-02 / BD-09 checks against a reference layer;
* :mod:`~zones.validate.winding`: ``--fix``: rewinding rings to RFC 7946 order;
* :mod:`~zones.validate.cli`: ``geofence zones validate`` and the rich table.
"""

from zones.validate.cli import render, run_cli
from zones.validate.loading import load_geojson
from zones.validate.report import Issue, Report, Severity
from zones.validate.rules import (
    BOX_AREA_M2,
    BOX_LENGTH_M,
    BOX_WIDTH_M,
    DATUM_MATCH_M,
    DATUM_SHIFT_RANGE_M,
    HINTS,
    KINDS,
    OVERLAP_MIN_M2,
    ZERO_AREA_M2,
)
from zones.validate.sizes import SIZE_RULES, SizeLimits
from zones.validate.structure import validate
from zones.validate.winding import dumps_geojson, fix_winding, rewind

__all__ = [
    "BOX_AREA_M2",
    "BOX_LENGTH_M",
    "BOX_WIDTH_M",
    "DATUM_MATCH_M",
    "DATUM_SHIFT_RANGE_M",
    "HINTS",
    "KINDS",
    "OVERLAP_MIN_M2",
    "SIZE_RULES",
    "ZERO_AREA_M2",
    "Issue",
    "Report",
    "Severity",
    "SizeLimits",
    "dumps_geojson",
    "fix_winding",
    "load_geojson",
    "render",
    "rewind",
    "run_cli",
    "validate",
]
