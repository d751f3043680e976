"""The namespace hosts themselves: they reach each other and nothing else, and leave nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import netns
import pytest

PROBE = Path(__file__).with_name("probe.py")
OUTSIDE = "192.0.2.1"  # TEST-NET-1: never a target; proves there is no route out


def test_hosts_reach_each_other_and_nothing_outside(net: netns.Network) -> None:
    h1, h2, h3 = net.hosts
    seen = h3.python(PROBE, h1.address, h2.address, OUTSIDE)
    assert seen[h1.address] == "refused" and seen[h2.address] == "refused", seen
    assert seen[OUTSIDE] == "unreachable", seen


def test_a_link_taken_down_partitions_that_host_and_heals(net: netns.Network) -> None:
    h1, h2, h3 = net.hosts
    h2.link(False)
    assert h3.python(PROBE, h1.address, h2.address)[h2.address] == "timeout"
    h2.link(True)
    assert h3.python(PROBE, h2.address)[h2.address] == "refused"


def test_a_hosts_file_resolves_one_name_to_several_addresses(net: netns.Network) -> None:
    h1, h2, h3 = net.hosts
    h3.hosts_file([(h1.address, "wool-mesh"), (h2.address, "wool-mesh")])
    assert h3.python(PROBE, "--resolve", "wool-mesh")["resolved"] == sorted(
        [h1.address, h2.address]
    )


def test_close_ends_processes_by_pid_and_deletes_everything() -> None:
    why = netns.can_run()
    if why is not None:
        pytest.skip(why)
    network = netns.Network(2, suffix=f"w{os.getpid() % 100000}t")
    try:
        host = network.hosts[0]
        proc = host.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
        host.hosts_file([(host.address, "x")])
        deadline = time.monotonic() + 10  # `ip netns exec` enters the namespace, then execs
        while host.pids_inside() != [proc.pid]:
            assert time.monotonic() < deadline, f"{proc.pid} never showed inside {host.name}"
            time.sleep(0.02)
        assert network.close() == []
        assert not netns.pid_alive(proc.pid)
        assert network.leftovers() == []
        assert not (netns.ETC_NETNS / host.name).exists()
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert host.name not in names
    finally:
        network.close()  # a failed check above must not leave the namespaces or processes
