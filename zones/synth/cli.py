"""``geofence zones synth``: arguments, the progress bar, the summary line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geofence import crs as _crs
from zones.districts import DISTRICTS
from zones.synth.city import synth_zhuhai
from zones.synth.features import write_geojson

# --------------------------------------------------------------------------- command line

_STAGES = ("district outlines", "no-parking areas", "parking boxes", "attributes", "checks")


def _summary(fc: dict[str, Any]) -> str:
    counts: dict[tuple[str, str], int] = {}
    fenced = 0
    for f in fc["features"]:
        p = f["properties"]
        key = (p["district"], p["kind"])
        counts[key] = counts.get(key, 0) + 1
        fenced += bool(p["kind"] == "parking" and p["fenced"])
    per = "; ".join(
        f"{name} {counts.get((name, 'parking'), 0):,} parking"
        f" / {counts.get((name, 'no_parking'), 0):,} no_parking"
        for _, name in DISTRICTS.values()
    )
    return f"{len(fc['features']):,} zones ({per}), {fenced:,} fenced"


def run_cli(
    *,
    seed: int,
    out: Path,
    n_parking: int,
    n_fenced: int,
    n_no_parking: int,
    workload: int,
    workload_out: Path | None,
    accuracy: str,
    crs: str,
) -> int:
    """``geofence zones synth``: 0 written, 2 bad arguments (a one-line message on stderr)."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True, highlight=False)

    def usage(msg: str) -> int:
        err.print(f"[red]error:[/red] {msg}", soft_wrap=True)
        return 2

    if seed < 0:
        return usage(f"--seed must be >= 0, got {seed}")
    if n_parking < 0 or n_fenced < 0 or n_no_parking < 0:
        return usage("--parking, --fenced and --no-parking must be >= 0")
    if n_fenced > n_parking:
        return usage(f"--fenced ({n_fenced}) cannot exceed --parking ({n_parking})")
    if workload < 0:
        return usage(f"--workload must be >= 0, got {workload}")
    try:
        from zones.workload import parse_accuracy

        acc = parse_accuracy(accuracy)
        crs_name = _crs.check_crs(crs)
    except ValueError as exc:  # geofence.errors.CRSError is a ValueError
        return usage(str(exc).splitlines()[0])
    if workload and n_parking == 0:
        return usage("--workload needs parking boxes (--parking > 0)")
    if out.exists() and out.is_dir():
        return usage(f"--out {out} is a directory, expected a file path")

    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("synth", total=len(_STAGES) + 1 + (1 if workload else 0))

        def step(stage: str, frac: float) -> None:
            done = _STAGES.index(stage) + frac if stage in _STAGES else len(_STAGES)
            bar.update(task, description=stage, completed=done)

        try:
            fc = synth_zhuhai(seed, n_parking, n_fenced, n_no_parking, progress=step)
        except (RuntimeError, ValueError) as exc:
            return usage(str(exc))
        bar.update(task, description="writing", completed=len(_STAGES))
        try:
            write_geojson(fc, out)
        except OSError as exc:
            return usage(f"cannot write {out}: {exc.strerror or exc}")
        bar.update(task, completed=len(_STAGES) + 1)
        if workload:
            from zones.workload import make_trip_ends

            bar.update(task, description="trip-end workload")
            wout = workload_out or Path(f"trip_ends_{workload}_{accuracy}_{crs_name}.npz")
            trips = make_trip_ends(fc, workload, seed=seed, accuracy=acc, crs=crs_name)
            try:
                trips.save_npz(wout)
            except OSError as exc:
                return usage(f"cannot write {wout}: {exc.strerror or exc}")
            bar.update(task, completed=len(_STAGES) + 2)
    size = out.stat().st_size / 1e6
    line = f"wrote {out}: {_summary(fc)}, seed {seed}, {size:.1f} MB"
    if workload:
        line += f"; {workload:,} trip ends ({accuracy}, {crs_name}) -> {wout}"
    print(f"{line} in {time.perf_counter() - t0:.1f} s")
    return 0
