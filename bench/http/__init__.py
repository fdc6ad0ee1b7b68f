"""HTTP benchmark: the service against a bare FastAPI endpoint served the same way.

Starts the server the README's way (``geofence serve`` on a loopback port, a fresh
SQLite database, the bundled 18,300-zone Zhuhai set, the audit log on, the JSON
access log on) and, in the same run, a bare FastAPI app (one POST route that
answers a constant) under uvicorn with the very options ``geofence serve`` uses
(:func:`api.server.uvicorn_options`). Load comes from other processes:

* throughput (closed loop): Debian's ``wrk`` with a Lua script cycling through
  2,000 distinct trip-end check bodies (3 fixes each, from ``zones.workload``),
  against ``POST /v1/checks``, against the bare endpoint and against the bare
  endpoint that also commits one audit row per request through the service's audit
  writer before answering ("bare + audit": what any service that records each
  decision durably before it answers can reach on this machine);
* latency at fixed rates (open loop, no coordinated omission): an asyncio client
  that schedules request ``i`` at ``t0 + i / rate`` and measures from that
  scheduled time, over a pool of keep-alive connections;
* batches: ``POST /v1/checks/batch`` with pre-serialized bodies, fixes per second
  end to end (parse, validate, decide, audit-log commit, response);
* cold start: process spawn to ``/readyz`` = 200, on a fresh database (seeding
  included) and on the same database again (the usual restart).

Writes ``bench/results/http.json`` and ``bench/results/http.png`` (latency against
rate). Not a test: it reports numbers. Every load is bounded in time; traffic goes
to 127.0.0.1 only.

* processes: ``geofence serve --workers 1`` and ``--workers 2``, on SQLite and on
  PostgreSQL (a local throwaway cluster, :mod:`api.pgtest`): checks/s, the audit-log
  rows committed per second (single checks and batches), and how long an activation
  takes to reach the other worker (``--only processes`` runs this part alone and
  merges it into ``http.json``).

    python -m bench.http [--duration 10] [--rates 250 500 1000 2000 3000 4000]
    python -m bench.http --only processes

Modules (a package run with ``-m``, never as a file: a file or folder named ``http``
on the import path would shadow the standard library's ``http``):

* :mod:`~bench.http.harness`: the load harness: free ports, server processes
  (``geofence serve``; every one stopped at exit), the check bodies, wrk, the open-loop
  client (in its own process), the machine's load and the server's metrics;
* :mod:`~bench.http.baselines`: the bare and bare + audit FastAPI endpoints (each run
  as ``python -m bench.http --serve-bare`` in its own process);
* :mod:`~bench.http.scenarios`: throughput, the latency sweep with the 1,000/s
  target, the batch runs;
* :mod:`~bench.http.audit`: the audit floor (a batch's rows stored outside any server)
  and the audit log's bytes per decision on SQLite and PostgreSQL;
* :mod:`~bench.http.processes`: 1 and 2 worker processes on both backends and an
  activation's propagation between workers;
* :mod:`~bench.http.report`: the machine, the targets, the plot, writing and merging
  ``http.json``;
* :mod:`~bench.http.__main__`: the command line (a full run or ``--only``) and the
  subprocesses' entry points.
"""
