"""Shared fixtures: one real IPython shell for the session and a fake mesh backend."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from wool_jupyter.cells import CellProgram
from wool_jupyter.config import Wool
from wool_jupyter.extension import load_ipython_extension, unload_ipython_extension
from wool_jupyter.magics import WoolMagics


class HtmlStatus:
    """A status object with a rich representation, like the real backend may return."""

    def _repr_html_(self) -> str:
        return "<b>status</b>"

    def __repr__(self) -> str:
        return "HtmlStatus()"


class FakeBackend:
    """Records every call; runs cells locally, as the runtime would remotely."""

    def __init__(self, shell: InteractiveShell, settings: Wool) -> None:
        self.shell = shell
        self.settings = settings
        self.calls: list[tuple[str, Any]] = []
        self.running: str | None = None
        self.status_value: object = "2 peers, 0 in flight"
        self.widget_value: object | None = None
        self.cell_loops: list[asyncio.AbstractEventLoop] = []
        self.closed = 0
        self.pool_value: object = object()

    def describe(self) -> str | None:
        return self.running

    @property
    def pool(self) -> object | None:
        return self.pool_value if self.running else None

    def start(self, workers: int, tags: list[str]) -> str:
        self.calls.append(("start", (workers, tags)))
        self.running = f"{workers} local workers"
        return f"Started {workers} workers."

    def connect(self, remote: object) -> str:
        self.calls.append(("connect", remote))
        self.running = f"remote mesh {remote}"
        return "Connecting."

    async def scale(self, workers: int) -> str:
        self.calls.append(("scale", workers))
        await asyncio.sleep(0)
        return f"Scaled to {workers}."

    async def disconnect(self) -> str:
        self.calls.append(("disconnect", None))
        await asyncio.sleep(0)
        self.running = None
        return "Disconnected."

    async def stop(self) -> str:
        self.calls.append(("stop", None))
        await asyncio.sleep(0)
        self.running = None
        return "Stopped."

    def status(self) -> object:
        self.calls.append(("status", None))
        return self.status_value

    def widget(self) -> object | None:
        self.calls.append(("widget", None))
        return self.widget_value

    async def run_cell(
        self,
        program: CellProgram,
        *,
        all_peers: bool,
        tags: list[str],
        timeout: float | None,
    ) -> object:
        self.calls.append(("run_cell", (program, all_peers, tags, timeout)))
        self.cell_loops.append(asyncio.get_running_loop())
        try:
            result = await asyncio.wait_for(program.function(**program.arguments), 10)
        except asyncio.CancelledError:
            self.calls.append(("run_cell cancelled", None))
            raise
        if all_peers:
            return {"peer-0": result, "peer-1": result}
        return result

    def close(self) -> str:
        self.closed += 1
        was, self.running = self.running, None
        return "Stopped now." if was else "Wool is not running; start it with %wool start."

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture(scope="session")
def _session_shell(tmp_path_factory: pytest.TempPathFactory) -> InteractiveShell:
    directory: Path = tmp_path_factory.mktemp("ipython")
    os.environ["IPYTHONDIR"] = str(directory)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    return InteractiveShell.instance(config=config)


@pytest.fixture
def shell(_session_shell: InteractiveShell) -> Iterator[InteractiveShell]:
    """The session's shell, with a clean namespace and without the extension afterwards."""
    yield _session_shell
    unload_ipython_extension(_session_shell)
    _session_shell.reset(new_session=False)
    _session_shell.autoawait = True


@pytest.fixture
def loaded(shell: InteractiveShell) -> WoolMagics:
    """The extension loaded on ``shell`` with :class:`FakeBackend`; returns the magics."""
    load_ipython_extension(shell, backend_factory=FakeBackend)
    magic = shell.find_line_magic("wool")
    assert magic is not None
    magics = magic.__self__
    assert isinstance(magics, WoolMagics)
    return magics


def fake(magics: WoolMagics) -> FakeBackend:
    backend = magics.backend
    assert isinstance(backend, FakeBackend)
    return backend
