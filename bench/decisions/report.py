"""The sweep's plot (``bench/results/decisions.png``), the confusion matrices as text and
the JSON encoder of numpy scalars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.decisions.workload import (
    FIX_CLASSES,
    FIXES_PER_TRIP,
    SWEEP,
    TARGET_CORRECT_PRECISE_PCT,
    TARGET_WRONG_PCT,
)


def plot(sweep: list[dict[str, Any]], default: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("wrongly_settled_pct_of_trips", "wrongly settled, % of all trips", TARGET_WRONG_PCT),
        ("correctly_settled_pct", "correctly settled, % of eligible inside", None),
        ("review_pct", "review, % of all trips", None),
    ]
    tols = SWEEP["tolerance_m"]
    rhos = SWEEP["centre_p"]
    colors = dict(zip(tols, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=True))
    styles = dict(zip(rhos, [":", "-", "--"], strict=True))
    fig, axes = plt.subplots(3, 2, figsize=(12, 11), sharex=True)
    for col, fc in enumerate(FIX_CLASSES):
        for row, (key, label, target) in enumerate(metrics):
            ax = axes[row, col]
            for tol in tols:
                for rho in rhos:
                    pts = sorted(
                        (r["settle_p"], r[fc][key])
                        for r in sweep
                        if r["tolerance_m"] == tol and r["centre_p"] == rho
                    )
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        color=colors[tol],
                        linestyle=styles[rho],
                        marker=".",
                        label=f"tol {tol} m, centre p {rho}" if (row, col) == (0, 0) else None,
                    )
            if target is not None:
                ax.axhline(target, color="k", lw=0.8, ls="-.", alpha=0.7)
            if key == "correctly_settled_pct" and fc == "precise":
                ax.axhline(TARGET_CORRECT_PRECISE_PCT, color="k", lw=0.8, ls="-.", alpha=0.7)
            ax.plot(
                default["settle_p"],
                default[fc][key],
                marker="*",
                ms=14,
                color="k",
                ls="none",
                label="default policy" if (row, col) == (0, 0) else None,
            )
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            if row == 0:
                acc = "3-10 m" if fc == "consumer" else "0.3-1 m"
                ax.set_title(f"{fc} fixes ({acc}, {FIXES_PER_TRIP} per trip)")
            if row == 2:
                ax.set_xlabel("settle_p")
    fig.legend(loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Decision quality against the policy's thresholds (same trips; dash-dot: targets)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def print_matrix(title: str, m: dict[str, dict[str, int]], cols: tuple[str, ...]) -> None:
    print(f"  {title}")
    print("    " + f"{'truth':<20}" + "".join(f"{c:>10}" for c in cols) + f"{'total':>10}")
    for r, row in m.items():
        tot = sum(row.values())
        if not tot:
            continue
        cells = "".join(f"{100 * row[c] / tot:>9.2f}%" for c in cols)
        print(f"    {r:<20}{cells}{tot:>10,}")
