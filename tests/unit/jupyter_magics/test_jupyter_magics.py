"""Argument handling and behaviour of %wool / %%wool, called synchronously."""

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from wool_jupyter.cells import CellProgram
from wool_jupyter.config import Wool
from wool_jupyter.extension import load_ipython_extension
from wool_jupyter.magics import NOT_CONNECTED, NOT_RUNNING, WoolMagics
from wool_jupyter.remote import RemoteMesh

from .conftest import FakeBackend, HtmlStatus, fake

SUBCOMMANDS = [
    "start", "stop", "restart", "status", "widget", "connect", "disconnect", "scale"
]  # fmt: skip


def out(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


class TestHelp:
    @pytest.mark.parametrize("flag", ["--help", "-h"])
    def test_line_magic_help(
        self, loaded: WoolMagics, shell: InteractiveShell, capsys, flag: str
    ) -> None:
        assert shell.run_line_magic("wool", flag) is None
        text = out(capsys)
        assert text.startswith("usage: %wool")
        for command in SUBCOMMANDS:
            assert command in text
        assert loaded.backend is None

    def test_bare_line_magic_prints_help(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "")
        assert out(capsys).startswith("usage: %wool")

    @pytest.mark.parametrize("command", SUBCOMMANDS)
    def test_each_subcommand_has_help(
        self, loaded: WoolMagics, shell: InteractiveShell, capsys, command: str
    ) -> None:
        assert shell.run_line_magic("wool", f"{command} --help") is None
        assert out(capsys).startswith(f"usage: %wool {command}")
        assert loaded.backend is None

    def test_cell_magic_help_does_not_run_the_cell(
        self, loaded: WoolMagics, shell: InteractiveShell, capsys
    ) -> None:
        assert shell.run_cell_magic("wool", "--help", "raise SystemExit") is None
        text = out(capsys)
        assert text.startswith("usage: %%wool")
        for option in ["--all", "--tag", "--timeout", "--output"]:
            assert option in text

    def test_docstrings_describe_usage(self, loaded: WoolMagics) -> None:
        assert "usage: %wool" in (loaded.wool_line.__doc__ or "")
        assert "usage: %%wool" in (loaded.wool_cell.__doc__ or "")


class TestUsageErrors:
    @pytest.mark.parametrize(
        "line",
        [
            "bogus",
            "--bogus",
            "start -n 0",
            "start -n two",
            "start extra",
            "stop now",
            "connect",
            "connect host-a:7700 --tls-ca",
            "scale",
            "scale 0",
            "scale two",
            "scale 2 3",
            "disconnect now",
            "start --tag 'unclosed",
        ],
    )
    def test_bad_line_arguments(self, loaded: WoolMagics, shell: InteractiveShell, line) -> None:
        with pytest.raises(UsageError):
            shell.run_line_magic("wool", line)
        assert loaded.backend is None

    @pytest.mark.parametrize(
        "line", ["--timeout 0", "--timeout soon", "-o 1abc", "-o class", "--peers", "stray"]
    )
    def test_bad_cell_arguments(self, loaded: WoolMagics, shell: InteractiveShell, line) -> None:
        shell.run_line_magic("wool", "start -n 1")
        with pytest.raises(UsageError):
            shell.run_cell_magic("wool", line, "1")
        assert "run_cell" not in fake(loaded).names()


class TestLifecycle:
    def test_start_passes_size_and_tags(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "start -n 4 --tag gpu --tag big fast")
        backend = fake(loaded)
        assert backend.calls[0] == ("start", (4, ["gpu", "big", "fast"]))
        assert "Started 4 workers." in out(capsys)
        assert backend.settings is loaded.settings
        assert backend.shell is shell

    def test_start_defaults_to_configured_tags(self, loaded: WoolMagics, shell) -> None:
        loaded.settings.tags = ["cfg"]
        loaded.settings.workers = 3
        shell.run_line_magic("wool", "start")
        assert fake(loaded).calls[0] == ("start", (3, ["cfg"]))

    def test_start_is_idempotent(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "start -n 2")
        backend = fake(loaded)
        out(capsys)
        shell.run_line_magic("wool", "start -n 5")
        assert backend.names().count("start") == 1
        text = out(capsys)
        assert "already running: 2 local workers" in text
        assert "%wool restart" in text

    def test_start_shows_the_widget_when_configured(self, shell, monkeypatch) -> None:
        class WithWidget(FakeBackend):
            def __init__(self, shell: InteractiveShell, settings: Wool) -> None:
                super().__init__(shell, settings)
                self.widget_value = widget

        widget = object()
        shown: list[object] = []
        monkeypatch.setattr("wool_jupyter.magics.display", shown.append)
        load_ipython_extension(shell, backend_factory=WithWidget)
        shell.run_line_magic("wool", "start -n 1")
        assert shown == [widget]

    def test_start_without_widget(self, loaded: WoolMagics, shell) -> None:
        loaded.settings.show_widget = False
        shell.run_line_magic("wool", "start -n 1")
        assert "widget" not in fake(loaded).names()

    def test_stop(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "stop")
        assert NOT_RUNNING in out(capsys)
        assert loaded.backend is None
        shell.run_line_magic("wool", "start -n 1")
        shell.run_line_magic("wool", "stop")
        assert "Stopped." in out(capsys)
        shell.run_line_magic("wool", "stop")
        assert NOT_RUNNING in out(capsys)
        assert fake(loaded).names().count("stop") == 1

    def test_restart_is_stop_then_start_with_the_last_size_and_tags(
        self, loaded: WoolMagics, shell, capsys
    ) -> None:
        shell.run_line_magic("wool", "restart")
        assert NOT_RUNNING in out(capsys)
        shell.run_line_magic("wool", "start -n 3 --tag gpu")
        out(capsys)
        shell.run_line_magic("wool", "restart")
        assert out(capsys) == "Stopped.\nStarted 3 workers.\n"
        lifecycle = [c for c in fake(loaded).calls if c[0] in ("start", "stop")]
        assert lifecycle[-2:] == [("stop", None), ("start", (3, ["gpu"]))]

    def test_start_again_after_stop(self, loaded: WoolMagics, shell) -> None:
        shell.run_line_magic("wool", "start -n 1")
        shell.run_line_magic("wool", "stop")
        shell.run_line_magic("wool", "start -n 2")
        assert [c for c in fake(loaded).calls if c[0] == "start"] == [
            ("start", (1, [])),
            ("start", (2, [])),
        ]

    def test_backend_errors_propagate(self, loaded: WoolMagics, shell) -> None:
        shell.run_line_magic("wool", "start -n 1")

        async def broken() -> str:
            raise RuntimeError("worker 3 died")

        fake(loaded).stop = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="worker 3 died"):
            shell.run_line_magic("wool", "stop")


