"""Typed frames and the one converter between them and bytes on the wire.

Dispatch-stream messages use a fixed binary layout (``encode``/``decode``):
a version byte, then frames, each a struct of fixed fields and lengths
followed by its variable fields. Measured, it made a no-op round trip 11%
faster than a protobuf envelope, and payloads are read as views, never
copied. The control plane (statistics, membership gossip) stays protobuf
(``wire.proto``); nothing else in Wool imports ``wire_pb2``, and this
module only when a control message is first made or read, so a worker
starts without loading protobuf. Frames are plain slotted objects once
decoded.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Final, TypeAlias

from google.protobuf.message import DecodeError

from wool.errors import ProtocolError, SerializationError

if TYPE_CHECKING:
    from wool.protocol import wire_pb2

NEXT: Final = 0
SEND: Final = 1
THROW: Final = 2
CLOSE: Final = 3

RETURN: Final = 0
YIELD: Final = 1
RAISE: Final = 2
STOP: Final = 3
CANCELLED: Final = 4

STDOUT: Final = 0
STDERR: Final = 1


class Parts:
    """A payload kept as buffers written back to back, never joined before the wire.

    ``codec`` makes one for a value with large buffers (numpy arrays,
    ``bytes``) left out of band; the writer copies the parts straight into
    the outgoing message, or slices them into chunks. Every part is
    ``bytes`` or a one-dimensional byte ``memoryview``, so ``len`` is bytes.
    """

    __slots__ = ("parts", "size")

    def __init__(self, parts: list[bytes | memoryview]) -> None:
        self.parts = parts
        self.size = sum(len(part) for part in parts)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


Payload: TypeAlias = bytes | memoryview | bytearray | Parts
"""A pickled value: bytes or ``Parts`` when made here; when received, a view into the
message, or reassembled from chunks: a bytearray, or ``buffers.Received`` (a ``Parts``
whose out-of-band buffers each have memory of their own)."""


@dataclass(slots=True)
class Dispatch:
    call: int
    module: str
    qualname: str
    digest: bytes
    code: bytes
    uid: str
    args: Payload
    generator: bool = False
    timeout: float = 0.0
    parent: str = ""
    capture_output: bool = False
    globals: bytes = b""


@dataclass(slots=True)
class Resume:
    call: int
    kind: int
    value: Payload = b""


@dataclass(slots=True)
class Cancel:
    call: int


@dataclass(slots=True)
class Outcome:
    call: int
    kind: int
    value: Payload = b""
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""


@dataclass(slots=True)
class NeedCode:
    call: int
    digest: bytes


@dataclass(slots=True)
class Output:
    call: int
    stream: int
    text: str


@dataclass(slots=True)
class Value:
    """A routine's global (or its manifest), named by digest; a worker caches it."""

    call: int
    digest: bytes
    data: Payload


@dataclass(slots=True)
class Context:
    """``wool.ContextVar`` values for the Dispatch, Resume or Outcome of ``call`` that follows.

    Opaque here (``wool.contextvar`` makes and reads ``values``); sent only
    when the sender has values (or changes) to carry.
    """

    call: int
    values: Payload
    then: Dispatch | Resume | Outcome | None = None
    """Sending only: the frame these values go with, written right after them in the
    same message (a writer may otherwise start a message between the two). None
    once decoded: the receiver gets that frame next, on its own."""


@dataclass(slots=True)
class Chunk:
    """A slice of the next large payload of ``call`` (see ``wool.protocol.chunks``).

    ``total`` is the whole payload's size, repeated in every chunk so the
    first one tells the receiver how much to allocate. The payload-carrying
    frame that follows the last chunk has that field empty.
    """

    call: int
    total: int
    data: Payload


@dataclass(slots=True)
class Credit:
    """``size`` more bytes of Chunk data were taken in: the sender may send that many more.

    Chunks in flight are bounded (``chunks.window()``), so a small frame
    never waits behind more than a few in gRPC's and the kernel's buffers.
    ``call`` is always 0 (a credit belongs to the stream, not a call).
    """

    call: int
    size: int


