"""The rule catalogue: every rule code, its severity, the module that checks it, the
thresholds the geometry rules use and the hint each issue carries (:data:`HINTS`).

Rules (severity, code), in the order :func:`~zones.validate.validate` runs them:

file level (:mod:`~zones.validate.loading`, :mod:`~zones.validate.structure`)
    error   ``not-json``, ``not-feature-collection``, ``unsupported-crs``, ``no-features``
feature structure and properties (:mod:`~zones.validate.structure`,
:mod:`~zones.validate.properties`)
    error   ``not-a-feature``, ``missing-id``, ``bad-id-type``, ``duplicate-id``,
            ``unknown-kind``, ``bad-properties``, ``bad-property-type``,
            ``bad-active-period``
    warning ``missing-property`` (a parking box without ``fenced``: it defaults to false)
size (:mod:`~zones.validate.sizes`: :class:`~zones.validate.SizeLimits`, the service's
``GEOFENCE_ZONE_*`` settings)
    error   ``id-too-long``, ``name-too-long``, ``too-many-operators`` (operators or
            beacons of one zone), ``too-many-vertices`` (one zone), and for the file
            ``too-many-zones``, ``too-many-vertices-in-set``: a 10 MB id or name, a
            million operators or vertices would otherwise be stored, activated and
            then cost every nearby check (issue 19)
geometry structure (:mod:`~zones.validate.rings`)
    error   ``missing-geometry``, ``bad-geometry-type`` (not a Polygon, or a
            MultiPolygon for a parking box), ``bad-geometry`` (malformed
            coordinates array), ``empty-geometry``, ``non-finite-coordinate``
            (NaN/Infinity, also numbers too large for a double), ``too-few-positions``,
            ``unclosed-ring``, ``lonlat-out-of-range``, ``lonlat-swapped`` (beyond ±90)
geometry (:mod:`~zones.validate.geometry`)
    error   ``zero-area``, ``self-intersection``, ``invalid-geometry`` (other GEOS
            validity failures: hole outside shell, nested shells, ...)
    warning ``clockwise-exterior``, ``counter-clockwise-hole`` (RFC 7946 winding;
            ``--fix`` rewinds them, see :mod:`~zones.validate.winding`)
placement (:mod:`~zones.validate.geometry`, :mod:`~zones.validate.datum`)
    error   ``outside-service-area`` (the zone does not touch the city outline),
            ``lonlat-swapped`` (outside, but inside with lon and lat swapped)
    warning ``partly-outside-service-area`` (a parking box straddling the outline)
    warning ``looks-like-gcj02``, ``looks-like-bd09`` (with a ``reference`` layer:
            the zone moved 100 m to 2.5 km from the reference zone with the same id,
            and reading it as GCJ-02 / BD-09 puts it back within 5 m)
parking boxes (:mod:`~zones.validate.geometry`)
    warning ``implausible-box-size`` (width, length or area outside
            :data:`BOX_WIDTH_M`, :data:`BOX_LENGTH_M`, :data:`BOX_AREA_M2`, measured
            on the minimum rotated rectangle in EPSG:4547 metres)
    error   ``overlapping-boxes`` (two parking boxes sharing more than
            :data:`OVERLAP_MIN_M2`; boxes that merely touch, along an edge or at a
            corner, are fine: adjacent painted boxes share a line. Active periods do
            not excuse an overlap: the index resolves overlaps without looking at
            time, and a replaced box belongs in a new zone-set version)
"""

from __future__ import annotations

#: plausible parking-box width, length (metres) and area (m²); outside: a warning
BOX_WIDTH_M = (0.8, 6.0)
BOX_LENGTH_M = (2.0, 40.0)
BOX_AREA_M2 = (1.0, 240.0)
#: two parking boxes overlap when their intersection exceeds this (m²); less is touching
OVERLAP_MIN_M2 = 0.01
#: a zone (or a polygon part) smaller than this (m²) has zero area
ZERO_AREA_M2 = 1e-4
#: GCJ-02 / BD-09 suspicion: moved this far (m) from the reference zone ...
DATUM_SHIFT_RANGE_M = (100.0, 2500.0)
#: ... and reading it as GCJ-02 / BD-09 puts it back within this distance (m)
DATUM_MATCH_M = 5.0

