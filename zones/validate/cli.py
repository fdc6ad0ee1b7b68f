"""``geofence zones validate``: the usage checks, ``--fix``, and :func:`render`, the
report as a rich table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zones.validate.loading import _NotJSON, _parse_json
from zones.validate.report import Report
from zones.validate.structure import validate
from zones.validate.winding import dumps_geojson, rewind


def render(report: Report, console: Any, *, limit: int = 200) -> None:
    """Print ``report`` as a rich table (at most ``limit`` rows, 0 = all) and a summary."""
    from rich.table import Table

    for line in report.fixed:
        console.print(f"fixed {line}", markup=False, highlight=False)
    if report.issues:
        table = Table(show_lines=False, header_style="bold")
        table.add_column("severity")
        table.add_column("feature", overflow="fold")
        table.add_column("rule", no_wrap=True)
        table.add_column("message", overflow="fold")
        table.add_column("hint", overflow="fold")
        shown = report.issues if limit <= 0 else report.issues[:limit]
        for iss in shown:
            style = "red" if iss.severity == "error" else "yellow"
            table.add_row(
                f"[{style}]{iss.severity}[/{style}]",
                iss.feature if iss.feature is not None else "(file)",
                iss.rule,
                iss.message,
                iss.hint,
            )
        console.print(table)
        if len(shown) < len(report.issues):
            console.print(
                f"… and {len(report.issues) - len(shown)} more issues (--limit 0 shows all, "
                "--json prints them as JSON)",
                highlight=False,
            )
    style = "green" if report.ok else "red"
    console.print(f"[{style}]{report.summary()}[/{style}]", highlight=False, soft_wrap=True)


def run_cli(
    file: Path,
    *,
    as_json: bool = False,
    fix: bool = False,
    out: Path | None = None,
    reference: Path | None = None,
    limit: int = 200,
) -> int:
    """``geofence zones validate``: returns the exit code (0 ok, 1 errors, 2 usage)."""
    import sys

    from rich.console import Console

    console = Console()

    def usage(msg: str) -> int:
        sys.stderr.write(f"error: {msg}\n")
        return 2

    if not file.is_file():
        return usage(f"{file}: no such file")
    if reference is not None and not reference.is_file():
        return usage(f"--reference {reference}: no such file")
    if fix and out is None:
        return usage("--fix needs --out FILE (the input is never overwritten)")
    if out is not None and not fix:
        return usage("--out is only used with --fix")
    try:
        data = file.read_bytes()
    except OSError as exc:
        return usage(f"{file}: cannot read ({exc.strerror})")
    fixed: list[str] = []
    target: Any = data
    if fix:
        try:
            doc = _parse_json(data)
        except _NotJSON:
            doc = None
        if isinstance(doc, Mapping) and doc.get("type") == "FeatureCollection":
            target, fixed = rewind(doc)
            assert out is not None
            try:
                out.write_bytes(dumps_geojson(target))
            except OSError as exc:
                return usage(f"--out {out}: cannot write ({exc.strerror})")
            if not as_json:
                what = f"{len(fixed)} features rewound" if fixed else "nothing to rewind"
                console.print(f"fix: {what}; wrote {out}", highlight=False, markup=False)
        elif not as_json:
            console.print("fix: not a FeatureCollection, nothing written", highlight=False)
    try:
        report = validate(target, reference=reference)
    except (ValueError, OSError) as exc:  # only the reference can raise
        return usage(str(exc))
    report.source = str(out) if fixed or (fix and target is not data) else str(file)
    report.fixed = fixed
    if as_json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        render(report, console, limit=limit)
    return 0 if report.ok else 1
