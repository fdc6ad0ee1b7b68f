"""The ``geofence`` command."""

from __future__ import annotations

import typer

from zones.cli import app as zones_app

app = typer.Typer(help="Shared-bike parking geofence engine.", no_args_is_help=True)
app.add_typer(zones_app, name="zones")


def main() -> None:
    """Entry point of the ``geofence`` console script."""
    app()
