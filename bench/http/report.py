"""The report: the machine, the targets, the plot (latency against rate) and
``bench/results/http.json``, written whole by a full run or merged into by the
``--only`` runs (each replaces its own sections and keeps the others).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from bench.http.harness import ROOT

RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def targets(results: dict[str, Any], t_cold: float) -> dict[str, bool]:
    """The README's targets, met or not, from a full run's ``results``."""
    return {
        "single_check_ratio_ge_0.70": results["throughput"]["ratio"] >= 0.70,
        # issue 18: against the baseline that pays the same durability
        "checks_to_bare_audit_ge_0.85": results["throughput"]["checks_to_bare_audit"] >= 0.85,
        "p99_le_10ms_at_1000_per_s": results["at_1000_per_s"]["p99_ms"] <= 10.0,
        "batch_ge_1M_fixes_per_s": results["batch"]["best_fixes_per_s"] >= 1_000_000,
        "cold_start_le_3s": t_cold <= 3.0,
    }


def write(results: dict[str, Any]) -> None:
    """A full run: ``http.json`` and ``http.png``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "http.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    plot(results, RESULTS / "http.png")


def merge(sections: dict[str, Any]) -> None:
    """An ``--only`` run: replace ``sections`` in ``http.json`` (read now), keep the rest."""
    out = RESULTS / "http.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results.update(sections)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    styles = {
        "checks": ("tab:blue", "POST /v1/checks (audit log on)"),
        "bare": ("tab:gray", "bare FastAPI endpoint"),
    }
    for name, rows in results["latency_vs_rate"].items():
        color, label = styles[name]
        x = [r["achieved_rate"] for r in rows]
        ax.plot(x, [r["p50_ms"] for r in rows], "o--", color=color, label=f"{label}: p50")
        ax.plot(x, [r["p99_ms"] for r in rows], "s-", color=color, label=f"{label}: p99")
    ax.axhline(10, color="tab:red", lw=0.8, ls=":", label="p99 target 10 ms")
    ax.axvline(1000, color="tab:green", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("requests/s (open loop, achieved)")
    ax.set_ylabel("latency (ms, from the scheduled send time)")
    t = results["throughput"]
    ax.set_title(
        f"Latency against rate; max {t['checks']['rps']:.0f} checks/s vs bare "
        f"{t['bare']['rps']:.0f} req/s ({t['ratio']:.0%})",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
