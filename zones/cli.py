"""``geofence zones …``: the city's zone tool.

Each command is a thin shell over a function of the ``zones`` package; exit codes:
0 success, 1 the input broke a rule (a report says which), 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Validate, diff, export and synthesise zone sets.", no_args_is_help=True)


@app.command("validate")
def validate_cmd(
    file: Annotated[Path, typer.Argument(help="GeoJSON FeatureCollection of zones (WGS-84).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    fix: Annotated[
        bool, typer.Option("--fix", help="Rewind rings to RFC 7946 order, write them to --out.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Where --fix writes the fixed file.")] = None,
    reference: Annotated[
        Path | None, typer.Option(help="An earlier zone set: enables the GCJ-02/BD-09 checks.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Table rows to show (0 = all).")] = 200,
) -> None:
    """Check a zone file against DESIGN §3: exit 0 if no errors, 1 if any, 2 on usage."""
    from zones.validate import run_cli

    code = run_cli(file, as_json=as_json, fix=fix, out=out, reference=reference, limit=limit)
    raise typer.Exit(code)