Frame: TypeAlias = (
    Dispatch | Resume | Cancel | Outcome | NeedCode | Output | Value | Context | Chunk | Credit
)


VERSION: Final = 2
"""First byte of every dispatch-stream message; a peer speaking another version is refused.

2: Credit frames, a chunk window, and buffer kinds in the out-of-band head."""

LIMIT: int = int(os.environ.get("WOOL_MESSAGE_LIMIT") or (1 << 32) - 1)
"""The most bytes one dispatch-stream message, and so any payload in it, may carry.

Lengths on the wire are u32, here and in gRPC's own message prefix.
``codec`` refuses a larger value before anything is written; ``encode``
refuses a larger message. Tests lower it with ``WOOL_MESSAGE_LIMIT`` (read
at import, and inherited by workers) or by setting this attribute.
"""

CHUNK: int = max(int(os.environ.get("WOOL_CHUNK_SIZE") or 512 << 10), 4096)
"""The size of a Chunk frame's slice; payloads over two and a half of it travel as chunks.

Also about the most chunk bytes one message carries (a last chunk takes a
remainder under a quarter of this with it), so a small frame never waits
behind much more than this. ``WOOL_CHUNK_SIZE`` sets it (read
at import, and inherited by workers); tests may set this attribute.
"""

WINDOW: int = int(os.environ.get("WOOL_CHUNK_WINDOW") or 0)
"""Chunk bytes a stream may have sent and not yet had credited; 0: ``chunks.window`` decides.

``WOOL_CHUNK_WINDOW`` sets it (read at import, inherited by workers): a
link with a long round trip (a WAN) wants more, as the window over the
round trip bounds one stream's transfer rate. See ``chunks.window``.
"""

# Each frame: kind (u8), call (u64), the kind's fixed fields, then the byte
# length (u32) of each variable field, then those fields back to back.
# Big-endian throughout; strings are UTF-8.
_DISPATCH: Final = struct.Struct(
    ">BQBd8I"
)  # flags, timeout; module qualname digest code uid parent args globals
_RESUME: Final = struct.Struct(">BQBI")  # kind; value
_CANCEL: Final = struct.Struct(">BQ")
_OUTCOME: Final = struct.Struct(">BQB4I")  # kind; value error_type error_message traceback
_NEED_CODE: Final = struct.Struct(">BQI")  # digest
_OUTPUT: Final = struct.Struct(">BQBI")  # stream; text
_KIND_DISPATCH, _KIND_RESUME, _KIND_CANCEL, _KIND_OUTCOME, _KIND_NEED_CODE, _KIND_OUTPUT = range(
    1, 7
)
_VALUE: Final = struct.Struct(">BQII")  # digest data
_KIND_VALUE: Final = 8
_CONTEXT: Final = struct.Struct(">BQI")  # values
_KIND_CONTEXT: Final = 7
_CHUNK: Final = struct.Struct(">BQQI")  # total; data
_KIND_CHUNK: Final = 9
_CREDIT: Final = struct.Struct(">BQQ")  # size
_KIND_CREDIT: Final = 10
_GENERATOR: Final = 1
_CAPTURE: Final = 2
_HEAD: Final = bytes([VERSION])


def _utf8(value: str) -> bytes:
    """``value`` as UTF-8; lone surrogates (undecodable file names) are escaped, not fatal."""
    return value.encode("utf-8", "backslashreplace")


def encode(frames: list[Frame]) -> bytes:
    """One gRPC message carrying ``frames``; payloads (``Parts`` too) are copied into it once."""
    parts: list[bytes | memoryview | bytearray] = [_HEAD]
    _put(parts, frames)
    data = b"".join(parts)
    if len(data) > LIMIT:
        raise SerializationError(f"a message of {len(data)} bytes is over the {LIMIT}-byte limit")
    return data


