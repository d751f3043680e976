"""The ``Wool`` configurable and ``%config``."""

import os

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets import TraitError
from traitlets.config import Config

from wool_jupyter.config import Wool
from wool_jupyter.extension import load_ipython_extension
from wool_jupyter.magics import WoolMagics

from .conftest import FakeBackend, fake

TRAITS = {
    "workers": 0,
    "tags": [],
    "show_widget": True,
    "refresh_interval": 0.5,
    "output_rate_limit": 200,
    "start_timeout": 30.0,
}


def test_defaults_and_help() -> None:
    settings = Wool()
    for name, default in TRAITS.items():
        assert getattr(settings, name) == default
        trait = settings.traits()[name]
        assert trait.metadata.get("config") is True
        assert trait.help, f"{name} has no help"


def test_values_come_from_config_objects() -> None:
    config = Config()
    config.Wool.workers = 8
    config.Wool.tags = ["gpu"]
    settings = Wool(config=config)
    assert (settings.workers, settings.tags) == (8, ["gpu"])


@pytest.mark.parametrize(
    ("name", "value"),
    [("workers", -1), ("refresh_interval", 0.0), ("output_rate_limit", -5), ("start_timeout", 0)],
)
def test_out_of_range_values_are_rejected(name: str, value: object) -> None:
    with pytest.raises(TraitError):
        setattr(Wool(), name, value)


def test_percent_config_sets_the_loaded_settings(
    loaded: WoolMagics, shell: InteractiveShell
) -> None:
    shell.run_line_magic("config", "Wool.workers = 8")
    shell.run_line_magic("config", "Wool.tags = ['a', 'b']")
    shell.run_line_magic("config", "Wool.show_widget = False")
    assert loaded.settings.workers == 8
    assert loaded.settings.tags == ["a", "b"]
    assert loaded.settings.show_widget is False
    shell.run_line_magic("wool", "start")
    assert fake(loaded).calls == [("start", (8, ["a", "b"]))]


def test_percent_config_lists_the_traits(
    loaded: WoolMagics, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_line_magic("config", "")
    assert "Wool" in capsys.readouterr().out
    shell.run_line_magic("config", "Wool")
    text = capsys.readouterr().out
    for name in TRAITS:
        assert f"Wool.{name}" in text


def test_shell_config_applies_when_loading(shell: InteractiveShell) -> None:
    shell.config.Wool.workers = 3
    try:
        load_ipython_extension(shell, backend_factory=FakeBackend)
        magics = shell.find_line_magic("wool").__self__
        assert magics.settings.workers == 3
    finally:
        del shell.config["Wool"]


def test_zero_workers_means_one_per_usable_cpu(loaded: WoolMagics, shell: InteractiveShell) -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert loaded.settings.effective_workers() == expected
    shell.run_line_magic("wool", "start")
    assert fake(loaded).calls[0] == ("start", (expected, []))
    assert Wool(workers=5).effective_workers() == 5
