"""The reliability plot (``bench/results/gnss.png``) and the printed table."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_reliability(rel: dict[str, dict[str, list[dict[str, Any]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(rel)
    fig, axes = plt.subplots(1, len(conds), figsize=(7 * len(conds), 6.5), squeeze=False)
    for ax, cond in zip(axes[0], conds, strict=True):
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="perfectly calibrated")
        for sc, rows in rel[cond].items():
            # bins of fewer than 50 trips say little: left out of the plot (not the JSON)
            pts = [(r["mean_p"], r["observed_inside"]) for r in rows if r["trips"] >= 50]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=sc)
        ax.set_xlabel("predicted p_inside (bin mean)")
        ax.set_ylabel("observed share truly inside an eligible box")
        ax.set_title(f"{cond}: reliability per scenario (bands in equal shares)")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_table(results: dict[str, Any], conds: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for cond in conds:
        tab = Table(title=f"GNSS scenarios, condition: {cond} (per scenario and band, % of trips)")
        for col in (
            "scenario",
            "band",
            "settle",
            "reject",
            "review",
            "cover r68",
            "PIP settle",
            "buf5 settle",
            "targets",
        ):
            left = col in ("scenario", "band", "targets")
            tab.add_column(col, justify="left" if left else "right")
        for sc, per_band in results.items():
            for band, r in per_band.items():
                m = r[cond]
                if m is None:
                    continue
                marks = ", ".join(
                    f"[{'green' if t['met'] else 'red'}]{t['target']} "
                    f"{'met' if t['met'] else 'MISSED'}[/]"
                    for t in m["targets"]
                )
                tab.add_row(
                    sc,
                    band,
                    f"{m['settled_pct']:.2f}",
                    f"{m['rejected_pct']:.2f}",
                    f"{m['review_pct']:.2f}",
                    f"{m['coverage_r68_pct']:.1f}",
                    f"{r['baselines']['raw_point_in_polygon']['settled_pct']:.2f}",
                    f"{r['baselines']['buffer_5m']['settled_pct']:.2f}",
                    marks,
                )
            tab.add_section()
        console.print(tab)
