"""``%wool`` and ``%%wool``.

The magics parse arguments, keep the user-facing rules (idempotent start, what
to say when nothing is running) and delegate everything else to a
:class:`~wool_jupyter.backend.WoolBackend`, created by the injected factory on
the first ``%wool start``.

Every ``%wool`` subcommand works wherever a line magic can stand: at the top
of a cell, among other code, inside an ``if``, through
``get_ipython().run_line_magic``, in the same cell as ``%load_ext wool``.
``start`` and ``connect`` never wait (the mesh comes up in the background
and routine calls made meanwhile wait for it); ``stop``, ``restart``,
``scale`` and ``disconnect`` are awaited on the cell's loop where a cell can
await them (:mod:`wool_jupyter.transform` rewrites top-level ``%wool`` lines
into awaits of :meth:`WoolMagics.wool_line_async`), and elsewhere run to the
end before the magic returns (bounded: workers starting, draining, exiting).

``%%wool`` cells are rewritten into awaits of :meth:`WoolMagics.wool_cell_async`.
Called any other way (``run_cell_magic``, ``%autoawait`` off) the cell runs on
``shell.loop_runner`` when no loop is running in this thread; when one is,
it is refused with a ``UsageError`` saying how to write the cell instead.
"""

import argparse
import asyncio
import concurrent.futures
import keyword
import shlex
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, NoReturn, TypeVar, cast

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from wool_jupyter.backend import NOT_RUNNING, BackendFactory, WoolBackend
from wool_jupyter.cells import compile_cell
from wool_jupyter.config import Wool
from wool_jupyter.imports import ImportMemory
from wool_jupyter.remote import RemoteMesh
from wool_jupyter.transform import MAGIC_NAME, cache_cell_source

__all__ = ["NOT_RUNNING", "WoolMagics"]

_T = TypeVar("_T")
_Magic = TypeVar("_Magic", bound=Callable[..., Any])

NOT_CONNECTED = "This kernel is not connected to a remote mesh."
_WAITING_COMMANDS = frozenset({"stop", "restart", "scale", "disconnect"})


