"""Decisions under real GNSS error: scenario models, ground truth in bands, targets.

``bench/decisions/`` draws every fix from the model the engine itself assumes (an
honest, independent Gaussian per fix) and reports rates over a whole mix of trips.
This benchmark owns the other question: what happens when devices behave as the
published measurements say they do (docs/error-model.md lists the sources). It

* places true bike positions in four **bands** relative to the fenced boxes of the
  bundled Zhuhai zone set: ``inside`` an eligible fenced box (open to the operator and
  active at ``ended_at``), and ``0-1 m``, ``1-3 m``, ``3-25 m`` outside the nearest
  fenced box (shapely distance in EPSG:4547 metres, via :func:`geofence.crs.project`);
  an outside position lies in no zone at all and in the service area;
* observes each through a **scenario**: a standing bike's last 1-10 fixes, each with
  the reported ``accuracy_m`` and optional ``quality`` a device would send, one
  ``device_class`` per check, and a true error drawn from the scenario's model
  (:class:`Scenario`: noise against the reported radius, a shared per-trail offset,
  an outlier share, cached duplicates);
* decides them with :func:`geofence.decide_arrays` under (a) the uncalibrated
  defaults, ``geofence.Policy()``, and (b) a policy calibrated by
  ``geofence.fitting.fit_calibration`` from >= 2,000 independently drawn labelled trips
  of the same class (skipped, with a message saying so, while that module is absent);
* reports, **per scenario and band, never averaged over a mix**: settled, rejected,
  review, and the coverage of the fused 68 % radius (share of trips whose true
  position lies within ``accuracy_m`` of the fused position); the same trips through
  a raw point-in-polygon of the last fix and a fixed 5 m buffer; each target of
  issue 14 marked met or missed; a reliability plot (predicted ``p_inside`` in bins
  against the observed share truly inside an eligible box, per condition).

Choices: 5,000 trips per scenario *and band* (a 0.5 % rate is then 25 trips); the
truth positions of a band are shared by all scenarios (common random numbers: the
scenarios differ only in their errors) and the errors of each scenario have their
own seed; offsets are added in EPSG:4547 metres (within Zhuhai the grid is east/north
to a fraction of a degree and the scale is 1 to 1e-4, nothing against isotropic
metre-level errors). The checks are built as arrays for speed; a sample is also sent
through ``geofence.Check`` and ``CheckBatch.from_checks`` and must decide the same.
The harness takes the engine as it is (no engine internals are read), so the same
command gives the "before" and the "after" of a kernel change.

    python -m bench.gnss [--trips 5000] [--quick] [--out bench/results/gnss.json]
    python -m bench.decisions --gnss [...]

Modules:

* :mod:`~bench.gnss.scenarios`: the device scenarios, bands, seeds and targets;
* :mod:`~bench.gnss.truth`: true positions in bands and the fixes devices report;
* :mod:`~bench.gnss.metrics`: the conditions, outcomes against the truth, targets,
  reliability;
* :mod:`~bench.gnss.report`: the plot and the table;
* :mod:`~bench.gnss.runner`: ``main`` (``__main__`` and ``bench.decisions --gnss`` call it).
"""

from bench.gnss.runner import main
from bench.gnss.scenarios import SCENARIOS, TARGETS, Scenario

__all__ = ["SCENARIOS", "TARGETS", "Scenario", "main"]
