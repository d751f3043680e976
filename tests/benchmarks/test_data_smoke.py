"""Smoke test of the data benchmark (``benchmarks/bench_data.py --quick``), kept fast.

It runs the script end to end with tiny sizes (no 256 MiB) so it cannot rot: every
section prints, the charts and the summary are written, and no process the run started
(Wool's workers, the floors' servers) outlives it. The full run (``make bench-data``)
stays out of the test suite.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from reaped import run_reaped

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_data.py"
SECTIONS = (
    "== payload sweep ==",
    "== no-op under a transfer ==",
    "== backpressure: peak RSS ==",
    "== scaling with workers ==",
    "== nested fan-out ==",
)
CHARTS = ("data_payload.png", "data_scaling.png", "data_fib.png")


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_quick_run_prints_every_section_and_writes_the_charts(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--quick", f"--out={tmp_path}"]
    done, left = run_reaped(command, dict(os.environ), "DATA_SMOKE", timeout=150)
    assert left == [], f"processes outlived the run: {left}"
    assert done.returncode == 0, done.stdout + done.stderr

    for title in SECTIONS:
        assert title in done.stdout, title
    assert "FAILED" not in done.stdout
    for name in CHARTS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((tmp_path / "data.json").read_text())
    assert results["errors"] == {}
    sizes = [row["size"] for row in results["sweep"]]
    assert sizes == [1024, 64 * 1024, 1024 * 1024]
    for row in results["sweep"]:
        for key in ("wool_bytes_s", "wool_numpy_s", "grpc_s", "tcp_s"):
            assert row[key] > 0, (row["size"], key)
    assert "| 1 MiB |" in (tmp_path / "data.md").read_text()
