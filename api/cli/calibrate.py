"""``geofence calibrate``: fit the error model to labelled trips (a label file or the
audit log's beacon hits, :mod:`api.labels`; :func:`geofence.fitting.fit_calibration`),
its table of classes and the reliability plot written beside the policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import _settings, _stderr_console, _store, _when, app


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
