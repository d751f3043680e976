"""``peers.md``'s arithmetic: medians over passes, spreads, and the bar's verdicts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "peers"))

import report


def _result(p50: float, cps: float, cold: float) -> dict[str, Any]:
    return {"noop_p50_us": p50, "throughput_cps": cps, "cold_start_s": cold, "errors": {}}


def _results(passes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "date": "2026-12-01 21:00 UTC",
        "sizes": "tiny",
        "sizes_detail": {"fib_n": 12},
        "machine": {},
        "floors": ["tcp"],
        "passes": passes,
    }


def test_medians_and_spread_over_passes() -> None:
    passes = [{"a": _result(100, 1, 1)}, {"a": _result(300, 1, 1)}, {"a": _result(200, 1, 1)}]
    medians, spreads = report.medians_of(passes, ["noop_p50_us"])
    assert medians["a"]["noop_p50_us"] == 200
    assert spreads["a"]["noop_p50_us"] == 1.0


def test_bar_verdicts_say_pass_and_by_how_much_a_miss_falls_short() -> None:
    run = {
        "wool": _result(100, 5000, 0.5),
        "ray": _result(600, 1000, 5.0),
        "wool-pypi": _result(400, 100, 0.4),
        "dask": _result(900, 10, 2.0),
        "tcp": _result(50, 10000, 0.1),
    }
    text = report.render(_results([run, run]))
    assert "| no-op p50 at least 5x lower than Ray's | 6.0x | 6.0x, 6.0x | PASS |" in text
    assert (
        "| no-op p50 at least 8x lower than the original wool's | 4.0x | 4.0x, 4.0x | MISS (50%"
        in text
    )
    assert "| throughput at least 10x Ray's | 5.0x | 5.0x, 5.0x | MISS (50% of the bar) |" in text
    assert "| throughput at least 10x the original wool's | 50.0x | 50.0x, 50.0x | PASS |" in text
    assert "| cold start under Dask's | 0.50 s vs 2.00 s | 4.0x, 4.0x | PASS |" in text
    assert "| wool | 2.00x | 0.50x |" in text
    assert "- throughput at least 10x Ray's: miss (50% of the bar)." in text


def test_a_bar_missed_in_one_pass_only_is_named_with_the_floor_ratio() -> None:
    first = {"wool": _result(100, 1, 1), "ray": _result(700, 1, 1), "grpc": _result(80, 1, 1)}
    second = {"wool": _result(100, 1, 1), "ray": _result(400, 1, 1), "grpc": _result(80, 1, 1)}
    results = _results([first, second])
    results["floors"] = ["grpc"]
    text = report.render(results)
    assert "| 5.5x | 7.0x, 4.0x | PASS |" in text
    assert "Ray's: pass 2 missed it at 4.00x. Wool's no-op p50 (µs) is 1.25x" in text


def test_errors_and_leftovers_are_listed_in_the_notes() -> None:
    broken = {"name": "ray", "errors": {"start": "RuntimeError: no"}, "leftovers": ["7 raylet"]}
    text = report.render(_results([{"wool": _result(100, 1, 1), "ray": broken}]))
    assert "- pass 1, ray: start failed: RuntimeError: no" in text
    assert "- pass 1, ray: stopped a leftover process 7 raylet" in text
