"""Tracebacks trimmed to the frames a notebook user wrote.

A routine's error travels through wool's dispatch code, and a cancelled cell
stops inside asyncio; those frames say nothing about the user's code and
push the interesting lines off screen. These helpers rebuild a traceback
without them. Frames are matched by the directory of their file.
"""

import asyncio
import os
from collections.abc import Iterator
from types import ModuleType, TracebackType

import wool
import wool_jupyter

__all__ = ["MACHINERY", "RUNTIME", "frames_until", "frames_without"]


def _directory(module: ModuleType) -> str:
    return os.path.dirname(os.path.abspath(module.__file__ or "")) + os.sep


RUNTIME: tuple[str, ...] = (_directory(wool),)
"""wool's own package: dispatch, codec and connection frames."""
MACHINERY: tuple[str, ...] = (_directory(asyncio), _directory(wool), _directory(wool_jupyter))
"""Everything between a notebook's ``await`` and the thing it awaits."""


def _entries(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _chain(entries: list[TracebackType]) -> TracebackType | None:
    head: TracebackType | None = None
    for entry in reversed(entries):
        head = TracebackType(head, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return head


def _inside(entry: TracebackType, directories: tuple[str, ...]) -> bool:
    return entry.tb_frame.f_code.co_filename.startswith(directories)


def frames_until(tb: TracebackType | None, directories: tuple[str, ...]) -> TracebackType | None:
    """``tb`` cut before its first frame from a file under ``directories``."""
    kept: list[TracebackType] = []
    for entry in _entries(tb):
        if _inside(entry, directories):
            break
        kept.append(entry)
    return _chain(kept)


def frames_without(tb: TracebackType | None, directories: tuple[str, ...]) -> TracebackType | None:
    """``tb`` without the frames from files under ``directories``; the rest keep their order."""
    return _chain([entry for entry in _entries(tb) if not _inside(entry, directories)])
