"""The benchmarks (``make bench``, ``make bench-http``): they report numbers into
``bench/results/``; the tests assert behaviour.

* :mod:`~bench.engine`: the zone index against shapely's STRtree, rtree, brute force and
  PostGIS (:mod:`~bench.pg`, a throwaway cluster from :mod:`api.pgtest`);
* :mod:`~bench.decisions`: decision quality against ground truth, the policy sweep and
  the decision throughput (a package: workload, metrics, throughput, report, runner);
* :mod:`~bench.gnss`: decisions under published GNSS error scenarios (a package:
  scenarios, truth, metrics, report, runner);
* :mod:`~bench.http`: the HTTP service against a bare FastAPI endpoint (wrk and an
  open-loop client; a package run as ``python -m bench.http``: harness, baselines,
  scenarios, audit, processes, report);
* :mod:`~bench.hostile`: the hostile-input probes against a real server
  (:mod:`api.servetest`) while an honest operator keeps checking;
* :mod:`~bench.hot_routes_ab`, :mod:`~bench.response_class_ab`: A/B runs of the web
  layer's hot routes.
"""
