"""The benchmarks (``make bench``, ``make bench-http``): they report numbers into
``bench/results/``; the tests assert behaviour.

* :mod:`~bench.engine`: the zone index against shapely's STRtree, rtree, brute force and
  PostGIS (:mod:`~bench.pg`, a throwaway cluster from :mod:`api.testing.pgtest`);
* :mod:`~bench.decisions`: decision quality against ground truth, the policy sweep and
  the decision throughput (a package: workload, metrics, throughput, report, runner);
* :mod:`~bench.gnss`: decisions under published GNSS error scenarios (a package:
  scenarios, truth, metrics, report, runner);
* :mod:`~bench.http`: the HTTP service against a bare FastAPI endpoint (wrk and an
  open-loop client; a package run as ``python -m bench.http``: harness, baselines,
  scenarios, audit, processes, report);
* :mod:`~bench.hostile`: the hostile-input probes against a real server
  (:mod:`api.testing.servetest`) while an honest operator keeps checking;
* :mod:`~bench.hot_routes_ab`, :mod:`~bench.response_class_ab`: A/B runs of the web
  layer's hot routes;
* :mod:`~bench.single_tail`: latency against time of single checks at a fixed rate,
  interleaved A/B of two source trees, each slow request matched to what the server
  and its audit writer were doing (gc, commits, checkpoints) while it waited;
* :mod:`~bench.partitions`: PostgreSQL's monthly partitions of the audit log (the
  migration, prune against ``DELETE``, look-ups by id, the writer's cost a row).
"""
