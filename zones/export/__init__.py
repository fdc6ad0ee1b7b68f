"""Export a zone set in the standards the city publishes it in, one module each:

- :mod:`zones.export.geojson`: ``zones.geojson`` (RFC 7946, lossless);
- :mod:`zones.export.gbfs`: GBFS 3.0 and 2.3 feeds, each with its own version's
  geometry and rule semantics, validated against the official schemas;
- :mod:`zones.export.mds`: the MDS 2.0 Geography document, immutable geographies over
  the zone sets' history, validated against the official OpenAPI response schema.

``export(fc, fmt, out_dir)`` writes one format and returns the files written;
``run_cli`` is ``geofence zones export``. Shared reading and checking helpers are in
:mod:`zones.export._common`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import shapely

from geofence.errors import ZoneDataError
from zones.export._common import Progress, check_rings, format_checker, is_uri, now_or, read_zones
from zones.export.gbfs import (
    DEFAULT_CONTACT_EMAIL,
    FeedMeta,
    FeedMetaError,
    build_feeds,
    validate_gbfs,
)
from zones.export.gbfs import FEEDS as GBFS_FEEDS
from zones.export.gbfs import SCHEMA_DIR as GBFS_SCHEMA_DIR
from zones.export.geojson import write_geojson
from zones.export.mds import (
    MEDIA_TYPE,
    Publication,
    build_geographies,
    geographies_document,
    validate_mds,
)

__all__ = [
    "DEFAULT_CONTACT_EMAIL",
    "FORMATS",
    "GBFS_FEEDS",
    "GBFS_SCHEMA_DIR",
    "FeedMeta",
    "FeedMetaError",
    "check_rings",
    "export",
    "format_checker",
    "run_cli",
    "validate_gbfs",
    "validate_mds",
]

FORMATS: tuple[str, ...] = ("geojson", "gbfs-3.0", "gbfs-2.3", "mds")


def export(
    fc: Mapping[str, Any],
    fmt: str,
    out_dir: str | Path,
    *,
    meta: FeedMeta | None = None,
    now: datetime | None = None,
    base_url: str | None = None,
    ttl: int = 3600,
    parking_type: str = "sidewalk_parking",
    service_area: shapely.Geometry | None = None,
    active_only: bool = True,
    progress: Progress | None = None,
) -> list[Path]:
    """Write ``fc`` in format ``fmt`` into ``out_dir`` (created if needed).

    ``meta`` is the feed's publisher (GBFS ``system_information``; its ``system_id`` also
    seeds the MDS ids). ``base_url`` is where the GBFS files will be published (default
    ``https://example.invalid/{system_id}/gbfs/{version}/``). ``service_area`` (WGS-84)
    defaults to :func:`zones.districts.service_area`. With ``active_only`` a GBFS feed
    shows the stations active at ``now`` and the no-parking areas not yet expired. An
    MDS export is one publication at ``now``. Raises :class:`ZoneDataError` when the zone
    set cannot be read, :class:`FeedMetaError` for bad metadata, :class:`ValueError` for
    an unknown format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    meta = (meta or FeedMeta()).check()
    if ttl < 0:
        raise FeedMetaError("ttl", "must be a non-negative number of seconds")
    t = now_or(now)
    report: Progress = progress or (lambda step, done, total: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    report("reading zones", 0, 1)
    table, zones, geoms = read_zones(fc)
    report("reading zones", 1, 1)

    if fmt == "geojson":
        return [write_geojson(fc, table, geoms, out, report)]
    if fmt == "mds":
        report("writing MDS geographies", 0, len(zones))
        geos = build_geographies([Publication(t, zones, geoms)], meta.system_id)
        path = out / "geographies.json"
        path.write_bytes(orjson.dumps(geographies_document(geos, t)))
        report("writing MDS geographies", len(zones), len(zones))
        return [path]
    version = fmt.removeprefix("gbfs-")
    if service_area is None:
        from zones.districts import service_area as _service_area

        service_area = _service_area()
    url = base_url or f"https://example.invalid/{meta.system_id}/gbfs/{version}/"
    if not url.endswith("/"):
        url += "/"
    docs = build_feeds(
        zones,
        geoms,
        version=version,
        meta=meta,
        now=t,
        last_updated=t,
        ttl=ttl,
        base_url=url,
        service_area=service_area,
        parking_type=parking_type,
        active_only=active_only,
        report=report,
    )
    written = []
    for name, doc in docs.items():
        path = out / f"{name}.json"
        path.write_bytes(orjson.dumps(doc))
        written.append(path)
    return written


def _from_service(url: str, out: Path) -> tuple[list[Path], Any]:
    """``GET {url}/mds/geographies`` from a running service (its whole history)."""
    import httpx

    r = httpx.get(
        url.rstrip("/") + "/mds/geographies",
        headers={"Accept": MEDIA_TYPE},
        timeout=120.0,
    )
    r.raise_for_status()
    doc = r.json()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "geographies.json"
    path.write_bytes(r.content)
    return [path], doc


def run_cli(
    file: Path | None,
    *,
    fmt: str,
    out: Path,
    base_url: str | None = None,
    meta: FeedMeta | None = None,
    ttl: int = 3600,
    service: str | None = None,
    now: datetime | None = None,
) -> int:
    """``geofence zones export [FILE] --format F [--out DIR]``: export with a progress bar,
    list the files written, validate a GBFS or MDS export against the official schemas
    (``--service URL`` with ``--format mds``: the running service's whole history instead
    of one file). Returns the exit code: 0 done; 1 the zone set breaks a rule or the
    output failed validation; 2 usage, metadata or file errors."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    from zones.diff import BUNDLED_PATH, CliError, load_file

    err = Console(stderr=True)
    src = file or BUNDLED_PATH

    def say(tag: str, msg: str) -> None:
        err.print(f"{tag} {msg}", markup=True, highlight=False, soft_wrap=True)

    def fail(msg: str) -> None:
        say("[bold red]error:[/]", msg)

    if fmt not in FORMATS:
        fail(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
        return 2
    if base_url is not None and not (is_uri(base_url) and urlsplit(base_url).netloc):
        fail(f"--base-url {base_url!r} is not an absolute URL")
        return 2
    meta = meta or FeedMeta()
    try:
        meta.check()
        if ttl < 0:
            raise FeedMetaError("ttl", "must be a non-negative number of seconds")
    except FeedMetaError as exc:
        fail(f"bad feed metadata: --{exc.field.replace('_', '-')}: {str(exc).split(': ', 1)[1]}")
        return 2
    if fmt.startswith("gbfs-"):
        for w in meta.warnings():
            say("[bold yellow]warning:[/]", w)
    if service is not None:
        if fmt != "mds":
            fail("--service reads the MDS history of a running service: use --format mds")
            return 2
        try:
            paths, doc = _from_service(service, out)
        except Exception as exc:  # network or HTTP: say which, exit 2
            fail(f"{service}: cannot read /mds/geographies ({exc})")
            return 2
        errors = validate_mds(doc)
    else:
        try:
            fc = load_file(src)
        except CliError as exc:
            fail(str(exc))
            return exc.code
        with Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            tasks: dict[str, Any] = {}

            def progress(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=max(total, 1))
                bar.update(tasks[step], completed=done, total=max(total, 1))

            try:
                paths = export(
                    fc,
                    fmt,
                    out,
                    meta=meta,
                    now=now,
                    base_url=base_url,
                    ttl=ttl,
                    progress=progress,
                )
            except ZoneDataError as exc:
                fail(f"{src}: {exc} [{exc.rule}]")
                return 1
            except OSError as exc:
                fail(f"{out}: cannot write ({exc.strerror or exc})")
                return 2
            errors = []
            if fmt.startswith("gbfs-"):
                task = bar.add_task(f"validating against the GBFS {fmt[5:]} schemas", total=1)
                errors = validate_gbfs(out, fmt)
                bar.update(task, completed=1)
            elif fmt == "mds":
                task = bar.add_task("validating against the MDS 2.0 schema", total=1)
                errors = validate_mds(orjson.loads(paths[0].read_bytes()))
                bar.update(task, completed=1)

    label = {"mds": "MDS 2.0"}.get(fmt, f"GBFS {fmt[5:]}")
    if errors:
        fail(
            f"{out}: the {fmt} export is not valid against the official {label} schemas "
            f"and rules ({len(errors)}{'+' if len(errors) >= 200 else ''} errors)"
        )
        for e in errors[:20]:
            err.print(f"  {e}", markup=False, highlight=False, soft_wrap=True)
        return 1
    for p in paths:
        print(p)
    note = f", valid against the official {label} schemas" if fmt != "geojson" else ""
    origin = service if service is not None else src.name
    err.print(f"wrote {len(paths)} file(s) to {out} from {origin}{note}", highlight=False)
    return 0
