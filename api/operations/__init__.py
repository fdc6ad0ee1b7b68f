"""Operations on the audit log and the zones: what the city and the operators run
besides the live checks. Each reads through :mod:`api.storage` and decides (where it
decides) with :mod:`geofence`; none imports the web layer, which calls them from its
routes, as the command line (:mod:`api.cli`) does from its commands.

* :mod:`~api.operations.replay`: ``geofence checks replay``: re-decide recorded checks
  against another zone set or policy and report what changes;
* :mod:`~api.operations.hotspots`: where rejected trip ends cluster (the map's hot
  spots, ``geofence zones suggest``);
* :mod:`~api.operations.mapdata`: what the city map reads (district outlines, density,
  recent decisions, in-box rates over time);
* :mod:`~api.operations.labels`: labelled trips for ``geofence calibrate`` (a label
  file, or the audit log's beacon hits);
* :mod:`~api.operations.auditexport`: the audit log out of the building (Parquet
  export) and out of the database (pruning, batch bodies no check points to).
"""
