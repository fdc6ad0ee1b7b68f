"""``geofence zones …``: the city's zone tool.

Each command is a thin shell over a function of the ``zones`` package; exit codes:
0 success, 1 the input broke a rule (a report says which), 2 usage error.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Validate, diff, export and synthesise zone sets.", no_args_is_help=True)
