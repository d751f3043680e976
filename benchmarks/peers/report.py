"""``peers.md`` from the harness's results: medians, spread, ratios, the bar we hold.

Standard library only (it runs in the harness's interpreter). Every number is the median
over the passes of one run; the spread is ``(max - min) / median`` over those passes.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

#: metric key -> (column title, format, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "cold_start_s": ("cold start (s)", "{:.2f}", False),
    "noop_p50_us": ("no-op p50 (µs)", "{:,.0f}", False),
    "noop_p90_us": ("p90 (µs)", "{:,.0f}", False),
    "noop_p99_us": ("p99 (µs)", "{:,.0f}", False),
    "throughput_cps": ("throughput (calls/s)", "{:,.0f}", True),
    "mib_ms": ("1 MiB (ms)", "{:.1f}", False),
    "big_ms": ("64 MiB (ms)", "{:.0f}", False),
    "fib_tasks_per_s": ("fib(12) (tasks/s)", "{:,.0f}", True),
}
KERNEL_METRICS = ("noop_p50_us", "noop_p90_us", "noop_p99_us")
#: This project's column.
OURS = "wool"
#: What a table cell shows for a number that was not measured.
MISSING = "n/a"


@dataclasses.dataclass(frozen=True)
class Bar:
    """One ratio we hold ourselves to: ``other``'s number over ours (or ours under it)."""

    metric: str
    other: str
    factor: float
    text: str

    def ratio(self, medians: dict[str, dict[str, float]]) -> float:
        """How many times better we are than ``other`` on ``metric`` (nan if missing)."""
        ours = medians.get(OURS, {}).get(self.metric, math.nan)
        theirs = medians.get(self.other, {}).get(self.metric, math.nan)
        if METRICS[self.metric][2]:
            return ours / theirs if theirs else math.nan
        return theirs / ours if ours else math.nan


BARS = [
    Bar("noop_p50_us", "ray", 5.0, "no-op p50 at least 5x lower than Ray's"),
    Bar("noop_p50_us", "wool-pypi", 8.0, "no-op p50 at least 8x lower than the original wool's"),
    Bar("throughput_cps", "ray", 10.0, "throughput at least 10x Ray's"),
    Bar("throughput_cps", "wool-pypi", 10.0, "throughput at least 10x the original wool's"),
    Bar("cold_start_s", "dask", 1.0, "cold start under Dask's"),
]


def one_line(result: dict[str, Any]) -> str:
    """A short progress line for one system's result."""
    parts = [f"load {result['load']:.1f}"] if "load" in result else []
    for key in ("cold_start_s", "noop_p50_us", "throughput_cps"):
        if key in result:
            title, fmt, _ = METRICS[key]
            parts.append(f"{title.split(' (')[0]} {fmt.format(result[key])}")
    problems = result.get("errors") or result.get("error")
    if problems:
        parts.append(f"ERRORS {problems}")
    if result.get("leftovers"):
        parts.append(f"LEFTOVERS {result['leftovers']}")
    return ", ".join(parts)


