"""The CRS names a fix may be reported in (`CRS_NAMES`), the engine's metric CRS
(`PROJECTED_CRS`), `check_crs`, and ``_coords``: the one place coordinates are checked
(numeric, broadcastable) and copied to fresh float64 arrays for every function of
:mod:`geofence.crs`.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from geofence.errors import CRSError

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
_Pair: TypeAlias = tuple[FloatArray, FloatArray]
_ScalarPair: TypeAlias = tuple[float, float]

CRS_NAMES: Final[tuple[str, ...]] = ("wgs84", "cgcs2000", "gcj02", "bd09")
"""Names of the geographic coordinate systems a fix may be reported in."""

PROJECTED_CRS: Final[str] = "EPSG:4547"
"""Metric CRS of the engine: CGCS2000 / 3-degree Gauss-Kruger CM 114E, metres."""


def check_crs(name: str) -> str:
    """Validate a CRS name and return its normalised form.

    Parameters
    ----------
    name : str
        A name from `CRS_NAMES`, in any letter case, surrounding blanks ignored.

    Returns
    -------
    str
        The lower-case name, one of `CRS_NAMES`.

    Raises
    ------
    CRSError
        If `name` is not a string or not one of `CRS_NAMES`; the message names the
        bad value and lists the valid names.

    Examples
    --------
    >>> check_crs(" GCJ02 ")
    'gcj02'
    >>> check_crs("epsg:4326")
    Traceback (most recent call last):
    ...
    geofence.errors.CRSError: unknown CRS 'epsg:4326'; valid names: wgs84, cgcs2000, gcj02, bd09
    """
    normalised = name.strip().lower() if isinstance(name, str) else None
    if normalised not in CRS_NAMES:
        raise CRSError(f"unknown CRS {name!r}; valid names: {', '.join(CRS_NAMES)}")
    return normalised


def _coords(lon: npt.ArrayLike, lat: npt.ArrayLike) -> _Pair:
    """Return fresh, C-contiguous float64 copies of ``lon, lat``, broadcast, at least 1-D."""
    lon_in = np.asarray(lon)
    lat_in = np.asarray(lat)
    for label, arr in (("lon", lon_in), ("lat", lat_in)):
        if arr.dtype.kind not in "iuf":
            raise CRSError(f"{label} must be numeric (int or float), got dtype {arr.dtype}")
    if lon_in.shape != lat_in.shape:
        try:
            lon_in, lat_in = np.broadcast_arrays(lon_in, lat_in)
        except ValueError:
            raise CRSError(
                f"lon and lat have incompatible shapes {lon_in.shape} and {lat_in.shape}"
            ) from None
    lon_out = np.array(lon_in, dtype=np.float64, order="C", ndmin=1)
    lat_out = np.array(lat_in, dtype=np.float64, order="C", ndmin=1)
    return lon_out, lat_out
