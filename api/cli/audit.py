"""The audit log's commands: ``geofence checks replay`` (re-decide recorded checks,
:mod:`api.replay`, and its table) and ``geofence audit export`` / ``prune``
(:mod:`api.auditexport`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import _stderr_console, _store, _when, audit_app, checks_app


# ---------------------------------------------------------------------------- checks
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


# ---------------------------------------------------------------------------- audit
@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    since: Annotated[
        str | None, typer.Option("--from", help="RFC 3339: checks decided from then on.")
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="RFC 3339, exclusive.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Only parquet.")] = "parquet",
    chunk: Annotated[int, typer.Option(help="Rows per read and per row group.", min=1)] = 5000,
) -> None:
    """Export the checks decided in [--from, --to) to a Parquet file, one row a decision."""
    if fmt != "parquet":
        sys.stderr.write(f"error: --format must be parquet, not {fmt!r}\n")
        raise typer.Exit(2)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from api.auditexport import count_checks, export_parquet

    t0, t1 = _when(since, "from"), _when(until, "to")
    store = _store()
    try:
        total = count_checks(store, t0, t1)
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=_stderr_console(), transient=True) as bar:
            task = bar.add_task("exporting", total=total)
            n = export_parquet(
                store,
                out,
                since=t0,
                until=t1,
                chunk=chunk,
                progress=lambda k: bar.update(task, advance=k),
            )
    except OSError as exc:
        sys.stderr.write(f"error: cannot write {out}: {exc}\n")
        raise typer.Exit(2) from None
    finally:
        store.close()
    print(f"exported {n} checks to {out}")


@audit_app.command("prune")
def audit_prune(
    before: Annotated[str, typer.Option(help="RFC 3339: remove checks decided before then.")],
    yes: Annotated[bool, typer.Option("--yes", help="Remove them (without: only count).")] = False,
) -> None:
    """Remove the checks decided before --before (retention). Refuses without --yes."""
    from api.auditexport import prune, prune_bodies
    from api.partitions import PruneBlocked

    t1 = _when(before, "before")
    assert t1 is not None
    store = _store()
    try:
        n = prune(store, t1, confirm=yes)
        bodies = prune_bodies(store, t1, confirm=yes)
    except PruneBlocked as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None
    finally:
        store.close()
    if not yes:
        sys.stderr.write(
            f"would remove {n} checks decided before {before} "
            f"(and {bodies} batch bodies left with no check); "
            "nothing removed: run again with --yes to remove them\n"
        )
        raise typer.Exit(1)
    print(f"removed {n} checks decided before {before} and {bodies} batch bodies")


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
