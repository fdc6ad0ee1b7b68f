"""The ``geofence`` command.

``serve`` runs the HTTP service; ``keys`` manages API keys; ``checks replay``
re-decides recorded checks; ``zones`` is the zone tool (validate, diff, export,
synth from :mod:`zones.cli`, plus ``upload`` and ``activate`` against a running
server, registered here). Commands that touch the database create or migrate its
schema first. Settings come from ``GEOFENCE_*`` variables (:mod:`api.settings`).
Exit codes: 0 success, 1 the input broke a rule, 2 usage.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from zones.cli import app as zones_app

app = typer.Typer(help="Shared-bike parking geofence engine.", no_args_is_help=True)
app.add_typer(zones_app, name="zones")
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
checks_app = typer.Typer(help="The audit log of checks.", no_args_is_help=True)
app.add_typer(checks_app, name="checks")

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


# ---------------------------------------------------------------------------- serve
@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: 1]")] = None,
) -> None:
    """Serve the HTTP API. A fresh database is seeded and gets demo keys (printed once)."""
    from api.server import prepare, run

    settings = _settings(host=host, port=port, workers=workers)
    try:
        prepare(settings)
    except Exception as exc:
        sys.stderr.write(f"error: cannot prepare the database: {exc}\n")
        raise typer.Exit(2) from None
    print(f"serving on http://{settings.host}:{settings.port} (docs: /docs)", flush=True)
    run(settings)


# ---------------------------------------------------------------------------- keys
@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin | operator")],
    operator: Annotated[
        str | None, typer.Option(help="The operator (required for operator keys)")
    ] = None,
) -> None:
    """Create a key and print it alone on stdout (it is not stored; keep it)."""
    store = _store()
    try:
        key, _ = store.create_key(role, operator)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(2) from None
    finally:
        store.close()
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (ids, roles, operators; never the keys)."""
    store = _store()
    try:
        keys = store.list_keys()
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps([k.to_dict() for k in keys], indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(header_style="bold")
    for col in ("id", "role", "operator", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        d = k.to_dict()
        table.add_row(
            d["id"], d["role"], d["operator"] or "", d["created_at"], d["revoked_at"] or ""
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see keys list).")],
) -> None:
    """Revoke a key (it stops working within GEOFENCE_KEY_CACHE_SECONDS)."""
    store = _store()
    try:
        rec = store.revoke_key(key_id)
    except KeyError:
        sys.stderr.write(f"error: no key {key_id}\n")
        raise typer.Exit(2) from None
    finally:
        store.close()
    print(f"revoked {rec.id} ({rec.role}{' ' + rec.operator if rec.operator else ''})")


# ---------------------------------------------------------------------------- zones
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
    from api.cli_suggest import suggest

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


# ---------------------------------------------------------------------------- checks
def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from api.service import parse_time

    try:
        return parse_time(value)
    except ValueError:
        sys.stderr.write(f"error: --{name} must be an RFC 3339 time with an offset: {value!r}\n")
        raise typer.Exit(2) from None


@checks_app.command("replay")
def checks_replay(
    since: Annotated[str, typer.Option(help="RFC 3339: replay checks decided from then on.")],
    until: Annotated[str | None, typer.Option(help="RFC 3339, exclusive.")] = None,
    version: Annotated[
        int | None,
        typer.Option(help="Zone-set version to decide against (default: each check's own)."),
    ] = None,
    operator: Annotated[str | None, typer.Option(help="Only this operator's checks.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    limit: Annotated[int, typer.Option(help="Changed checks to show (0 = all).")] = 50,
) -> None:
    """Re-decide recorded checks against a zone-set version; report the differences."""
    from rich.console import Console

    from api.replay import replay

    t0, t1 = _when(since, "since"), _when(until, "until")
    store = _store()
    console = Console(stderr=True)
    try:
        with console.status("replaying recorded checks…") as status:
            done = 0

            def progress(n: int) -> None:
                nonlocal done
                done += n
                status.update(f"replayed {done} checks…")

            report = replay(
                store, since=t0, until=t1, version=version, operator=operator, progress=progress
            )
    except KeyError:
        sys.stderr.write(f"error: no zone set version {version}\n")
        raise typer.Exit(2) from None
    finally:
        store.close()
    shown = None if limit <= 0 else limit
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(shown), ensure_ascii=False, indent=2) + "\n")
        return
    _render_replay(report, shown)


def _render_replay(report, limit: int | None) -> None:  # report: api.replay.ReplayReport
    from rich.console import Console
    from rich.table import Table

    console = Console()
    against = f"version {report.version}" if report.version else "their own versions"
    if report.changes:
        table = Table(header_style="bold", title=f"decisions that change against {against}")
        for col in ("check", "operator", "trip", "decided at", "was", "now", "zone", "reasons"):
            table.add_column(col, overflow="fold")
        for c in report.changes[:limit]:
            zone = c.old_zone or "-"
            if c.new_zone != c.old_zone:
                zone = f"{c.old_zone or '-'} → {c.new_zone or '-'}"
            table.add_row(
                c.check_id,
                c.operator,
                c.trip_id,
                c.decided_at,
                f"{c.old_outcome} (v{c.old_version})",
                f"{c.new_outcome} (v{c.new_version})",
                zone,
                ", ".join(c.new_reasons),
            )
        console.print(table)
        if limit is not None and len(report.changes) > limit:
            console.print(f"… and {len(report.changes) - limit} more (--limit 0 shows all)")
    if report.transitions:
        summary = Table(header_style="bold", title="outcome changes")
        summary.add_column("change")
        summary.add_column("checks", justify="right")
        for k, n in report.transitions.most_common():
            summary.add_row(k, str(n))
        console.print(summary)
    for f in report.failures[:10]:
        console.print(f"[red]could not replay[/red] {f['check_id']}: {f['error']}", highlight=False)
    console.print(
        f"{report.n_checks} checks replayed against {against}: {report.n_changed} changed, "
        f"{len(report.failures)} failed",
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``geofence`` console script."""
    app()
