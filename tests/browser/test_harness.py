"""Proves the browser harness with plain ipywidgets, including updates from a thread."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import lab
import nbformat
import pytest

if TYPE_CHECKING:
    from conftest import JupyterLab
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SLIDER_CELL = """\
import ipywidgets as widgets

slider = widgets.IntSlider(value=7, description="harness")
slider
"""

# The thread stops by itself after at most 5 minutes, or when `stop` is set.
COUNTER_CELL = """\
import threading

counter = widgets.HTML(value="<b>count: 0</b>")
stop = threading.Event()


def tick():
    for i in range(1, 1501):
        if stop.wait(0.2):
            return
        counter.value = f"<b>count: {i}</b>"


threading.Thread(target=tick, name="counter", daemon=True).start()
counter
"""

SLIDER = ".jp-OutputArea-output .widget-slider"
COUNTER = ".jp-OutputArea-output .widget-html-content"


def _write_notebook(path: str) -> None:
    """Write the two-cell widget notebook with nbformat."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(SLIDER_CELL), nbformat.v4.new_code_cell(COUNTER_CELL)]
    nbformat.write(nb, path)


def _count(text: str) -> int | None:
    """The number in 'count: N', or None."""
    match = re.search(r"count: (\d+)", text)
    return int(match.group(1)) if match else None


def test_thread_updated_widgets_render_in_jupyterlab(
    browser_page: Page, jupyter_lab: JupyterLab
) -> None:
    """IntSlider(7) renders, and an HTML widget set from a thread keeps changing in the DOM."""
    page = browser_page
    _write_notebook(str(jupyter_lab.root_dir / "harness.ipynb"))

    t0 = time.monotonic()
    lab.open_notebook(page, jupyter_lab, "harness.ipynb")
    t_open = time.monotonic()
    lab.run_all_cells(page)
    t_run = time.monotonic()

    readout = lab.wait_for_text(page, f"{SLIDER} .widget-readout", lambda t: t.strip() != "")
    assert readout.strip() == "7"
    handle = page.locator(f"{SLIDER} .noUi-handle").first
    assert float(handle.get_attribute("aria-valuenow") or "nan") == 7.0
    assert page.locator(SLIDER).get_by_text("harness").count() == 1

    first = _count(lab.wait_for_text(page, COUNTER, lambda t: (_count(t) or 0) > 0))
    assert first is not None
    second = _count(lab.wait_for_text(page, COUNTER, lambda t: (_count(t) or 0) > first + 2))
    assert second is not None and second > first
    t_widgets = time.monotonic()

    lab.screenshot(page, "harness")
    print(
        f"open+idle {t_open - t0:.2f}s, run-all {t_run - t_open:.2f}s, "
        f"widgets {t_widgets - t_run:.2f}s, counter {first}->{second}"
    )
