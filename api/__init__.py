"""The HTTP service and the command line: the outer edge where settings are read.

Imports point one way: ``api -> zones -> geofence``; inside ``api``, the web layer
(the top-level modules, :mod:`~api.routes`, :mod:`~api.models`) and the command line
(:mod:`~api.cli`) use :mod:`~api.operations`, :mod:`~api.audit` and :mod:`~api.storage`,
which never import the web layer.

The service (top-level modules):

* :mod:`~api.settings`: every ``GEOFENCE_*`` setting (pydantic-settings), read once;
* :mod:`~api.app`: the FastAPI application: start-up, the active zone set and policy
  and how they follow activations, the hot routes served without FastAPI's routing;
* :mod:`~api.server`: uvicorn with the guarded HTTP protocol (header and body
  timeouts, idle keep-alive, the connection cap);
* :mod:`~api.service`: the glue between the store and the engine: the active index and
  policy, seeding, check ids, audit rows;
* :mod:`~api.columns`, :mod:`~api._jsonscan`, :mod:`~api.bounds`: request bodies read
  straight into the engine's arrays (orjson, a compiled reader), after a walk of the raw
  bytes that enforces every size limit before anything parses them;
* :mod:`~api.auth`, :mod:`~api.ratelimit`: API keys and roles, failed-key throttling,
  per-key rate limits;
* :mod:`~api.habits`, :mod:`~api.downloads`, :mod:`~api.paging`: the HTTP conventions
  (request ids, trailing slashes, HEAD, CORS, gzip, ETags, keyset cursors);
* :mod:`~api.errors`, :mod:`~api.responses`: problem+json answers and the JSON response
  class;
* :mod:`~api.metrics`: Prometheus metrics and the access log;
* :mod:`~api.openapi`: the OpenAPI document (roles, errors, examples);
* :mod:`~api.routes`: the routes, one module per resource; :mod:`~api.models`: their
  request and response models;
* :mod:`~api.client`: ``geofence zones upload`` / ``activate`` against a running server;
* :mod:`~api.warm`: compiles every kernel once (``python -m api.warm``).

Beside it:

* :mod:`~api.storage`: the database (zone sets, policies, the audit log's reads, keys),
  its tables and migrations, PostgreSQL's partitions;
* :mod:`~api.audit`: the audit writer, a process of its own that group-commits every
  decision before it is answered;
* :mod:`~api.operations`: replay, hot spots, the map's reads, labels for calibration,
  export and pruning;
* :mod:`~api.cli`: the ``geofence`` command line (Typer);
* :mod:`~api.testing`: a throwaway PostgreSQL and a real server, for tests and benches.
"""
