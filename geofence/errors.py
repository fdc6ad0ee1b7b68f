"""Exception classes of the engine.

The engine raises only these; the web layer maps each class to an HTTP status in
one table. Every message names what is wrong (the feature id, the field, the rule).
"""

from __future__ import annotations

__all__ = [
    "CRSError",
    "CheckError",
    "GeofenceError",
    "PolicyError",
    "ZoneDataError",
]


class GeofenceError(Exception):
    """Base class of every error the engine raises."""


class CRSError(GeofenceError, ValueError):
    """A coordinate reference system name is unknown or coordinates are unusable."""


class ZoneDataError(GeofenceError, ValueError):
    """A zone set or one of its features is malformed."""

    def __init__(self, message: str, *, feature_id: str | None = None, rule: str = "") -> None:
        super().__init__(message)
        self.feature_id = feature_id
        self.rule = rule


class CheckError(GeofenceError, ValueError):
    """A trip-end check cannot be decided because its evidence is malformed."""

    def __init__(
        self, message: str, *, field: str = "", rule: str = "", check_index: int | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.check_index = check_index  # the check's number in a batch, when there is one


class PolicyError(GeofenceError, ValueError):
    """A settlement policy has a value out of its range."""

    def __init__(self, message: str, *, field: str = "", rule: str = "") -> None:
        super().__init__(message)
        self.field = field  # e.g. "calibration[2].bias_m"
        self.rule = rule
