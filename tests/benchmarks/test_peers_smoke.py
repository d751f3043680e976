"""Smoke test of the peer benchmark's harness (``benchmarks/peers/``), kept fast.

It runs ``bench_peers.py`` end to end on this project's column and the TCP floor with
tiny counts, one pass, no kernel and no charts: nothing is downloaded, since both run on
this interpreter. What it guards: every workload still produces a number for Wool, the
results and ``peers.md`` are written, and no process the run started outlives it. The
full comparison (``make bench-peers``) stays out of the test suite.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
from reaped import run_reaped

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"
METRICS = (
    "cold_start_s",
    "noop_p50_us",
    "noop_p90_us",
    "noop_p99_us",
    "throughput_cps",
    "mib_ms",
    "big_ms",
    "fib_tasks_per_s",
)


@pytest.mark.integration
def test_harness_runs_wools_column_with_tiny_counts(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "WOOL_PEERS_DIR": str(tmp_path / "scratch")}
    command = [
        sys.executable,
        str(PEERS / "bench_peers.py"),
        "--sizes=tiny",
        "--passes=1",
        "--only=wool,tcp",
        "--no-kernel",
        "--no-charts",
        "--quiet-wait=0",
        "--system-wait=0",
        f"--out={out}",
    ]
    done, left = run_reaped(command, env, "PEERS_SMOKE", timeout=90)
    assert left == [], f"processes outlived the run: {left}"
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads((out / "peers.json").read_text())
    wool = results["passes"][0]["wool"]
    assert wool["errors"] == {}
    assert "leftovers" not in wool
    for key in METRICS:
        assert math.isfinite(wool[key]) and wool[key] > 0, (key, wool.get(key))
    assert wool["noop_p50_us"] <= wool["noop_p90_us"] <= wool["noop_p99_us"]
    assert results["passes"][0]["tcp"]["errors"] == {}

    table = (out / "peers.md").read_text()
    assert "| **wool** |" in table
    assert "| tcp (floor) |" in table
    assert "## The bar we hold" in table
