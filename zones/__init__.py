"""Zone data lifecycle: the bundled Zhuhai zone set, validation, diffs and exports.

Imports point one way: ``api -> zones -> geofence``.
"""
