"""Smoke test of the peer benchmark's harness (``benchmarks/peers/``), kept fast.

It runs ``bench_peers.py`` end to end on this project's column and the TCP floor with
tiny counts, one pass, no kernel and no charts: nothing is downloaded, since both run on
this interpreter. What it guards: every workload still produces a number for Wool, the
results and ``peers.md`` are written, and no process the run started outlives it. The
full comparison (``make bench-peers``) stays out of the test suite.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

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


def _marked(token: str) -> list[int]:
    """PIDs of live processes whose environment holds ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "environ").read_bytes():
                status = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
                if status != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_gone(token: str, timeout: float) -> list[int]:
    """Wait until no process carries ``token``; return the ones still there at the bound."""
    deadline = time.monotonic() + timeout
    while (left := _marked(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.integration
def test_harness_runs_wools_column_with_tiny_counts(tmp_path: Path) -> None:
    token = f"wool-peers-smoke-{uuid.uuid4().hex}"
    out = tmp_path / "results"
    env = {**os.environ, "WOOL_PEERS_DIR": str(tmp_path / "scratch"), "PEERS_SMOKE": token}
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
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    finally:
        left = _wait_gone(token, 20.0)
        for pid in left:  # ours: they carry this run's token
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
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