class _HelpShown(Exception):
    """argparse printed help (or usage) and wants to stop."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as ``UsageError`` and never exits the process."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, end="", file=sys.stderr)
        raise _HelpShown


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _identifier(text: str) -> str:
    if not text.isidentifier() or keyword.iskeyword(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid variable name")
    return text


def _add_tag_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--tag",
        dest="tags",
        metavar="TAG",
        action="extend",
        nargs="+",
        default=None,
        help=help,
    )


def build_line_parser() -> _Parser:
    """The parser for ``%wool``; ``--help`` works on it and on every subcommand."""
    parser = _Parser(
        prog=f"%{MAGIC_NAME}",
        description="Run and inspect a Wool mesh from IPython or Jupyter.",
        epilog=f"Run a cell on the mesh with %%{MAGIC_NAME} (see %%{MAGIC_NAME} --help).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    start = commands.add_parser(
        "start",
        help="start a mesh of local workers in the background",
        description=(
            "Start a mesh of worker processes on this machine and show the live widget. "
            "Does nothing but report when a mesh is already running."
        ),
    )
    start.add_argument(
        "-n",
        "--workers",
        type=_positive_int,
        metavar="N",
        default=None,
        help="number of workers (default: Wool.workers, or one per CPU)",
    )
    _add_tag_option(start, "tag every worker with TAG (repeatable; default: Wool.tags)")

    scale = commands.add_parser(
        "scale",
        help="grow or shrink the local workers while they run",
        description=(
            "Add or remove local workers while the mesh runs; calls in flight go on. "
            "Removed workers get no new calls and finish what they run (up to "
            "Wool.start_timeout seconds) before they stop; a call still running on one "
            "then fails with wool.WorkerLost."
        ),
    )
    scale.add_argument("workers", type=_positive_int, metavar="N", help="workers to run")
    commands.add_parser(
        "stop",
        help="stop the mesh",
        description=(
            "Stop every worker this kernel started (or leave the remote mesh %wool connect "
            "joined, whose workers keep running)."
        ),
    )
    commands.add_parser(
        "restart",
        help="stop the mesh and start it again",
        description=(
            "Stop the mesh and start it again with the same workers and tags "
            "(or connect again with the same arguments)."
        ),
    )
    commands.add_parser(
        "status",
        help="show peers, hosts, how each was found, work in flight, totals, joins and leaves",
        description=(
            "Show peers (host, how each was found, address, pid, tags), work in flight, "
            "totals, and the peers that joined and left recently."
        ),
    )
    commands.add_parser(
        "widget",
        help="display the live mesh widget again",
        description="Display the live mesh widget in this cell's output.",
    )
    connect = commands.add_parser(
        "connect",
        help="join a mesh of workers running on other hosts",
        description=(
            "Make this kernel's mesh the one the workers at ADDRESS belong to (started with "
            "`wool worker`); the rest of the mesh is learnt from them. Returns at once; "
            "routine calls wait until the mesh is reached. Stop local workers first."
        ),
        epilog=(
            "example: %wool connect host-a:7700 --tls-ca ca.pem --tls-cert client.pem "
            "--tls-key client.key --secret-file mesh.secret"
        ),
    )
    connect.add_argument(
        "addresses", nargs="+", metavar="ADDRESS", help="host:port of a worker of the mesh"
    )
    connect.add_argument("--tls-ca", metavar="PATH", help="CA certificate of the mesh (PEM)")
    connect.add_argument("--tls-cert", metavar="PATH", help="this client's certificate (PEM)")
    connect.add_argument("--tls-key", metavar="PATH", help="this client's private key (PEM)")
    connect.add_argument("--secret-file", metavar="PATH", help="file holding the mesh secret")
    commands.add_parser(
        "disconnect",
        help="leave the remote mesh (its workers keep running)",
        description="Leave the remote mesh %wool connect joined; its workers keep running.",
    )
    return parser


def build_cell_parser() -> _Parser:
    """The parser for the ``%%wool`` line."""
    parser = _Parser(
        prog=f"%%{MAGIC_NAME}",
        description=(
            "Run this cell on the mesh. Top-level await works; the value of the last "
            "expression is the cell's result. Names the cell reads from the notebook are "
            "sent with it, and modules imported by earlier %%wool cells are imported "
            "again where it runs. Interrupting the kernel cancels it on the workers."
        ),
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help=(
            "run once on every peer; the result is a dict keyed by worker id, and each "
            "printed line is prefixed with [id]"
        ),
    )
    _add_tag_option(parser, "use only peers tagged TAG (repeatable)")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        default=None,
        help="give up after S seconds",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=_identifier,
        metavar="NAME",
        default=None,
        help="also store the result in the notebook variable NAME",
    )
    return parser


class _NotebookNames(Mapping[str, object]):
    """The user namespace minus the entries IPython itself put there (``open``, ``In``, ...)."""

    def __init__(self, shell: InteractiveShell) -> None:
        self._names: dict[str, Any] = shell.user_ns
        self._hidden: dict[str, Any] = shell.user_ns_hidden

    def __getitem__(self, name: str) -> object:
        value = self._names[name]
        if name in self._hidden and self._hidden[name] is value:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name in list(self._names) if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _magic(kind: Callable[[str], Any], name: str) -> Callable[[_Magic], _Magic]:
    """IPython's ``line_magic``/``cell_magic`` with the type they have when given a name."""
    return cast(Callable[[_Magic], _Magic], kind(name))


def _show(value: object) -> None:
    if isinstance(value, str):
        if value:
            print(value)
    elif value is not None:
        display(value)