def _put(parts: list[bytes | memoryview | bytearray], frames: list[Frame]) -> None:
    """Append the pieces of ``frames`` to ``parts``; a ``Parts`` payload adds its buffers."""
    add = parts.append
    for frame in frames:
        if type(frame) is Outcome:
            value = frame.value
            if frame.kind == RAISE:
                error_type = _utf8(frame.error_type)
                message = _utf8(frame.error_message)
                text = _utf8(frame.traceback)
                add(
                    _OUTCOME.pack(
                        _KIND_OUTCOME, frame.call, frame.kind,
                        len(value), len(error_type), len(message), len(text),
                    )
                )  # fmt: skip
                if isinstance(value, Parts):
                    parts += value.parts
                else:
                    add(value)
                parts += (error_type, message, text)
            else:
                add(_OUTCOME.pack(_KIND_OUTCOME, frame.call, frame.kind, len(value), 0, 0, 0))
                if isinstance(value, Parts):
                    parts += value.parts
                else:
                    add(value)
        elif type(frame) is Dispatch:
            module, qualname = _utf8(frame.module), _utf8(frame.qualname)
            uid, parent = _utf8(frame.uid), _utf8(frame.parent)
            digest, code, args, names = frame.digest, frame.code, frame.args, frame.globals
            flags = (_GENERATOR if frame.generator else 0) | (
                _CAPTURE if frame.capture_output else 0
            )
            add(
                _DISPATCH.pack(
                    _KIND_DISPATCH, frame.call, flags, frame.timeout,
                    len(module), len(qualname), len(digest), len(code), len(uid), len(parent),
                    len(args), len(names),
                )
            )  # fmt: skip
            if isinstance(args, Parts):
                parts += (module, qualname, digest, code, uid, parent, *args.parts, names)
            else:
                parts += (module, qualname, digest, code, uid, parent, args, names)
        elif type(frame) is Resume:
            value = frame.value
            add(_RESUME.pack(_KIND_RESUME, frame.call, frame.kind, len(value)))
            if isinstance(value, Parts):
                parts += value.parts
            else:
                add(value)
        elif type(frame) is Cancel:
            add(_CANCEL.pack(_KIND_CANCEL, frame.call))
        elif type(frame) is Chunk:
            value = frame.data
            add(_CHUNK.pack(_KIND_CHUNK, frame.call, frame.total, len(value)))
            if isinstance(value, Parts):
                parts += value.parts
            else:
                add(value)
        elif type(frame) is Credit:
            add(_CREDIT.pack(_KIND_CREDIT, frame.call, frame.size))
        elif type(frame) is NeedCode:
            add(_NEED_CODE.pack(_KIND_NEED_CODE, frame.call, len(frame.digest)))
            add(frame.digest)
        elif type(frame) is Output:
            text = _utf8(frame.text)
            add(_OUTPUT.pack(_KIND_OUTPUT, frame.call, frame.stream, len(text)))
            add(text)
        elif type(frame) is Value:
            value = frame.data
            add(_VALUE.pack(_KIND_VALUE, frame.call, len(frame.digest), len(value)))
            add(frame.digest)
            if isinstance(value, Parts):
                parts += value.parts
            else:
                add(value)
        elif type(frame) is Context:
            values = frame.values
            add(_CONTEXT.pack(_KIND_CONTEXT, frame.call, len(values)))
            if isinstance(values, Parts):
                parts += values.parts
            else:
                add(values)
            if frame.then is not None:
                _put(parts, [frame.then])
        else:  # pragma: no cover - a programming error, not peer input
            raise TypeError(f"not a frame: {frame!r}")


