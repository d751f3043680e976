"""Multi-host fixtures: three hosts in network namespaces, certificates, and a cleanup proof.

Every host, the client included, is a namespace on one bridge (``netns``);
this process never dials a test address itself. Tests need root: they skip
with the reason elsewhere, and fail in CI (``CI=true``), where they must run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import netns
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/multihost" in str(item.fspath):
            item.add_marker(pytest.mark.multihost)


def _require_namespaces() -> None:
    why = netns.can_run()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"multi-host tests must run in CI: {why}")
    pytest.skip(why)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[netns.Network]:
    """Three hosts (h1, h2: workers; h3: the client), deleted with every process they ran.

    Worker logs land in the test's ``tmp_path``, kept for a failure's diagnosis.
    """
    _require_namespaces()
    network = netns.Network(3, multicast=True, logs=tmp_path)
    try:
        yield network
    finally:
        left = network.close()
        stray = network.leftovers()
        assert not left, f"processes outlived the test (by PID): {left}"
        assert not stray, f"namespaces or links left behind: {stray}"


def _certs(directory: Path) -> Path:
    pytest.importorskip("cryptography", reason="needs the cryptography package (tls extra)")
    from wool import certs

    certs.init(directory)
    return directory


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mesh's CA, worker and client certificates and secret, from ``wool certs init``."""
    return _certs(tmp_path_factory.mktemp("mesh"))


@pytest.fixture(scope="session")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA: its certificates must be refused by the first mesh."""
    return _certs(tmp_path_factory.mktemp("other"))
