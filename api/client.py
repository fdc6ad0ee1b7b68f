"""``geofence zones upload`` and ``geofence zones activate``: talk to a running server.

Exit codes: 0 success, 1 the server refused the zone set (the report says why), 2
usage, connection or authorisation errors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TransferSpeedColumn,
)

__all__ = ["activate", "upload"]

_CHUNK = 256 * 1024


def _err(console: Console, msg: str) -> int:
    console.print(f"[red]error:[/red] {msg}", highlight=False)
    return 2


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"status": resp.status_code, "detail": resp.text[:500]}
    return body if isinstance(body, dict) else {"status": resp.status_code, "detail": str(body)}


def _render_report(report: dict[str, Any], console: Console, limit: int) -> None:
    from zones.validate import Issue, Report, render

    rep = Report(
        issues=[Issue(**i) for i in report.get("issues", [])],
        n_features=report.get("n_features", 0),
        source=report.get("source"),
    )
    render(rep, console, limit=limit)


def upload(
    file: Path,
    *,
    url: str,
    key: str,
    activate_after: bool = False,
    source: str | None = None,
    as_json: bool = False,
    limit: int = 200,
    timeout: float = 300.0,
) -> int:
    """Upload ``file`` as a new zone-set version (and activate it): the exit code."""
    console = Console(stderr=as_json)
    if not file.is_file():
        return _err(console, f"{file}: no such file")
    size = file.stat().st_size
    ctype = "application/geo+json"
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as fh:
                while block := fh.read(_CHUNK):
                    progress.advance(task, len(block))
                    yield block
            progress.update(task, description="validating on the server")

        try:
            with httpx.Client(base_url=url, timeout=timeout) as client:
                resp = client.post(
                    "/v1/zone-sets",
                    content=chunks(),
                    params={"source": source or file.name},
                    headers={"X-API-Key": key, "Content-Type": ctype, "Content-Length": str(size)},
                )
        except httpx.HTTPError as exc:
            return _err(console, f"cannot reach {url}: {exc}")
    body = _problem(resp)
    if resp.status_code == 201:
        if as_json:
            out = {"uploaded": body}
        else:
            _render_report(body.get("report") or {}, console, limit)
            console.print(
                f"[green]stored zone set version {body['version']}[/green] "
                f"({body['n_zones']} zones, {body['n_fenced']} fenced; checksum "
                f"{body['checksum'][:12]}…); not active",
                highlight=False,
            )
        code = 0
        if activate_after:
            code, act = _activate(url, key, int(body["version"]), console, as_json, timeout)
            if as_json:
                out["activation"] = act
        if as_json:
            import json

            sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
        return code
    if resp.status_code == 422 and "report" in body:
        if as_json:
            import json

            sys.stdout.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
        else:
            _render_report(body["report"], console, limit)
            console.print(f"[red]refused:[/red] {body.get('detail')}", highlight=False)
        return 1
    if resp.status_code == 422:
        console.print(f"[red]refused:[/red] {body.get('detail')}", highlight=False)
        return 1
    return _err(console, f"HTTP {resp.status_code}: {body.get('detail')}")


def _activate(
    url: str, key: str, version: int, console: Console, as_json: bool, timeout: float
) -> tuple[int, dict[str, Any]]:
    try:
        with httpx.Client(base_url=url, timeout=timeout) as client:
            with console.status(f"building the index of version {version}…"):
                resp = client.post(f"/v1/zone-sets/{version}/activate", headers={"X-API-Key": key})
    except httpx.HTTPError as exc:
        return _err(console, f"cannot reach {url}: {exc}"), {}
    body = _problem(resp)
    if resp.status_code != 200:
        return _err(console, f"HTTP {resp.status_code}: {body.get('detail')}"), body
    if not as_json:
        console.print(
            f"[green]active: version {body['active']}[/green] (was {body['previous']}; index "
            f"built in {body['build_seconds']:.2f} s)",
            highlight=False,
        )
    return 0, body


def activate(version: int, *, url: str, key: str, as_json: bool = False) -> int:
    """Activate (or roll back to) ``version``: the exit code."""
    console = Console(stderr=as_json)
    code, body = _activate(url, key, version, console, as_json, 300.0)
    if as_json and code == 0:
        import json

        sys.stdout.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
    return code