def decode(data: bytes) -> list[Frame]:
    """Frames of one message; anything malformed raises ProtocolError.

    Payloads (arguments, values) come back as memoryviews of ``data``: no copy.
    """
    view = memoryview(data)
    size = len(view)
    if not size:
        raise ProtocolError("empty message")
    if view[0] != VERSION:
        raise ProtocolError(f"wire format {view[0]}, this worker speaks {VERSION}")
    frames: list[Frame] = []
    append = frames.append
    offset = 1
    try:
        while offset < size:
            kind = view[offset]
            if kind == _KIND_OUTCOME:
                _, call, outcome, lv, le, lm, lt = _OUTCOME.unpack_from(view, offset)
                offset += _OUTCOME.size
                end = offset + lv + le + lm + lt
                if end > size:
                    raise ProtocolError(f"outcome of call {call} overruns the message")
                value = view[offset : offset + lv]
                if le or lm or lt:
                    a = offset + lv
                    b = a + le
                    c = b + lm
                    error_type, message = str(view[a:b], "utf-8"), str(view[b:c], "utf-8")
                    text = str(view[c:end], "utf-8")
                    append(Outcome(call, outcome, value, error_type, message, text))
                else:
                    append(Outcome(call, outcome, value))
                offset = end
            elif kind == _KIND_DISPATCH:
                _, call, flags, timeout, *lengths = _DISPATCH.unpack_from(view, offset)
                (module, qualname, digest, code, uid, parent, args, names), offset = _fields(
                    view, offset + _DISPATCH.size, lengths
                )
                append(
                    Dispatch(
                        call, str(module, "utf-8"), str(qualname, "utf-8"),
                        bytes(digest) if digest else b"", bytes(code) if code else b"",
                        _str(uid), args, bool(flags & _GENERATOR), timeout, _str(parent),
                        bool(flags & _CAPTURE), bytes(names) if names else b"",
                    )
                )  # fmt: skip
            elif kind == _KIND_RESUME:
                _, call, step, length = _RESUME.unpack_from(view, offset)
                (value,), offset = _fields(view, offset + _RESUME.size, (length,))
                append(Resume(call, step, value))
            elif kind == _KIND_CANCEL:
                _, call = _CANCEL.unpack_from(view, offset)
                offset += _CANCEL.size
                append(Cancel(call))
            elif kind == _KIND_NEED_CODE:
                _, call, length = _NEED_CODE.unpack_from(view, offset)
                (digest,), offset = _fields(view, offset + _NEED_CODE.size, (length,))
                append(NeedCode(call, bytes(digest)))
            elif kind == _KIND_OUTPUT:
                _, call, stream, length = _OUTPUT.unpack_from(view, offset)
                (raw,), offset = _fields(view, offset + _OUTPUT.size, (length,))
                append(Output(call, stream, _str(raw)))
            elif kind == _KIND_VALUE:
                _, call, ld, lv = _VALUE.unpack_from(view, offset)
                (digest, value), offset = _fields(view, offset + _VALUE.size, (ld, lv))
                append(Value(call, bytes(digest), value))
            elif kind == _KIND_CONTEXT:
                _, call, length = _CONTEXT.unpack_from(view, offset)
                (values,), offset = _fields(view, offset + _CONTEXT.size, (length,))
                append(Context(call, values))
            elif kind == _KIND_CREDIT:
                _, call, credit = _CREDIT.unpack_from(view, offset)
                offset += _CREDIT.size
                append(Credit(call, credit))
            elif kind == _KIND_CHUNK:
                _, call, total, length = _CHUNK.unpack_from(view, offset)
                (piece,), offset = _fields(view, offset + _CHUNK.size, (length,))
                append(Chunk(call, total, piece))
            else:
                raise ProtocolError(f"unknown frame kind {kind} at byte {offset}")
    except struct.error:
        raise ProtocolError(f"frame at byte {offset} is cut short") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"a text field is not UTF-8: {exc.reason}") from None
    return frames


def _fields(
    view: memoryview, offset: int, lengths: tuple[int, ...] | list[int]
) -> tuple[list[memoryview], int]:
    """Slices of ``view`` with these lengths from ``offset``, and the offset past the last."""
    out = []
    for length in lengths:
        end = offset + length
        if end > len(view):
            raise ProtocolError(f"a field of {length} bytes overruns the message")
        out.append(view[offset:end])
        offset = end
    return out, offset


