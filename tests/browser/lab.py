"""Helpers that drive JupyterLab 4 in a Playwright page the way a person would."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "artifacts" / "browser"

# True once the visible notebook has a kernel that is really idle. The toolbar's
# ExecutionIndicator alone is not enough: it already says data-status="idle" while the
# status bar still reads "No Kernel | Initializing", so three signals must agree.
_KERNEL_IDLE_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const indicator = panel.querySelector(
    '.jp-Notebook-ExecutionIndicator[data-status="idle"]');
  const name = panel.querySelector('.jp-Toolbar-kernelName');
  const status = document.querySelector(
    '#jp-main-statusbar .jp-StatusBar-TextItem[title^="Change kernel"]');
  return Boolean(indicator && name && status)
    && !/No Kernel/.test(name.textContent)
    && /\\| Idle$/.test(status.textContent.trim());
}"""

# True once no code cell of the visible notebook is queued or running ("[*]:").
_CELLS_DONE_JS = """(expected) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map(p => p.textContent.trim());
  return prompts.length === expected && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
}"""


class LabLike(Protocol):
    """What the helpers need from the ``jupyter_lab`` fixture's object."""

    url: str


def is_local_url(url: str) -> bool:
    """True for URLs that stay on this machine (loopback, data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob", "about", "chrome", "chrome-extension"}:
        return True
    host = parts.hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def open_notebook(page: Page, lab: LabLike, name: str, timeout: float = 60.0) -> None:
    """Open ``name`` (relative to the lab root) in a reset workspace; wait for idle kernel."""
    page.goto(f"{lab.url}/lab/tree/{quote(name)}?reset", timeout=timeout * 1000)
    page.wait_for_selector(
        f".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabLabel:text-is('{Path(name).name}')",
        timeout=timeout * 1000,
    )
    page.wait_for_function(_KERNEL_IDLE_JS, timeout=timeout * 1000, polling=100)


def run_all_cells(page: Page, timeout: float = 60.0) -> None:
    """Run > Run All Cells from the menu bar, then wait until every code cell has run."""
    expected = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").count()
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    page.wait_for_function(_CELLS_DONE_JS, arg=expected, timeout=timeout * 1000, polling=100)


# The input prompts of the visible notebook's code cells ("[ ]:", "[*]:", "[3]:").
_PROMPTS_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return [];
  return [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map(p => p.textContent.trim());
}"""

# True once code cell number `index` of the visible notebook has run ("[N]:").
_CELL_DONE_JS = """(index) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const cell = panel && panel.querySelectorAll('.jp-CodeCell')[index];
  const prompt = cell && cell.querySelector('.jp-InputArea-prompt');
  return Boolean(prompt) && /^\\[\\d+\\]:$/.test(prompt.textContent.trim());
}"""


def cell_prompts(page: Page) -> list[str]:
    """The input prompt of every code cell of the visible notebook, in order."""
    return list(page.evaluate(_PROMPTS_JS))


def run_cell(page: Page, index: int) -> None:
    """Select code cell ``index`` (0-based) by its prompt and run it with Ctrl+Enter.

    Returns once the keystroke is sent; the cell may still be queued or running.
    """
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Enter")


def wait_cell_done(page: Page, index: int, timeout: float = 60.0) -> None:
    """Wait until code cell ``index`` shows an execution count (it has finished)."""
    page.wait_for_function(_CELL_DONE_JS, arg=index, timeout=timeout * 1000, polling=100)


def cell_output_text(page: Page, index: int) -> str:
    """The text of code cell ``index``'s output area ("" when it has none)."""
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").nth(index)
    area = cell.locator(".jp-OutputArea")
    return area.inner_text() if area.count() else ""


def wait_for_text(
    page: Page,
    selector: str,
    predicate: Callable[[str], bool],
    timeout: float = 30.0,
    interval: float = 0.1,
) -> str:
    """Poll the first element matching ``selector`` until ``predicate(text)``; return text."""
    deadline = time.monotonic() + timeout
    last: str | None = None
    while True:
        loc = page.locator(selector).first
        if loc.count():
            last = loc.inner_text()
            if predicate(last):
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"text of {selector!r} never satisfied predicate in {timeout}s; last={last!r}"
            )
        page.wait_for_timeout(interval * 1000)


def screenshot(page: Page, name: str) -> Path:
    """Save a PNG of the page as ``artifacts/browser/NAME.png`` at the repo root."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def _api(lab: LabLike, method: str, path: str) -> Any:
    """Call the server's REST API and decode JSON (empty body -> None)."""
    req = urllib.request.Request(f"{lab.url}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def shutdown_kernels(lab: LabLike) -> None:
    """Delete every session and kernel the server runs (e.g. between tests)."""
    for session in _api(lab, "GET", "/api/sessions"):
        _api(lab, "DELETE", f"/api/sessions/{session['id']}")
    for kernel in _api(lab, "GET", "/api/kernels"):
        _api(lab, "DELETE", f"/api/kernels/{kernel['id']}")
