"""Mutual TLS across hosts: five wrong ways in, each refused before a byte is unpickled."""

from __future__ import annotations

from pathlib import Path

import netns
import pytest
from mesh import CLIENT, PORT, assert_running, missing, start_worker, wait_ready

NEEDS = missing("wool.cli", "cryptography")
pytestmark = [
    pytest.mark.skipif(NEEDS is not None, reason=f"{NEEDS} (issue 11, H11/H12)"),
    pytest.mark.timeout(120),
]
HANDSHAKE = {"UNAVAILABLE"}
SECRET = {"UNAUTHENTICATED", "INTERNAL"}  # INTERNAL when the reset overtakes the status


def test_mutual_tls_refusals_across_hosts(
    net: netns.Network, certs: Path, other_certs: Path, tmp_path: Path
) -> None:
    h1, _, h3 = net.hosts
    worker = start_worker(h1, certs)
    wait_ready([worker])
    wires = tmp_path / "tripwires"
    wires.mkdir()
    report = h3.python(
        CLIENT, "refusals", "--target", f"{h1.address}:{PORT}", "--certs", str(certs),
        "--other", str(other_certs), "--tripwires", str(wires), timeout=90,
    )  # fmt: skip
    print(report)
    # Each refusal is typed, and its message says which of the five it was.
    says = {
        "other_ca": "another CA",
        "no_client_cert": "client certificate",
        "plaintext": "plaintext",
        "wrong_secret": "secret differs",
    }
    for case, words in says.items():
        expected = SECRET if case == "wrong_secret" else HANDSHAKE
        assert report[case]["raw"]["code"] in expected, (case, report[case])
        assert report[case]["typed"]["error"] == "AuthenticationError", (case, report[case])
        assert words in report[case]["typed"]["message"], (case, report[case])
    assert report["replay"]["first"]["code"] == "OK", report["replay"]
    assert report["replay"]["raw"]["code"] in SECRET, report["replay"]
    assert "replay" in report["replay"]["raw"]["details"], report["replay"]
    assert report["legitimate"]["error"] is None, report["legitimate"]
    # The payload works: the control, sent with the right credentials, left its file.
    assert (wires / "control").exists(), "the tripwire payload did not fire when accepted"
    left = sorted(p.name for p in wires.iterdir() if p.name != "control")
    assert left == [], f"refused payloads were unpickled: {left}"
    assert_running([worker])