def _str(field: memoryview) -> str:
    return str(field, "utf-8") if field else ""


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """How one worker is reached, as the pool tells every peer."""

    id: str
    address: str
    pid: int
    tags: tuple[str, ...] = ()
    control: str = ""
    incarnation: int = 0
    source: str = ""
    """How this process learned of the peer: spawned, seed, gossip, local, lan, dns."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One entry of a gossiped peer table (``wool.mesh.membership``)."""

    peer: PeerRecord
    heartbeat: int = 0
    left: bool = False


def _wire() -> ModuleType:
    from wool.protocol import wire_pb2

    return wire_pb2


@dataclass(frozen=True, slots=True)
class CountersRecord:
    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    buckets: dict[int, int] | None = None
    total_ns: int = 0
    max_ns: int = 0


@dataclass(frozen=True, slots=True)
class StatsRecord:
    """What one worker reports about itself."""

    id: str
    address: str
    pid: int
    tags: tuple[str, ...]
    executed: CountersRecord
    dispatched: CountersRecord
    cpu_percent: float
    rss_bytes: int
    uptime_s: float
    code_received: int = 0
    rejected: int = 0


def _counters_to_wire(c: CountersRecord, out: wire_pb2.Counters) -> None:
    out.started, out.completed, out.failed, out.cancelled = (
        c.started,
        c.completed,
        c.failed,
        c.cancelled,
    )
    out.total_ns, out.max_ns = c.total_ns, c.max_ns
    for k, v in (c.buckets or {}).items():
        out.buckets[k] = v


def _counters_from_wire(c: wire_pb2.Counters) -> CountersRecord:
    return CountersRecord(
        c.started, c.completed, c.failed, c.cancelled, dict(c.buckets), c.total_ns, c.max_ns
    )


def encode_stats(s: StatsRecord) -> bytes:
    msg = _wire().StatsReply(
        id=s.id,
        address=s.address,
        pid=s.pid,
        tags=list(s.tags),
        cpu_percent=s.cpu_percent,
        rss_bytes=s.rss_bytes,
        uptime_s=s.uptime_s,
        code_received=s.code_received,
        rejected=s.rejected,
    )
    _counters_to_wire(s.executed, msg.executed)
    _counters_to_wire(s.dispatched, msg.dispatched)
    return msg.SerializeToString()


def decode_stats(data: bytes) -> StatsRecord:
    try:
        m = _wire().StatsReply.FromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed stats reply: {exc}") from None
    return StatsRecord(
        m.id,
        m.address,
        m.pid,
        tuple(m.tags),
        _counters_from_wire(m.executed),
        _counters_from_wire(m.dispatched),
        m.cpu_percent,
        m.rss_bytes,
        m.uptime_s,
        m.code_received,
        m.rejected,
    )


def encode_members(members: list[MemberRecord]) -> bytes:
    wire = _wire()
    msg = wire.MemberList()
    for m in members:
        p = m.peer
        msg.members.append(
            wire.Member(
                id=p.id,
                address=p.address,
                control=p.control,
                pid=p.pid,
                tags=list(p.tags),
                incarnation=p.incarnation,
                heartbeat=m.heartbeat,
                left=m.left,
            )
        )
    return msg.SerializeToString()


def decode_members(data: bytes, source: str = "gossip") -> list[MemberRecord]:
    """The entries of a MemberList; ``source`` tags each peer with how it was learned."""
    try:
        m = _wire().MemberList.FromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed member list: {exc}") from None
    return [
        MemberRecord(
            PeerRecord(e.id, e.address, e.pid, tuple(e.tags), e.control, e.incarnation, source),
            e.heartbeat,
            e.left,
        )
        for e in m.members
    ]


STATS_REQUEST: Final = b""
"""A serialized StatsRequest (it has no fields, so it is empty)."""

SERVICE: Final = "wool.v1.Worker"
DISPATCH_METHOD: Final = f"/{SERVICE}/Dispatch"
STATS_METHOD: Final = f"/{SERVICE}/Stats"
GOSSIP_METHOD: Final = f"/{SERVICE}/Gossip"
