"""The ``geofence`` command.

``serve`` runs the HTTP service; ``keys`` manages API keys; ``checks replay``
re-decides recorded checks; ``audit export`` writes the audit log to Parquet and
``audit prune`` removes old checks (:mod:`api.auditexport`); ``calibrate`` fits
the GNSS error model to labelled trips; ``zones`` is the zone tool (validate, diff, export,
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


# ---------------------------------------------------------------------------- calibrate
@app.command("calibrate")
def calibrate_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the policy JSON.")],
    labels: Annotated[
        Path | None, typer.Option("--labels", help="JSON Lines: check bodies + operator + truth.")
    ] = None,
    from_audit: Annotated[
        bool, typer.Option("--from-audit", help="Labels from the audit log's beacon hits.")
    ] = False,
    operator: Annotated[
        str | None, typer.Option(help="With --from-audit: this operator's checks.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="With --from-audit: RFC 3339, checks decided from then.")
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(help="Base policy JSON (default: GEOFENCE_POLICY over the defaults)."),
    ] = None,
    zones: Annotated[
        Path | None,
        typer.Option(help="GeoJSON zone set for zone labels (default: the database's active)."),
    ] = None,
    min_trips: Annotated[int, typer.Option(help="Fit classes with at least this many.")] = 50,
) -> None:
    """Fit the error model per (operator, device class, quality) by maximum likelihood.

    Writes the base policy plus the fitted rows (what POST /v1/policies takes) to --out
    and a reliability plot beside it (.png). Exit 0; 1 a bad label line or base policy
    (nothing written); 2 usage.
    """
    import geofence

    if (labels is None) == (not from_audit):
        sys.stderr.write("error: give either --labels FILE or --from-audit\n")
        raise typer.Exit(2)
    if from_audit and not operator:
        sys.stderr.write("error: --from-audit needs --operator\n")
        raise typer.Exit(2)
    if min_trips < 2:
        sys.stderr.write("error: --min-trips must be >= 2\n")
        raise typer.Exit(2)
    policy = _calibrate_base(base)
    t0 = _when(since, "since")
    store = None
    try:
        if labels is not None:
            if not labels.is_file():
                sys.stderr.write(f"error: no label file {labels}\n")
                raise typer.Exit(2)
            index = _calibrate_index(zones)
            from api.labels import LabelError, read_labels

            try:
                found = read_labels(labels, index.zone_set.position)
            except LabelError as exc:
                sys.stderr.write(f"error: {labels}: {exc}\n")
                raise typer.Exit(1) from None
            source = f"{len(found)} labels from {labels}"
        else:
            from api.labels import labels_from_audit

            store = _store()
            index = _calibrate_index(zones, store)
            got = labels_from_audit(store, operator=operator or "", policy=policy, since=t0)
            found = got.labels
            source = (
                f"{len(found)} beacon-named labels of {got.records} recorded checks "
                f"of {operator}" + (f" ({got.unparsable} unparsable)" if got.unparsable else "")
            )
    finally:
        if store is not None:
            store.close()
    if not found:
        sys.stderr.write(f"error: no labels ({source})\n")
        raise typer.Exit(1)
    fit = _calibrate_run(index, found, policy, min_trips)
    _render_calibration(fit, source)
    doc = json.dumps(fit.policy.to_mapping(), indent=2) + "\n"
    geofence.Policy.from_mapping(json.loads(doc))  # what POST /v1/policies will parse
    plot = out.with_suffix(".png")
    _reliability_plot(fit, plot)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out} (policy {fit.policy.id}) and {plot}")


def _calibrate_base(path: Path | None):  # -> geofence.Policy
    import geofence

    if path is None:
        doc: object = _settings().policy
        where = "GEOFENCE_POLICY"
    else:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"error: --base {path}: {exc}\n")
            raise typer.Exit(1) from None
        where = str(path)
    try:
        return geofence.Policy.from_mapping(doc)
    except geofence.PolicyError as exc:
        sys.stderr.write(f"error: {where}: {exc}\n")
        raise typer.Exit(1) from None


def _calibrate_index(zones: Path | None, store=None):  # -> geofence.ZoneIndex
    from api.service import load_zone_set, make_index

    if zones is not None:
        import geofence

        try:
            return make_index(geofence.ZoneSet.from_geojson(zones))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"error: --zones {zones}: {exc}\n")
            raise typer.Exit(1) from None
    own = store is None
    store = store or _store()
    try:
        version = store.active_version()
        if version is None:
            sys.stderr.write("error: no active zone set in the database (give --zones)\n")
            raise typer.Exit(2)
        return make_index(load_zone_set(store, version))
    finally:
        if own:
            store.close()


def _calibrate_run(index, labels, policy, min_trips: int):  # -> geofence.fitting.Fit
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from geofence.fitting import fit_calibration

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        console=_stderr_console(),
    ) as bar:
        task = bar.add_task("fitting classes (labelled trips)", total=len(labels))

        def step(key: tuple[str, str, str], n: int) -> None:
            bar.update(task, advance=n, description=f"fitted {'/'.join(key)}")

        return fit_calibration(index, labels, policy, min_trips=min_trips, progress=step)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _render_calibration(fit, source: str) -> None:  # fit: geofence.fitting.Fit
    from rich.console import Console
    from rich.table import Table

    def pct(v: float) -> str:
        return "-" if v != v else f"{100 * v:.1f} %"

    table = Table(
        header_style="bold",
        title=f"error model per class ({source})",
        caption="covered: true position inside the fused 68 % radius, before -> after "
        "(a box label counts its nearest point); target 68 %",
    )
    for col in ("operator", "device class", "quality", "trips", "factor", "floor m", "bias m"):
        table.add_column(col, justify="right" if col[0] in "tfb" and col != "operator" else "left")
    for col in ("outliers", "narrow", "loglik/trip", "covered before", "covered after", "note"):
        table.add_column(col, justify="left" if col == "note" else "right")
    for c in fit.classes:
        r = c.row
        table.add_row(
            *c.key,
            str(c.trips),
            f"{r.accuracy_factor:.3f}",
            f"{r.accuracy_floor_m:.3f}",
            f"{r.bias_m:.3f}",
            f"{r.outlier_share:.4f}",
            "yes" if r.settles_narrow else "no",
            "-" if c.fit is None else f"{c.fit.loglik / max(c.trips, 1):.3f}",
            pct(c.coverage_before),
            pct(c.coverage_after),
            c.note or ("fitted" if c.fitted else ""),
        )
    Console().print(table)


def _reliability_plot(fit, path: Path) -> None:  # fit: geofence.fitting.Fit
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    nominal = np.linspace(0.02, 0.98, 49)
    radius = np.sqrt(-2.0 * np.log1p(-nominal))  # in per-axis sigmas
    fig, ax = plt.subplots(figsize=(6.5, 6.0))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, label="perfectly calibrated")
    for i, c in enumerate(fit.classes):
        colour = f"C{i % 10}"
        name = "/".join(c.key)
        for z, style, when in ((c.z_before, ":", "base"), (c.z_after, "-", "fitted")):
            ok = z[np.isfinite(z)]
            if not len(ok):
                continue
            observed = (ok[:, None] <= radius[None, :]).mean(axis=0)
            ax.plot(nominal, observed, style, color=colour, label=f"{name} ({when})")
    ax.axvline(0.68, color="0.8", lw=0.8)
    ax.set_xlabel("nominal probability of the fused radius")
    ax.set_ylabel("share of true positions inside it")
    ax.set_title("reliability of the fused position, before and after calibration")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Entry point of the ``geofence`` console script."""
    app()