class TestInspection:
    def test_status_before_start(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "status")
        assert NOT_RUNNING in out(capsys)
        assert loaded.backend is None

    def test_status_text(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "start -n 2")
        out(capsys)
        shell.run_line_magic("wool", "status")
        assert out(capsys) == "2 peers, 0 in flight\n"

    def test_status_rich_object_is_displayed(self, loaded: WoolMagics, shell, monkeypatch) -> None:
        shell.run_line_magic("wool", "start -n 2")
        shown: list[object] = []
        monkeypatch.setattr("wool_jupyter.magics.display", shown.append)
        status = HtmlStatus()
        fake(loaded).status_value = status
        shell.run_line_magic("wool", "status")
        assert shown == [status]

    def test_widget(self, loaded: WoolMagics, shell, capsys, monkeypatch) -> None:
        shell.run_line_magic("wool", "widget")
        assert NOT_RUNNING in out(capsys)
        loaded.settings.show_widget = False
        shell.run_line_magic("wool", "start -n 1")
        out(capsys)
        shell.run_line_magic("wool", "widget")
        assert "no live widget" in out(capsys)
        shown: list[object] = []
        monkeypatch.setattr("wool_jupyter.magics.display", shown.append)
        fake(loaded).widget_value = widget = object()
        shell.run_line_magic("wool", "widget")
        assert shown == [widget]

    def test_connect_parses_the_issue_s_command_line(
        self, loaded: WoolMagics, shell, capsys
    ) -> None:
        shell.run_line_magic(
            "wool",
            "connect host-a:7700 --tls-ca ca.pem --tls-cert client.pem --tls-key client.key "
            "--secret-file mesh.secret",
        )
        assert "Connecting." in out(capsys)
        (_, remote), *_ = [c for c in fake(loaded).calls if c[0] == "connect"]
        assert remote == RemoteMesh(
            ("host-a:7700",),
            ca="ca.pem",
            cert="client.pem",
            key="client.key",
            secret_file="mesh.secret",
        )
        shell.run_line_magic("wool", "connect host-b:7700")
        assert "already running" in out(capsys)
        assert fake(loaded).names().count("connect") == 1

    @pytest.mark.parametrize(
        ("line", "says"),
        [
            ("connect host-a", "is not host:port"),
            ("connect host-a:http", "is not host:port"),
            ("connect host-a:7700 --tls-ca ca.pem", "--tls-cert, --tls-key"),
            ("connect host-a:7700 --tls-cert c.pem --tls-key c.key", "missing --tls-ca"),
        ],
    )
    def test_connect_refuses_incomplete_arguments(
        self, loaded: WoolMagics, shell, line: str, says: str
    ) -> None:
        with pytest.raises(UsageError, match=says):
            shell.run_line_magic("wool", line)
        assert loaded.backend is None

    def test_disconnect_and_restart_after_connect(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "disconnect")
        assert out(capsys) == NOT_CONNECTED + "\n"
        loaded.settings.show_widget = False
        shell.run_line_magic("wool", "connect 127.0.0.1:7700")
        shell.run_line_magic("wool", "restart")
        assert fake(loaded).names() == ["connect", "stop", "connect"]
        shell.run_line_magic("wool", "disconnect")
        assert "Disconnected." in out(capsys)
        assert fake(loaded).running is None

    def test_scale(self, loaded: WoolMagics, shell, capsys) -> None:
        shell.run_line_magic("wool", "scale 3")
        assert out(capsys) == NOT_RUNNING + "\n"
        loaded.settings.show_widget = False
        shell.run_line_magic("wool", "start -n 1")
        shell.run_line_magic("wool", "scale 3")
        assert "Scaled to 3." in out(capsys)
        assert ("scale", 3) in fake(loaded).calls
        shell.run_line_magic("wool", "restart")
        assert fake(loaded).calls[-1] == ("start", (3, []))

    def test_scale_inside_a_block_with_a_running_loop(self, loaded: WoolMagics, shell) -> None:
        loaded.settings.show_widget = False
        shell.run_line_magic("wool", "start -n 1")
        result = shell.run_cell(
            "import asyncio\n"
            "async def f():\n"
            "    get_ipython().run_line_magic('wool', 'scale 2')\n"
            "await f()\n"
        )
        result.raise_error()
        assert ("scale", 2) in fake(loaded).calls


