"""What every command group of the ``geofence`` command shares: the Typer app and its
sub-apps (registered in the order ``geofence --help`` lists them), the ``--url`` and
``--key`` options of the commands that talk to a running server, and the helpers
that read the settings, open the database and parse RFC 3339 options with a clear
error (exit 2) instead of a traceback.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer

from zones.cli import app as zones_app

app = typer.Typer(help="Shared-bike parking geofence engine.", no_args_is_help=True)
app.add_typer(zones_app, name="zones")
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
checks_app = typer.Typer(help="The audit log of checks.", no_args_is_help=True)
app.add_typer(checks_app, name="checks")
audit_app = typer.Typer(help="The audit log: export, prune.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

Url = Annotated[
    str,
    typer.Option(envvar="GEOFENCE_URL", help="The server's base URL."),
]
Key = Annotated[
    str,
    typer.Option(envvar="GEOFENCE_API_KEY", help="An admin API key."),
]


def _settings(**overrides: object):  # -> api.settings.Settings
    from pydantic import ValidationError

    from api.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        sys.stderr.write(f"error: bad settings: {exc}\n")
        raise typer.Exit(2) from None


def _store():  # -> api.storage.Store
    from api.storage import Store

    s = _settings()
    try:
        return Store.open(s.database_url, sqlite_synchronous=s.sqlite_synchronous)
    except Exception as exc:
        sys.stderr.write(f"error: cannot open the database {s.database_url}: {exc}\n")
        raise typer.Exit(2) from None


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from api.service import parse_time

    try:
        return parse_time(value)
    except ValueError:
        sys.stderr.write(f"error: --{name} must be an RFC 3339 time with an offset: {value!r}\n")
        raise typer.Exit(2) from None


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
