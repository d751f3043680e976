"""The layout of a payload whose large buffers travel out of band, shared by sender and receiver.

``b"W"``, the buffer count and pickle length, a u64 per buffer (its length,
with ``BYTES`` or ``BYTEARRAY`` set when the buffer is the whole of such an
object), the pickle, then each buffer at an offset from the payload's start
that is a multiple of ``ALIGN``, zero padding between. ``codec`` writes and
reads the pickle; the chunk ``Assembler`` reads the head to receive each
buffer into memory of its own (``Received``), so a ``bytes`` value arrives
as the very object the receiver hands out, with no copy after the wire.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from wool.protocol.frames import Parts

MARK: Final = b"W"
"""A payload's first byte when it has buffers (a pickle of protocol 2 or more starts with 0x80)."""
_COUNTS: Final = struct.Struct(">IQ")
ALIGN: Final = 64
BYTES: Final = 1 << 63
"""Set in a buffer's length when the buffer is the whole of a ``bytes`` object."""
BYTEARRAY: Final = 1 << 62
"""Set in a buffer's length when the buffer is the whole of a ``bytearray``."""
_LENGTH: Final = BYTEARRAY - 1
_PAD: Final = bytes(ALIGN)


def aligned(offset: int) -> int:
    return (offset + ALIGN - 1) & -ALIGN


class Head(NamedTuple):
    """What the head says: the pickle's span, and each buffer's span and kind."""

    meta: tuple[int, int]
    spans: list[tuple[int, int]]
    kinds: list[type | None]
    """``bytes`` or ``bytearray`` for a buffer that was the whole of one, else None."""


def kind_of(view: memoryview) -> type | None:
    """``bytes`` or ``bytearray`` when ``view`` covers the whole of such an object, else None."""
    owner = view.obj
    if isinstance(owner, (bytes, bytearray)) and view.nbytes == len(owner):
        return type(owner)
    return None


def head_bytes(meta_size: int, views: list[memoryview]) -> bytes:
    head = MARK + _COUNTS.pack(len(views), meta_size)
    words = []
    for view in views:
        kind = kind_of(view)
        flag = BYTES if kind is bytes else BYTEARRAY if kind is bytearray else 0
        words.append(view.nbytes | flag)
    return head + struct.pack(f">{len(words)}Q", *words)


def padding(offset: int) -> bytes:
    """The zero bytes that take ``offset`` to the next multiple of ``ALIGN``."""
    return _PAD[: aligned(offset) - offset]


def read_head(data: bytes | bytearray | memoryview) -> Head | None:
    """The head at the start of ``data``, or None when ``data`` is too short to hold it all.

    Raises ValueError for a head that is not one (the caller checks ``MARK``).
    """
    if len(data) < 1 + _COUNTS.size:
        return None
    count, meta_size = _COUNTS.unpack_from(data, 1)
    offset = 1 + _COUNTS.size
    if len(data) < offset + 8 * count:
        return None
    words = struct.unpack_from(f">{count}Q", data, offset)
    offset += 8 * count
    meta = (offset, offset + meta_size)
    offset += meta_size
    spans: list[tuple[int, int]] = []
    kinds: list[type | None] = []
    for word in words:
        length = word & _LENGTH
        offset = aligned(offset)
        spans.append((offset, offset + length))
        kinds.append(bytes if word & BYTES else bytearray if word & BYTEARRAY else None)
        offset += length
    return Head(meta, spans, kinds)


def size_of(meta_size: int, lengths: list[int]) -> int:
    """Bytes of a payload with this pickle and these buffers, computed without building it."""
    if not lengths:
        return meta_size
    offset = 1 + _COUNTS.size + 8 * len(lengths) + meta_size
    for length in lengths:
        offset = aligned(offset) + length
    return offset


class Received(Parts):
    """A payload assembled from chunks with each buffer in memory of its own.

    ``front`` holds the head and the pickle; ``buffers`` are ``bytes`` where
    the sender's buffer was a whole ``bytes`` of 4 MiB or more (CPython: the
    value is then that object, not a copy) and writable ``bytearray``
    otherwise. ``bytes()``
    gives the payload exactly as it was sent.
    """

    __slots__ = ("buffers", "front", "head")

    def __init__(self, front: bytearray, head: Head, buffers: list[bytes | bytearray]) -> None:
        parts: list[bytes | memoryview] = [memoryview(front)]
        end = len(front)
        for (start, stop), buffer in zip(head.spans, buffers, strict=True):
            if start > end:
                parts.append(_PAD[: start - end])
            parts.append(memoryview(buffer))
            end = stop
        self.parts = parts
        self.size = end
        self.front = front
        self.head = head
        self.buffers = buffers
