"""``geofence serve``: prepare the database, print first-run keys, run uvicorn.

On a fresh database the command creates the schema, seeds the bundled zone set as
version 1 (active), and creates an admin key and one operator key for each demo
operator, printing them once (only hashes are stored). Then uvicorn serves
``api.app:create_app_from_env`` (a factory, so every worker process builds its app
from the same ``GEOFENCE_*`` settings).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from api.settings import Settings

__all__ = ["DEMO_OPERATORS", "configure_logging", "prepare", "run", "uvicorn_options"]

DEMO_OPERATORS = ("meituan", "hellobike", "qingju")


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """JSON lines on stderr for the service's loggers (the access log included)."""
    from api.metrics import AccessLogFormatter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(AccessLogFormatter())
    for name in ("geofence", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def prepare(settings: Settings, out: TextIO | None = None) -> dict[str, Any]:
    """Migrate, seed an empty database, create demo keys if there are none.

    Returns ``{"seeded": version or None, "keys": {name: key}}`` and prints what it
    did to ``out`` (the keys only this once).
    """
    from api.storage import Store

    out = out or sys.stdout
    store = Store.open(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with store.exclusive("setup"):  # several servers starting on one empty database
            return _prepare(store, settings, out)
    finally:
        store.close()


def _prepare(store: Any, settings: Settings, out: TextIO) -> dict[str, Any]:
    from api.service import seed

    seeded = seed(store, settings.seed_file)
    info = None if seeded is None else seeded[0]
    if info is not None:
        print(
            f"seeded zone set version {info.version} ({info.n_zones} zones, "
            f"{info.n_fenced} fenced) from {settings.seed_file}",
            file=out,
        )
    keys: dict[str, str] = {}
    if not store.has_keys():
        key, _ = store.create_key("admin")
        keys["admin"] = key
        for name in DEMO_OPERATORS:
            key, _ = store.create_key("operator", name)
            keys[name] = key
        print("API keys (shown once, only their hashes are stored):", file=out)
        for name, key in keys.items():
            role = "admin" if name == "admin" else "operator"
            print(f"  {role:<8} {name:<10} {key}", file=out)
    out.flush()
    return {"seeded": None if info is None else info.version, "keys": keys}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options ``geofence serve`` uses (the HTTP benchmark serves its
    baseline app with the same ones)."""
    opts: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_level": settings.log_level,
        "access_log": False,  # the app writes its own JSON access log
        "proxy_headers": False,
        "server_header": False,
        "date_header": True,
        "timeout_graceful_shutdown": 10,
        "backlog": 2048,
    }
    try:
        import uvloop  # noqa: F401 - only probing that it is installed

        opts["loop"] = "uvloop"
    except ImportError:
        opts["loop"] = "asyncio"
    try:
        import httptools  # noqa: F401 - only probing that it is installed

        opts["http"] = "httptools"
    except ImportError:
        opts["http"] = "h11"
    return opts


def run(settings: Settings) -> None:
    """Serve until interrupted (blocking)."""
    import uvicorn

    # worker processes (and the factory) read their settings from the environment
    env = {
        "GEOFENCE_HOST": settings.host,
        "GEOFENCE_PORT": str(settings.port),
        "GEOFENCE_WORKERS": str(settings.workers),
    }
    os.environ.update(env)
    configure_logging(settings.log_level)
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        log_config=None,
        **uvicorn_options(settings),
    )
