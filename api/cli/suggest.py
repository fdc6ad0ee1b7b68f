"""``geofence zones suggest``: the hot spots of rejected trip ends as a zone-set draft.

Reads the audit log of the database (``GEOFENCE_DATABASE_URL``, as ``geofence checks
replay`` does), clusters the window's rejected trip ends against the active zone set
(:mod:`api.hotspots`) and writes the proposed boxes as a GeoJSON FeatureCollection
that ``geofence zones validate`` accepts (ids ``ZH-SUG-0001`` …, kind ``parking``,
``fenced`` false). Hot spots in an unfenced painted box are listed in the draft's
``zone_set.fence`` metadata: fence that box rather than paint a new one.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from api.hotspots import find_hotspots
from api.service import load_zone_set
from api.storage import Store

__all__ = ["suggest"]


def suggest(
    store: Store,
    out: Path,
    *,
    since: datetime | None,
    until: datetime | None,
    radius_m: float,
    min_count: int,
    as_json: bool = False,
) -> int:
    """Write the draft to ``out``; returns the exit code (0, or 2 on errors)."""
    from geofence import ZoneIndex

    version = store.active_version()
    if version is None:
        sys.stderr.write("error: the database has no active zone set\n")
        return 2
    index = ZoneIndex(load_zone_set(store, version))
    found = find_hotspots(
        store, index, since=since, until=until, radius_m=radius_m, min_count=min_count
    )
    doc = found.draft()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"error: cannot write {out}: {exc.strerror}\n")
        return 2
    if as_json:
        sys.stdout.write(json.dumps(found.geojson(), ensure_ascii=False, indent=2) + "\n")
        return 0
    _render(found, out, len(doc["features"]))
    return 0


def _render(found, out: Path, n_boxes: int) -> None:  # found: api.hotspots.Hotspots
    from rich.console import Console
    from rich.table import Table

    console = Console()
    p = found.parameters()
    if found.suggestions:
        table = Table(header_style="bold", title="hot spots of rejected trip ends")
        for col in ("id", "district", "trip ends", "per day", "centroid", "bearing", "action"):
            table.add_column(col, overflow="fold")
        for s in found.suggestions:
            action = f"fence {s.nearest_box}" if s.action == "fence" else "paint"
            table.add_row(
                s.id,
                s.district,
                str(s.count),
                f"{s.expected_per_day:.1f}",
                f"{s.lon:.6f}, {s.lat:.6f}",
                f"{s.orientation_deg:.0f}° ({s.orientation_source.replace('_', ' ')})",
                action,
            )
        console.print(table)
    console.print(
        f"{len(found.suggestions)} hot spots from {p['rejected_trip_ends']} rejected trip ends "
        f"({p['from']} to {p['to']}, radius {p['radius_m']} m, at least {p['min_count']}); "
        f"{n_boxes} new boxes written to {out}"
        + ("" if n_boxes else " (an empty draft: nothing to validate)"),
        highlight=False,
    )
