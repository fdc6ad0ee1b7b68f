"""``geofence serve`` (the HTTP service) and ``geofence keys`` (create, list, revoke)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from api.cli.common import _settings, _store, app, keys_app


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