def medians_of(
    passes: list[dict[str, Any]], keys: list[str] | tuple[str, ...]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per system and metric: the median over passes and the spread between passes."""
    medians: dict[str, dict[str, float]] = {}
    spreads: dict[str, dict[str, float]] = {}
    names = [name for run in passes for name in run]
    for name in dict.fromkeys(names):
        for key in keys:
            values = [run[name][key] for run in passes if key in run.get(name, {})]
            if not values:
                continue
            mid = statistics.median(values)
            medians.setdefault(name, {})[key] = mid
            spreads.setdefault(name, {})[key] = (max(values) - min(values)) / mid if mid else 0
    return medians, spreads


def _cell(value: float | None, fmt: str) -> str:
    return MISSING if value is None or math.isnan(value) else fmt.format(value)


def _ratio(value: float) -> str:
    if math.isnan(value):
        return MISSING
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def render(results: dict[str, Any]) -> str:
    """The whole ``peers.md``."""
    passes = results["passes"]
    medians, spreads = medians_of(passes, list(METRICS))
    kmedians, kspreads = medians_of(results.get("kernel_passes") or [], KERNEL_METRICS)
    names = list(dict.fromkeys(name for run in passes for name in run))
    floors = [n for n in results.get("floors", []) if n in names]
    systems = [n for n in names if n not in floors]
    sizes = results.get("sizes_detail", {})
    lines = [
        "# Wool beside its peers",
        "",
        f"Measured {results['date']} by `make bench-peers` "
        f"(`python benchmarks/peers/bench_peers.py`), {len(passes)} pass(es), sizes "
        f"`{results['sizes']}`, commit `{results.get('commit', 'unknown')}`.",
        "",
        _machine_line(results),
        "",
        "Two workers per system on 127.0.0.1, each system through its own async API in its "
        "own virtualenv. Medians over the passes; every system runs in a process of its own, "
        "one after another, in an order that rotates from pass to pass.",
        "",
        "## Results",
        "",
    ]
    header = ["system", *(METRICS[k][0] for k in METRICS), "kernel p50 (µs)"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name in names:
        row = [f"**{name}**" if name == OURS else (f"{name} (floor)" if name in floors else name)]
        for key, (_, fmt, _) in METRICS.items():
            row.append(_cell(medians.get(name, {}).get(key), fmt))
        row.append(_cell(kmedians.get(name, {}).get("noop_p50_us"), "{:,.0f}"))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"No-op latency: {sizes.get('latency_calls')} sequential calls after "
        f"{sizes.get('warmup')} warm-up calls and one concurrent burst. Throughput: "
        f"{sizes.get('burst')} no-ops in flight at once, median of {sizes.get('burst_reps')}. "
        f"1 MiB / 64 MiB: random bytes sent and returned, median of {sizes.get('mib_calls')} "
        f"/ {sizes.get('big_calls')}. fib({sizes.get('fib_n')}): nested calls "
        f"({_fib_calls(sizes)} per fib), "
        f"median of {sizes.get('fib_reps')}. Cold start: from creating the cluster to the "
        "first no-op result. Kernel p50: the same no-op loop from a Jupyter kernel cell "
        "(kernel started from the system's own virtualenv).",
        "",
    ]
    lines += _bar_section(medians, passes)
    lines += _ratio_section(medians, systems, floors)
    loads = {
        name: ", ".join(f"{run[name]['load']:.1f}" for run in passes if "load" in run.get(name, {}))
        for name in names
    }
    lines += _spread_section(spreads, kspreads, names, loads)
    lines += _notes_section(results, names)
    lines += _versions_section(results, names)
    return "\n".join(lines) + "\n"


def _fib_calls(sizes: dict[str, Any]) -> str:
    n = sizes.get("fib_n")
    if not isinstance(n, int):
        return "?"
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return str(2 * a - 1)


def _machine_line(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    load = results.get("load_at_start")
    quiet = results.get("quiet")
    text = (
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory')} RAM, "
        f"{m.get('os')}, Python {m.get('python')}."
    )
    if load is not None:
        text += f" Load average at start {load:.2f}, at end {results.get('load_at_end', 0):.2f}"
        text += "." if quiet else " (the machine never got below the load asked for; run anyway)."
    return text


#: Which floor explains where a metric's time goes, and what that floor is.
EXPLAINING_FLOOR = {
    "noop_p50_us": ("grpc", "the raw gRPC stream echo's"),
    "throughput_cps": ("grpc", "the raw gRPC stream echo's"),
    "cold_start_s": ("pool", "ProcessPoolExecutor(2)'s"),
}


def _per_pass(bar: Bar, passes: list[dict[str, Any]]) -> list[float]:
    """The bar's ratio in each pass on its own."""
    found = []
    for run in passes:
        single = {name: {k: v for k, v in r.items() if k in METRICS} for name, r in run.items()}
        found.append(bar.ratio(single))
    return found


def _where_time_goes(bar: Bar, medians: dict[str, dict[str, float]], short: str) -> str:
    """A note on a bar missed (in the medians or in one pass): by how much, and why."""
    floor, what = EXPLAINING_FLOOR[bar.metric]
    ours = medians.get(OURS, {}).get(bar.metric, math.nan)
    base = medians.get(floor, {}).get(bar.metric, math.nan)
    theirs = medians.get(bar.other, {}).get(bar.metric, math.nan)
    text = f"- {bar.text}: {short}. "
    if not math.isnan(ours / base):
        text += f"Wool's {METRICS[bar.metric][0]} is {ours / base:.2f}x {what} in this run"
        text += f" and {bar.other}'s is {theirs / base:.2f}x"
        if bar.metric == "cold_start_s":
            text += ": most of Wool's start is spawning two Python processes and importing"
            text += " grpc and wool in them."
        else:
            text += ": most of Wool's time is gRPC's own round trip on this machine."
    return text


def _bar_section(medians: dict[str, dict[str, float]], passes: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## The bar we hold",
        "",
        "| target | measured (medians) | per pass | result |",
        "| --- | --- | --- | --- |",
    ]
    notes = []
    for bar in BARS:
        per_pass = _per_pass(bar, passes)
        shown = ", ".join(MISSING if math.isnan(r) else f"{r:.1f}x" for r in per_pass)
        ratio = bar.ratio(medians)
        if math.isnan(ratio):
            measured, verdict = MISSING, "n/a"
        elif bar.metric == "cold_start_s":
            ours = medians[OURS][bar.metric]
            theirs = medians[bar.other][bar.metric]
            measured = f"{ours:.2f} s vs {theirs:.2f} s"
            verdict = "PASS" if ratio > bar.factor else f"MISS by {ours - theirs:.2f} s"
        else:
            measured = f"{ratio:.1f}x"
            verdict = (
                "PASS" if ratio >= bar.factor else f"MISS ({ratio / bar.factor:.0%} of the bar)"
            )
        lines.append(f"| {bar.text} | {measured} | {shown} | {verdict} |")
        strict = bar.metric == "cold_start_s"
        missed = [
            (i, r) for i, r in enumerate(per_pass, 1) if r < bar.factor or (strict and r == 1)
        ]
        if verdict.startswith("MISS"):
            notes.append(_where_time_goes(bar, medians, verdict.lower()))
        elif missed:
            short = "; ".join(f"pass {i} missed it at {r:.2f}x" for i, r in missed)
            notes.append(_where_time_goes(bar, medians, short))
    if notes:
        lines += ["", *notes]
    return [*lines, ""]


def _ratio_section(
    medians: dict[str, dict[str, float]], systems: list[str], floors: list[str]
) -> list[str]:
    if not floors:
        return []
    lines = [
        "## Ratios to the floors",
        "",
        "No-op p50 over the floor's (lower is better) and throughput over the floor's "
        "(higher is better).",
        "",
    ]
    header = ["system"]
    header += [f"p50 / {f}" for f in floors] + [f"throughput / {f}" for f in floors]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name in systems:
        row = [name]
        for key in ("noop_p50_us", "throughput_cps"):
            for floor in floors:
                ours = medians.get(name, {}).get(key, math.nan)
                base = medians.get(floor, {}).get(key, math.nan)
                row.append(_ratio(ours / base if base else math.nan))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _spread_section(
    spreads: dict[str, dict[str, float]],
    kspreads: dict[str, dict[str, float]],
    names: list[str],
    loads: dict[str, str],
) -> list[str]:
    keys = ["cold_start_s", "noop_p50_us", "throughput_cps", "mib_ms", "big_ms"]
    keys.append("fib_tasks_per_s")
    header = ["system", *(METRICS[k][0].split(" (")[0] for k in keys), "kernel p50"]
    header.append("load at start")
    lines = [
        "## Spread between passes",
        "",
        "(max - min) / median over the passes: how far to trust a difference. The last "
        "column is the 1-minute load average when the system started, pass by pass (the "
        "machine is a shared 2-core VM; other work ran on it).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for name in names:
        row = [name] + [_pct(spreads.get(name, {}).get(k)) for k in keys]
        row.append(_pct(kspreads.get(name, {}).get("noop_p50_us")))
        row.append(loads.get(name) or MISSING)
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _pct(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0%}"


def _notes_section(results: dict[str, Any], names: list[str]) -> list[str]:
    lines = ["## Notes", ""]
    seen: set[str] = set()
    for kind, runs in (("", results["passes"]), ("kernel ", results.get("kernel_passes") or [])):
        for index, run in enumerate(runs, 1):
            for name in names:
                result = run.get(name)
                if result is None:
                    continue
                for key, note in result.get("notes", {}).items():
                    text = f"- {name}: {key}: {note}"
                    if text not in seen:
                        seen.add(text)
                        lines.append(text)
                errors = result.get("errors") or (
                    {"cell": result["error"]} if "error" in result else {}
                )
                for key, error in errors.items():
                    lines.append(f"- {kind}pass {index}, {name}: {key} failed: {error}")
                for left in result.get("leftovers", []):
                    lines.append(f"- {kind}pass {index}, {name}: stopped a leftover process {left}")
    if len(lines) == 2:
        lines.append("- no errors and no leftover processes")
    return [*lines, ""]


def _versions_section(results: dict[str, Any], names: list[str]) -> list[str]:
    lines = ["## Versions", ""]
    for name in names:
        for run in results["passes"]:
            versions = run.get(name, {}).get("versions")
            if versions:
                text = ", ".join(f"{k} {v}" for k, v in versions.items())
                pins = results.get("pins", {}).get(name)
                pinned = f" (pinned: {' '.join(pins)})" if pins else ""
                lines.append(f"- {name}: {text}{pinned}")
                break
    return [*lines, ""]
