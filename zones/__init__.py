"""Zone data lifecycle: the bundled Zhuhai zone set, validation, diffs and exports.

Imports point one way: ``api -> zones -> geofence``.

Modules:

* :mod:`~zones.validate`: ``geofence zones validate``, every rule of DESIGN §3 (a package:
  its rules are listed in :mod:`zones.validate.rules`);
* :mod:`~zones.diff`: what changed between two zone sets;
* :mod:`~zones.export`: the zone set as GeoJSON, GBFS and MDS;
* :mod:`~zones.synth`: the seeded synthetic Zhuhai zone set (``data/zhuhai.geojson``);
* :mod:`~zones.districts`: Zhuhai's real city and district outlines (``data/districts``);
* :mod:`~zones.suggest`: hot spots of rejected trip ends and the boxes that would serve
  them;
* :mod:`~zones.workload`: trip-end workloads with ground truth (tests and benchmarks);
* :mod:`~zones.cli`: ``geofence zones …``.
"""
