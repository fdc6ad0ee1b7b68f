"""The ``geofence zones`` commands registered here on :mod:`zones.cli`'s app (which owns
validate, diff, export, synth): ``upload`` and ``activate`` against a running server
(:mod:`api.client`), ``suggest`` from the audit log's rejected trip ends
(:mod:`api.cli.suggest`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import Key, Url, _store, _when, zones_app


@zones_app.command("upload")
def zones_upload(
    file: Annotated[Path, typer.Argument(help="GeoJSON FeatureCollection of zones.")],
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
    activate: Annotated[bool, typer.Option(help="Activate the new version at once.")] = False,
    source: Annotated[str | None, typer.Option(help="Source label (default: file name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Report rows to show (0 = all).")] = 200,
) -> None:
    """Upload a zone set to a server: exit 0 stored, 1 refused (report), 2 usage/HTTP."""
    from api.client import upload

    if not key:
        sys.stderr.write("error: --key (or GEOFENCE_API_KEY) is required\n")
        raise typer.Exit(2)
    code = upload(
        file,
        url=url,
        key=key,
        activate_after=activate,
        source=source,
        as_json=as_json,
        limit=limit,
    )
    raise typer.Exit(code)


@zones_app.command("activate")
def zones_activate(
    version: Annotated[int, typer.Argument(help="The zone-set version (older = rollback).")],
    url: Url = "http://127.0.0.1:8000",
    key: Key = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Activate a stored version on a server (atomic hot swap): exit 0, 2 on errors."""
    from api.client import activate as do_activate

    if not key:
        sys.stderr.write("error: --key (or GEOFENCE_API_KEY) is required\n")
        raise typer.Exit(2)
    raise typer.Exit(do_activate(version, url=url, key=key, as_json=as_json))


@zones_app.command("suggest")
def zones_suggest(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the draft GeoJSON.")],
    since: Annotated[
        str | None, typer.Option("--from", help="RFC 3339 (default: 7 days before --to).")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="RFC 3339 (default: now).")] = None,
    radius_m: Annotated[float, typer.Option(help="Cluster radius between trip ends (m).")] = 15.0,
    min_count: Annotated[int, typer.Option(help="Trip ends within the radius of a core.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hot spots as JSON.")] = False,
) -> None:
    """Boxes for the hot spots of rejected trip ends (from the database) as a zone-set
    draft that `zones validate` accepts: exit 0, 2 on usage or database errors."""
    from api.cli.suggest import suggest

    if radius_m <= 0 or min_count < 2:
        sys.stderr.write("error: --radius-m must be > 0 and --min-count >= 2\n")
        raise typer.Exit(2)
    t0, t1 = _when(since, "from"), _when(until, "to")
    if t0 is not None and t1 is not None and t0 >= t1:
        sys.stderr.write("error: --from must be before --to\n")
        raise typer.Exit(2)
    store = _store()
    try:
        code = suggest(
            store, out, since=t0, until=t1, radius_m=radius_m, min_count=min_count, as_json=as_json
        )
    finally:
        store.close()
    raise typer.Exit(code)
