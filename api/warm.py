"""Compile the engine's kernels into numba's on-disk cache once: ``python -m api.warm``.

A fresh checkout has no cache of compiled kernels: the first process that decides
compiles them (~1 min on this 2-core machine) and stores them beside the code
(``__pycache__``); later processes load them in well under a second. ``make test``
runs this before its two test workers start, so that they load the cache instead of
both compiling at once (each then waits for readiness longer than its tests allow).
"""

from __future__ import annotations

import time

import geofence
from api.service import make_index, warm
from api.settings import DEFAULT_SEED_FILE


def main() -> None:
    t0 = time.perf_counter()
    zone_set = geofence.ZoneSet.from_geojson(DEFAULT_SEED_FILE, version=1)
    warm(make_index(zone_set), geofence.Policy())
    print(f"kernels compiled or loaded in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
