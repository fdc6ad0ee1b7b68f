"""The routes, one module per resource; each is thin: parse, call the domain, shape."""

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
