"""Real parts for the tests and the benchmarks, never used by the service itself.

* :mod:`~api.testing.pgtest`: a throwaway PostgreSQL cluster in a temporary folder
  (``initdb``, a Unix socket, deleted at the end);
* :mod:`~api.testing.servetest`: a real ``geofence serve`` process on a loopback port,
  and the trip-end check bodies the end-to-end tests send.
"""
