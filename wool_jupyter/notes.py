"""Exception notes in every traceback IPython draws, whatever its version.

Wool says where a remote error came from with ``exc.add_note("[wool] raised
remotely on ...")``; the fan-out of ``%%wool --all`` notes which other peers
failed. IPython before 8.15 or so leaves ``__notes__`` out of its default
(``Context``) and ``Verbose`` tracebacks, so on the IPython of many base
images that line, the only one naming the worker, never shows. While
installed, :class:`NotesInTracebacks` wraps the shell's traceback formatter
and appends each note of the exception shown that the formatter left out.
IPython versions that already print notes get nothing twice; the exception
itself (type, args, notes) is never changed.
"""

import inspect
import re
from collections.abc import Callable
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

__all__ = ["NotesInTracebacks", "missing_notes"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def missing_notes(value: object, lines: list[str]) -> list[str]:
    """The notes of ``value`` that do not appear in the traceback ``lines``, in order."""
    notes = getattr(value, "__notes__", None)
    if not isinstance(notes, list | tuple) or not notes:
        return []
    shown = _ANSI.sub("", "\n".join(lines))
    return [note for note in notes if isinstance(note, str) and note not in shown]


class NotesInTracebacks:
    """Wraps ``shell.InteractiveTB.structured_traceback`` on one shell; reversible."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell
        self._formatter: Any = None
        self._original: Callable[..., list[str]] | None = None

    def install(self) -> None:
        formatter = self.shell.InteractiveTB
        if self._original is not None or formatter is None:
            return
        original: Callable[..., list[str]] = formatter.structured_traceback
        names = list(inspect.signature(original).parameters)
        value_name = names[1] if len(names) > 1 else None

        def structured_traceback(*args: Any, **kwargs: Any) -> list[str]:
            lines = original(*args, **kwargs)
            try:
                value = args[1] if len(args) > 1 else kwargs.get(value_name or "")
                extra = missing_notes(value, lines)
            except Exception:  # showing the error matters more than its notes
                return lines
            return [*lines, *extra] if extra else lines

        setattr(formatter, "structured_traceback", structured_traceback)  # noqa: B010
        self._formatter, self._original = formatter, original

    def uninstall(self) -> None:
        formatter, self._formatter = self._formatter, None
        original, self._original = self._original, None
        # Only the entry we made: the class's own method shows through again.
        if original is not None and "structured_traceback" in vars(formatter or object()):
            del formatter.structured_traceback
