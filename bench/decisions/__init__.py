"""Decision quality benchmark: settle / reject / review against ground truth.

Draws seeded trip-end workloads with ground truth (:func:`zones.workload.make_trip_ends`,
the bundled 18,300-zone Zhuhai set) for consumer GPS (3-10 m) and high-precision
(0.3-1 m) fixes, decides them with the default :class:`geofence.Policy` through the
compiled batch path (:func:`geofence.decide_arrays`) and reports, per fix class:

* a confusion matrix of outcome against truth class. The workload's ``inside`` class
  is split into boxes *eligible* for the operator at ``ended_at`` (open to it and
  active: these should settle) and boxes closed to it or inactive (a rejection is
  the right answer there); ``beside`` is split at the policy's tolerance;
* wrongly settled: ``settle`` although the true position is farther than
  ``tolerance_m`` from every fenced box (true distance in EPSG:4547 with shapely), as
  a share of all trips and of the truly-outside trips; correctly settled (share of
  eligible truly-inside trips that settle); review share; reject share of the
  truly-outside trips; reason-code breakdowns and examples of doubtful decisions;
* the same trips decided by two baselines: a raw point-in-polygon on the last fix
  (settle iff it lies in an eligible fenced box) and a fixed 5 m buffer (settle iff
  the last fix is within 5 m of an eligible fenced box);
* a sweep of the policy's thresholds (``settle_p`` x ``tolerance_m`` x
  ``centre_p``) on the same trips, plotted to ``bench/results/decisions.png``;
* throughput on one core: ``decide_arrays`` checks/s (median of 5 runs), the
  single-check ``geofence.decide`` latency (median over 2,000 calls) and
  ``decide_many`` checks/s.

Writes ``bench/results/decisions.json`` and prints a readable summary.

    python -m bench.decisions [--trips 200000] [--quick]
    python -m bench.decisions --gnss [...]   # the GNSS scenarios: bench.gnss

Modules:

* :mod:`~bench.decisions.workload`: the setting, the ground truth, the check batch, the
  run's fingerprint;
* :mod:`~bench.decisions.metrics`: outcomes against the truth, and the baselines;
* :mod:`~bench.decisions.throughput`: checks per second and single-check latency;
* :mod:`~bench.decisions.report`: the plot and the printed matrices;
* :mod:`~bench.decisions.runner`: ``main``, the run in order (``__main__`` calls it).
"""

from bench.decisions.runner import main

__all__ = ["main"]