class TestCellMagic:
    def test_not_running(self, loaded: WoolMagics, shell) -> None:
        with pytest.raises(UsageError, match="not running"):
            shell.run_cell_magic("wool", "", "1 + 1")

    def test_result_and_options(self, loaded: WoolMagics, shell) -> None:
        shell.run_line_magic("wool", "start -n 2")
        shell.user_ns["base"] = 40
        result = shell.run_cell_magic("wool", "--tag gpu --timeout 2.5 -o answer", "base + 2")
        assert result == 42
        assert shell.user_ns["answer"] == 42
        program, all_peers, tags, timeout = fake(loaded).calls[-1][1]
        assert isinstance(program, CellProgram)
        assert (all_peers, tags, timeout) == (False, ["gpu"], 2.5)
        assert program.arguments == {"base": 40}

    def test_all_peers(self, loaded: WoolMagics, shell) -> None:
        shell.run_line_magic("wool", "start -n 2")
        assert shell.run_cell_magic("wool", "--all", "'pong'") == {
            "peer-0": "pong",
            "peer-1": "pong",
        }
        assert fake(loaded).calls[-1][1][1:] == (True, [], None)

    def test_ipython_namespace_entries_are_not_shipped(self, loaded: WoolMagics, shell) -> None:
        shell.run_line_magic("wool", "start -n 1")
        shell.user_ns["data"] = [1, 2]
        with pytest.raises(NameError, match="'In'"):
            shell.run_cell_magic("wool", "", "f = open\nlen(data), In, exit, get_ipython")
        program = fake(loaded).calls[-1][1][0]
        assert program.arguments == {"data": [1, 2]}
        assert "In" in program.missing

    def test_a_user_rebinding_of_an_ipython_name_is_shipped(self, loaded: WoolMagics, shell):
        shell.run_line_magic("wool", "start -n 1")
        shell.user_ns["open"] = "mine"
        assert shell.run_cell_magic("wool", "", "open") == "mine"

    def test_tracebacks_use_the_cell_cache(self, loaded: WoolMagics, shell) -> None:
        import linecache

        shell.run_line_magic("wool", "start -n 1")
        with pytest.raises(ZeroDivisionError):
            shell.run_cell_magic("wool", "--all", "x = 1\n1 / 0\n")
        program = fake(loaded).calls[-1][1][0]
        lines = linecache.getlines(program.filename)
        assert lines == ["%%wool --all\n", "x = 1\n", "1 / 0\n"]
        assert shell.compile.format_code_name(program.filename)[0] == "Cell"
