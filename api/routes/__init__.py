"""The routes, one module per resource; each is thin: parse, call the domain, shape.

* :mod:`~api.routes.checks`: ``/v1/checks`` (decisions in, the audit log out);
* :mod:`~api.routes.zones`: ``/v1/zones``, the active set's zones as GeoJSON;
* :mod:`~api.routes.zone_sets`: ``/v1/zone-sets``, upload, list, activate (admin);
* :mod:`~api.routes.policies`: ``/v1/policies``, the same for decision policies (admin);
* :mod:`~api.routes.versions`: what those two share (the upload's media type, the 404);
* :mod:`~api.routes.stats`: ``/v1/stats`` (admin);
* :mod:`~api.routes.map`: the city map page and the routes it reads;
* :mod:`~api.routes.standards`: MDS 2.0 Geography and GBFS, served live;
* :mod:`~api.routes.health`: ``/healthz``, ``/readyz``, ``/metrics``;
* :mod:`~api.routes.docs`: ``/docs`` and a page per problem type.

Here: the app state, the ready state (503 while the index loads) and the store of a
request.
"""

from __future__ import annotations

from fastapi import Request

from api.errors import Problem

__all__ = ["app_state", "ready_state", "store_of"]


def app_state(request: Request):  # -> api.app.AppState (not imported: no cycle)
    """The app's :class:`api.app.AppState`."""
    return request.app.state.geofence


def ready_state(request: Request):
    """The app state, or 503 while the index is loading."""
    st = request.app.state.geofence
    if not st.ready:
        raise Problem(
            503,
            "not-ready",
            "the zone index is loading; retry shortly (see /readyz)",
            headers={"Retry-After": "1"},
        )
    return st


def store_of(request: Request):  # -> api.storage.Store
    """The app's store, or 503 before it is open."""
    st = request.app.state.geofence
    if st.store is None:
        raise Problem(503, "not-ready", "the service is starting")
    return st.store
