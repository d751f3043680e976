"""PNG charts of ``peers.json``: no-op latency, throughput and cold start per system.

Run by ``bench_peers.py`` with the ``charts`` virtualenv (matplotlib):
``python charts.py path/to/peers.json`` writes ``peers_latency.png``,
``peers_throughput.png`` and ``peers_cold_start.png`` beside it. Bars are the medians over
the passes; log scales, since the systems differ by orders of magnitude.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OURS = "wool"
OURS_COLOR = "#1f6feb"
PEER_COLOR = "#8c959f"
FLOOR_COLOR = "#d0d7de"


def medians(results: dict[str, Any], key: str) -> dict[str, float]:
    """Median of ``key`` over the passes, per system, in the table's order."""
    names = list(dict.fromkeys(name for run in results["passes"] for name in run))
    found = {}
    for name in names:
        values = [run[name][key] for run in results["passes"] if key in run.get(name, {})]
        if values:
            found[name] = statistics.median(values)
    return found


def colors(names: list[str], floors: list[str]) -> list[str]:
    return [OURS_COLOR if n == OURS else FLOOR_COLOR if n in floors else PEER_COLOR for n in names]


def bar_chart(
    values: dict[str, float], floors: list[str], title: str, unit: str, path: Path, fmt: str
) -> None:
    """One horizontal bar chart, log scale, each bar labelled with its value."""
    names = list(values)
    labels = [f"{n} (floor)" if n in floors else n for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.42 * len(names) + 1.2), dpi=100)
    ax.barh(labels, [values[n] for n in names], color=colors(names, floors))
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    for index, name in enumerate(names):
        ax.text(values[name], index, " " + fmt.format(values[name]), va="center", fontsize=8)
    ax.margins(x=0.25)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def latency_chart(results: dict[str, Any], floors: list[str], path: Path) -> None:
    """Grouped bars: no-op p50, p90, p99 per system."""
    p50 = medians(results, "noop_p50_us")
    p90 = medians(results, "noop_p90_us")
    p99 = medians(results, "noop_p99_us")
    names = list(p50)
    labels = [f"{n} (floor)" if n in floors else n for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(names) + 1.2), dpi=100)
    height = 0.27
    for offset, (label, data, alpha) in enumerate(
        (("p50", p50, 1.0), ("p90", p90, 0.6), ("p99", p99, 0.3))
    ):
        ys = [i + (offset - 1) * height for i in range(len(names))]
        ax.barh(
            ys,
            [data.get(n, 0) for n in names],
            height=height,
            color=colors(names, floors),
            alpha=alpha,
            label=label,
        )
    for index, name in enumerate(names):
        ax.text(p50[name], index - height, f" {p50[name]:,.0f}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), labels)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("µs per sequential no-op call (log scale; lower is better)")
    ax.set_title(f"No-op latency: p50 (labelled), p90, p99 · {results['date']}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str]) -> None:
    source = Path(argv[1])
    results = json.loads(source.read_text())
    floors = results.get("floors", [])
    out = source.parent
    latency_chart(results, floors, out / "peers_latency.png")
    bar_chart(
        medians(results, "throughput_cps"),
        floors,
        f"Throughput: no-ops in flight at once · {results['date']}",
        "calls/s (log scale; higher is better)",
        out / "peers_throughput.png",
        "{:,.0f}",
    )
    bar_chart(
        medians(results, "cold_start_s"),
        floors,
        f"Cold start: creating the cluster to the first result · {results['date']}",
        "seconds (log scale; lower is better)",
        out / "peers_cold_start.png",
        "{:.2f} s",
    )
    for name in ("peers_latency.png", "peers_throughput.png", "peers_cold_start.png"):
        print(f"wrote {out / name} ({(out / name).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv)
