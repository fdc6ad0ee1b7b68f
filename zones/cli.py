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


@app.command("diff")
def diff_cmd(
    file: Annotated[Path, typer.Argument(help="The new zone set (GeoJSON FeatureCollection).")],
    against: Annotated[
        Path | None,
        typer.Option(help="The old zone set to compare with (default: the bundled Zhuhai set)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    moved_threshold: Annotated[
        float, typer.Option(help="Centroid shift (m) above which a zone counts as moved.")
    ] = 0.5,
    limit: Annotated[int, typer.Option(help="Changed-zone rows to show (0 = all).")] = 50,
) -> None:
    """Added, removed, moved, reshaped and re-attributed zones: exit 0, 1 bad zones, 2 usage."""
    from zones.diff import run_cli

    code = run_cli(
        file, against=against, as_json=as_json, moved_threshold_m=moved_threshold, limit=limit
    )
    raise typer.Exit(code)


@app.command("export")
def export_cmd(
    file: Annotated[
        Path | None, typer.Argument(help="Zone set to export (default: the bundled Zhuhai set).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="geojson | gbfs-3.0 | gbfs-2.3 | mds")
    ] = "geojson",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("export"),
    base_url: Annotated[
        str | None, typer.Option(help="Where the GBFS files will be published (gbfs.json links).")
    ] = None,
    system_id: Annotated[str, typer.Option(help="GBFS system_id / MDS id namespace.")] = (
        "zhuhai-parking"
    ),
    name: Annotated[str | None, typer.Option(help="GBFS system name.")] = None,
    operator: Annotated[str | None, typer.Option(help="Who runs the system (GBFS).")] = None,
    feed_contact_email: Annotated[
        str | None, typer.Option(help="GBFS feed_contact_email (3.0: MUST be a real address).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="The system's web page (GBFS url).")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone (GBFS).")] = "Asia/Shanghai",
    license_id: Annotated[
        str | None, typer.Option(help="SPDX licence of the data (e.g. CC-BY-4.0).")
    ] = None,
    license_url: Annotated[
        str | None, typer.Option(help="URL of a custom licence (instead of --license-id).")
    ] = None,
    ttl: Annotated[int, typer.Option(help="GBFS ttl, seconds.")] = 3600,
    service: Annotated[
        str | None,
        typer.Option(help="With --format mds: read a running service's whole history (URL)."),
    ] = None,
) -> None:
    """Write GeoJSON, GBFS 3.0/2.3 or MDS 2.0 files: exit 0, 1 invalid zones/output, 2 usage."""
    from zones.export import FeedMeta, run_cli
    from zones.export.gbfs import DEFAULT_CONTACT_EMAIL, SYSTEM_NAME

    meta = FeedMeta(
        system_id=system_id,
        name=name or SYSTEM_NAME,
        operator=operator,
        feed_contact_email=feed_contact_email or DEFAULT_CONTACT_EMAIL,
        url=url,
        timezone=timezone,
        license_id=license_id,
        license_url=license_url,
    )
    code = run_cli(file, fmt=fmt, out=out, base_url=base_url, meta=meta, ttl=ttl, service=service)
    raise typer.Exit(code)


@app.command("synth")
def synth_cmd(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same bytes.")] = (
        20261126
    ),
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the zone set.")] = Path(
        "zones/data/zhuhai.geojson"
    ),
    parking: Annotated[int, typer.Option(help="Parking boxes.")] = 18000,
    fenced: Annotated[int, typer.Option(help="Of which fenced (park-in-box settlement).")] = 13000,
    no_parking: Annotated[int, typer.Option(help="No-parking areas.")] = 300,
    workload: Annotated[int, typer.Option(help="Also write N trip ends with ground truth.")] = 0,
    workload_out: Annotated[
        Path | None, typer.Option(help="The workload .npz (default trip_ends_N_ACC_CRS.npz).")
    ] = None,
    accuracy: Annotated[
        str, typer.Option(help="Workload GPS accuracy: consumer (3-10 m), precise (0.3-1 m), LO-HI")
    ] = "consumer",
    crs: Annotated[str, typer.Option(help="Workload fix CRS: wgs84 | gcj02 | bd09.")] = "wgs84",
) -> None:
    """Generate the synthetic Zhuhai zone set (and trip-end workloads): exit 0, 2 usage."""
    from zones.synth import run_cli

    code = run_cli(
        seed=seed,
        out=out,
        n_parking=parking,
        n_fenced=fenced,
        n_no_parking=no_parking,
        workload=workload,
        workload_out=workload_out,
        accuracy=accuracy,
        crs=crs,
    )
    raise typer.Exit(code)