KINDS = ("parking", "no_parking")


#: rule -> how to fix it (an issue may carry a more specific hint)
HINTS: dict[str, str] = {
    "not-json": "the file must be UTF-8 JSON; check for truncation or a stray character "
    "at the position given",
    "not-feature-collection": 'the top level must be {"type": "FeatureCollection", '
    '"features": [...]} (RFC 7946)',
    "unsupported-crs": "RFC 7946 files are WGS-84 lon/lat: reproject to WGS-84 and drop "
    'the "crs" member',
    "no-features": "a zone set without zones would reject every trip; export the zones",
    "not-a-feature": 'each element of "features" must be {"type": "Feature", "id": ..., '
    '"geometry": ..., "properties": {...}}',
    "missing-id": 'give the feature a unique string "id" (e.g. "ZH-XZ-000123")',
    "bad-id-type": 'ids are strings: quote it (e.g. "17" instead of 17)',
    "duplicate-id": "ids must be unique in a zone set: renumber one of the features",
    "unknown-kind": 'set properties.kind to "parking" or "no_parking"',
    "bad-properties": "properties must be a JSON object with kind, fenced, district, ...",
    "bad-property-type": "fix the property's value to the type DESIGN §3 gives it",
    "bad-active-period": "active_from must be before active_to (or set one to null)",
    "missing-property": 'add "fenced": true for an e-fenced box with park-in-box '
    "settlement, false otherwise",
    "missing-geometry": "give the feature a Polygon geometry",
    "bad-geometry-type": "parking boxes are Polygons; no-parking areas are Polygons or "
    "MultiPolygons",
    "bad-geometry": "coordinates must be rings of [lon, lat] number pairs",
    "empty-geometry": "give the polygon at least its exterior ring",
    "non-finite-coordinate": "replace NaN/Infinity with the real coordinate (JSON has no NaN)",
    "too-few-positions": "a ring needs at least 4 positions (3 corners and the first "
    "repeated at the end)",
    "unclosed-ring": "repeat the ring's first position as its last",
    "lonlat-swapped": "coordinates are [lat, lon]: swap them to [lon, lat] (RFC 7946 order)",
    "lonlat-out-of-range": "lon must be within ±180 and lat within ±90 degrees: is the "
    "file projected (metres) rather than WGS-84?",
    "zero-area": "the ring's corners are collinear or repeated: redraw the polygon",
    "self-intersection": "the outline crosses itself (a bowtie?): reorder the corners so "
    "the edges do not cross",
    "invalid-geometry": "fix the polygon's topology (holes inside the shell, parts "
    "disjoint); shapely.make_valid can help",
    "clockwise-exterior": "RFC 7946 wants exterior rings counter-clockwise: rerun with "
    "--fix --out FILE",
    "counter-clockwise-hole": "RFC 7946 wants holes clockwise: rerun with --fix --out FILE",
    "outside-service-area": "the zone is not in Zhuhai: check its coordinates and datum",
    "partly-outside-service-area": "check that the box is on land inside the city outline",
    "looks-like-gcj02": "the file seems to be in GCJ-02 (Amap/Tencent): re-export in "
    "WGS-84, or convert with geofence.crs.gcj02_to_wgs84",
    "looks-like-bd09": "the file seems to be in BD-09 (Baidu): re-export in WGS-84, or "
    "convert with geofence.crs.bd09_to_wgs84",
    "implausible-box-size": "boxes are typically 1.5-3 m wide and 4-20 m long: check the "
    "units and the corners",
    "overlapping-boxes": "parking boxes must not overlap: shrink, move or merge them",
    "id-too-long": "use a short, stable code as the id (e.g. ZH-XZ-000123)",
    "name-too-long": "shorten the name; put long descriptions elsewhere",
    "too-many-operators": "list the operators (or beacons) of this box only",
    "too-many-vertices": "simplify the outline (shapely.simplify) or split the area",
    "too-many-zones": "split the city into smaller zone sets, or raise GEOFENCE_ZONE_SET_ZONES_MAX",
    "too-many-vertices-in-set": "simplify the outlines, or raise GEOFENCE_ZONE_SET_VERTICES_MAX",
}