@magics_class
class WoolMagics(Magics):
    """``%wool`` (line) and ``%%wool`` (cell); see the module docstring for how they run."""

    def __init__(
        self,
        shell: InteractiveShell,
        *,
        settings: Wool,
        backend_factory: BackendFactory,
    ) -> None:
        super().__init__(shell=shell)
        self.settings = settings
        self._factory = backend_factory
        self._backend: WoolBackend | None = None
        self._last_start: tuple[int, list[str]] = (1, [])
        self._last_remote: RemoteMesh | None = None
        self._line_parser = build_line_parser()
        self._cell_parser = build_cell_parser()
        self.imports = ImportMemory()
        """Top-level imports of the ``%%wool`` cells run so far (:mod:`wool_jupyter.imports`)."""

    @property
    def _ipython(self) -> InteractiveShell:
        shell = self.shell
        if shell is None:
            raise RuntimeError("the wool magics are not attached to a shell")
        return shell

    @property
    def backend(self) -> WoolBackend | None:
        """The backend, once the first ``%wool start`` has made it."""
        return self._backend

    def close(self) -> None:
        """Stop the mesh without a loop (extension unload, interpreter exit)."""
        if self._backend is not None:
            self._backend.close()

    @_magic(line_magic, MAGIC_NAME)
    def wool_line(self, line: str) -> None:
        __tracebackhide__ = True
        args = self._parse(self._line_parser, line)
        if args is None:
            return
        if args.command not in _WAITING_COMMANDS:
            self._immediate_command(args)
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._ipython.loop_runner(self._waiting_command(args))
            return
        # A loop runs this cell but this call cannot await it: stop without awaiting.
        self._stop_now(args)

    @_magic(cell_magic, MAGIC_NAME)
    def wool_cell(self, line: str, cell: str) -> object:
        __tracebackhide__ = True
        args = self._parse(self._cell_parser, line)
        if args is None:
            return None
        return self._block_on(self._run_cell(args, line, cell), f"%%{MAGIC_NAME}")

    async def wool_line_async(self, line: str) -> None:
        """``%wool LINE`` for callers that can await (rewritten top-level lines)."""
        __tracebackhide__ = True
        args = self._parse(self._line_parser, line)
        if args is None:
            return
        if args.command in _WAITING_COMMANDS:
            await self._waiting_command(args)
        else:
            self._immediate_command(args)

    async def wool_cell_async(self, line: str, cell: str) -> object:
        """``%%wool LINE`` with body ``cell``; resolves to the cell's result."""
        __tracebackhide__ = True
        args = self._parse(self._cell_parser, line)
        if args is None:
            return None
        return await self._run_cell(args, line, cell)

    def _parse(self, parser: _Parser, line: str) -> argparse.Namespace | None:
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise UsageError(f"{parser.prog}: cannot split arguments: {error}") from None
        try:
            return parser.parse_args(words)
        except _HelpShown:
            return None

    def _block_on(self, work: Coroutine[Any, Any, _T], what: str) -> _T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._ipython.loop_runner(work)
        work.close()
        raise UsageError(
            f"{what} has to wait on the event loop that is running this cell, which a "
            f"magic inside other code cannot do. Start the cell with {what} "
            "(its first line) and run it again."
        )

    def _immediate_command(self, args: argparse.Namespace) -> None:
        match args.command:
            case None:
                self._line_parser.print_help()
            case "start":
                self._start(args)
            case "status":
                _show(self._backend.status() if self._backend is not None else NOT_RUNNING)
            case "widget":
                self._show_widget(quiet=False)
            case "connect":
                self._connect(args)
            case other:
                raise AssertionError(f"unhandled subcommand {other!r}")

    def _start(self, args: argparse.Namespace) -> None:
        running = self._backend.describe() if self._backend is not None else None
        if running is not None:
            print(
                f"Wool is already running: {running}\n"
                f"Use %{MAGIC_NAME} restart to start it afresh, or "
                f"%{MAGIC_NAME} stop first to change its size or tags."
            )
            return
        workers = args.workers or self.settings.effective_workers()
        tags = list(args.tags if args.tags is not None else self.settings.tags)
        self._begin(workers, tags)

    def _begin(self, workers: int, tags: list[str]) -> None:
        backend = self._ensure_backend()
        self._last_start = (workers, list(tags))
        self._last_remote = None
        _show(backend.start(workers, tags))
        if self.settings.show_widget:
            self._show_widget(quiet=True)

    def _connect(self, args: argparse.Namespace) -> None:
        running = self._backend.describe() if self._backend is not None else None
        if running is not None:
            print(
                f"Wool is already running: {running}\n"
                f"Use %{MAGIC_NAME} stop (or %{MAGIC_NAME} disconnect) first, then "
                f"%{MAGIC_NAME} connect."
            )
            return
        try:
            remote = RemoteMesh(
                tuple(args.addresses),
                ca=args.tls_ca,
                cert=args.tls_cert,
                key=args.tls_key,
                secret_file=args.secret_file,
            )
        except ValueError as error:
            raise UsageError(f"%{MAGIC_NAME} connect: {error}") from None
        self._begin_remote(remote)

    def _begin_remote(self, remote: RemoteMesh) -> None:
        backend = self._ensure_backend()
        _show(backend.connect(remote))
        self._last_remote = remote
        if self.settings.show_widget:
            self._show_widget(quiet=True)

    def _relaunch(self) -> None:
        if self._last_remote is not None:
            self._begin_remote(self._last_remote)
        else:
            self._begin(*self._last_start)

    async def _waiting_command(self, args: argparse.Namespace) -> None:
        backend = self._backend
        if args.command == "disconnect" and (backend is None or backend.describe() is None):
            print(NOT_CONNECTED)
            return
        if backend is None or backend.describe() is None:
            print(NOT_RUNNING)
            return
        match args.command:
            case "scale":
                _show(await backend.scale(args.workers))
                self._last_start = (args.workers, self._last_start[1])
            case "disconnect":
                _show(await backend.disconnect())
            case _:
                _show(await backend.stop())
                if args.command == "restart":
                    self._relaunch()

    def _stop_now(self, args: argparse.Namespace) -> None:
        """A waiting command where a loop runs but this call cannot await it."""
        if args.command in ("scale", "disconnect"):
            _run_elsewhere(self._waiting_command(args))
            return
        backend = self._backend
        if backend is None or backend.describe() is None:
            print(NOT_RUNNING)
            return
        _show(backend.close())
        if args.command == "restart":
            self._relaunch()

    async def _run_cell(self, args: argparse.Namespace, line: str, cell: str) -> object:
        __tracebackhide__ = True
        backend = self._backend
        if backend is None or backend.describe() is None:
            raise UsageError(NOT_RUNNING)
        shell = self._ipython
        filename = cache_cell_source(shell, line, cell)
        program = compile_cell(
            cell,
            _NotebookNames(shell),
            filename=filename,
            first_line=2,
            imports=self.imports,
        )
        self.imports.remember(program.imports)
        result = await backend.run_cell(
            program,
            all_peers=args.all,
            tags=list(args.tags or ()),
            timeout=args.timeout,
        )
        if args.output is not None:
            shell.user_ns[args.output] = result
        return result

    def _ensure_backend(self) -> WoolBackend:
        if self._backend is None:
            self._backend = self._factory(self._ipython, self.settings)
        return self._backend

    def _show_widget(self, *, quiet: bool) -> None:
        widget = self._backend.widget() if self._backend is not None else None
        if widget is not None:
            display(widget)
        elif not quiet:
            print(NOT_RUNNING if self._backend is None else "There is no live widget to show.")


def _run_elsewhere(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to the end on a loop of its own in another thread (the caller's loop is busy).

    Everything it awaits is bounded (workers starting, draining, exiting).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wool-magic") as runner:
        runner.submit(asyncio.run, work).result()


WoolMagics.wool_line.__doc__ = build_line_parser().format_help()
WoolMagics.wool_cell.__doc__ = build_cell_parser().format_help()
