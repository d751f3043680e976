"""Fixtures for browser tests: a private JupyterLab server and a headless Chromium page.

JupyterLab runs on 127.0.0.1 with fresh config/runtime/data dirs and with every feature
that would reach the internet switched off. Chromium is Debian's (``/usr/bin/chromium``);
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import lab as lab_helpers  # tests/browser is on sys.path (pytest rootdir insertion)
import psutil
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 20.0
CHILD_STOP_TIMEOUT = 10.0

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Every host, IP literals included, fails to resolve, except our server's 127.0.0.1.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

# Lab flags that stop JupyterLab itself from reaching the internet.
OFFLINE_LAB_ARGS = [
    "--LabApp.news_url=None",  # no Atom news feed fetch
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",  # no PyPI version check
    "--LabApp.extension_manager=readonly",  # no PyPI extension listing
]

# The "get notified about Jupyter news?" toast is driven by this user setting, not by
# news_url; "false" suppresses the prompt (it would also cover part of screenshots).
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false"}\n',
}


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab server started by the ``jupyter_lab`` fixture."""

    url: str
    root_dir: Path
    port: int
    pid: int
    log_path: Path


def _missing(message: str) -> NoReturn:
    """Skip on a developer machine, but fail under CI (which must run these tests)."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status_ok(url: str) -> bool:
    """True when ``GET url/api/status`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/api/status", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop_process(proc: psutil.Process, timeout: float) -> None:
    """SIGTERM one process, wait up to ``timeout`` seconds, then SIGKILL it."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        try:
            proc.kill()
            proc.wait(5)
        except psutil.NoSuchProcess:
            pass


def _tail(path: Path, limit: int = 4000) -> str:
    """Last ``limit`` characters of a log file, for failure messages."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no log>"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the system Chromium; skip locally but fail under CI when it is missing."""
    for candidate in CHROMIUM_CANDIDATES:
        found = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if found and os.access(found, os.X_OK):
            return found
    _missing("Chromium not found (apt-get install chromium)")


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """Start a private, offline JupyterLab on a free port; stop it and its kernels after."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root_dir = base / "root"
    config_dir = base / "config"
    for sub in (root_dir, config_dir, base / "runtime", base / "data", base / "ipython"):
        sub.mkdir()
    for rel, content in USER_SETTINGS.items():
        target = config_dir / "lab" / "user-settings" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    env = dict(os.environ)
    # Only the per-user dirs are replaced; sys.prefix/share/jupyter (where pip puts the
    # ipywidgets lab extension and the python3 kernelspec) stays on the search path.
    env.update(
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_DATA_DIR=str(base / "data"),
        IPYTHONDIR=str(base / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = base / "jupyterlab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--allow-root",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # fail loudly instead of silently moving port
        "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=",
        # Lets tests call POST/DELETE REST endpoints without an _xsrf cookie; the
        # browser itself works either way.
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root_dir}",
        *OFFLINE_LAB_ARGS,
    ]
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            cmd,
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _status_ok(url):
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab not ready in {SERVER_START_TIMEOUT}s:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield JupyterLab(url=url, root_dir=root_dir, port=port, pid=server.pid, log_path=log_path)
    finally:
        try:
            _shutdown_server(server, log_path)
        finally:
            lab_helpers.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log_path, lab_helpers.ARTIFACTS_DIR / "jupyterlab.log")


def _shutdown_server(server: subprocess.Popen[bytes], log_path: Path) -> None:
    """Stop the server by PID, then any of its (recursive) children still alive."""
    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    for child in children:
        _stop_process(child, CHILD_STOP_TIMEOUT)
    left = [child.pid for child in children if child.is_running()]
    assert not left, f"processes left after stopping jupyter lab: {left}\n{_tail(log_path)}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item, so fixtures can see failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def browser_page(chromium_path: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A Playwright page (1100x750) in headless system Chromium; closed after the test.

    On failure a screenshot is saved as ``artifacts/browser/FAILED-<test>.png``.
    Any request the page makes outside 127.0.0.1 fails the test.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright not installed (pip install -e '.[browser]')")
    outside: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 750})
            page = context.new_page()
            page.on(
                "request",
                lambda req: None if lab_helpers.is_local_url(req.url) else outside.append(req.url),
            )
            page.on(
                "console",
                lambda msg: (
                    console.append(f"{msg.type}: {msg.text}")
                    if msg.type in {"error", "warning"}
                    else None
                ),
            )
            page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
            yield page
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                print("browser console:\n" + "\n".join(console[-50:]))
                with contextlib.suppress(Exception):  # a dead page must not mask the failure
                    lab_helpers.screenshot(page, f"FAILED-{request.node.name}")
            context.close()
        finally:
            browser.close()
    assert not outside, f"page made non-loopback requests: {outside}"
