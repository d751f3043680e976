"""Typed frames and the one converter between them and the generated wire code.

Nothing else in Wool imports ``wire_pb2``. Frames travel in batches (an
envelope per gRPC message) and are plain slotted objects once decoded, so
the rest of the runtime never sees protobuf.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from google.protobuf.message import DecodeError

from wool.errors import ProtocolError
from wool.protocol import wire_pb2 as _wire

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


Payload: TypeAlias = bytes | memoryview
"""A pickled value: bytes when made here, a view into the message when received."""


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


Frame: TypeAlias = Dispatch | Resume | Cancel | Outcome | NeedCode | Output


INLINE_MAX: Final = 4096


def _text(value: str) -> str:
    """``value`` as protobuf accepts it: lone surrogates (undecodable file names) escaped."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


_LENGTH = struct.Struct(">I")


def _out_of_line(wire: _wire.Frame, payload: Payload, blobs: list[Payload]) -> bool:
    """Carry a large payload after the envelope; True when it should go inline instead."""
    if len(payload) > INLINE_MAX:
        wire.trailing = len(payload)
        blobs.append(payload)
        return False
    return bool(payload)


def encode(frames: list[Frame]) -> bytes:
    """One gRPC message: length-prefixed envelope, then large payloads out of line."""
    envelope = _wire.Envelope()
    add = envelope.frames.add
    blobs: list[Payload] = []
    for frame in frames:
        wire = add(call=frame.call)
        if type(frame) is Outcome:
            out = wire.outcome
            out.kind = frame.kind
            if _out_of_line(wire, frame.value, blobs):
                out.value = bytes(frame.value)
            if frame.kind == RAISE:
                out.error_type = _text(frame.error_type)
                out.error_message = _text(frame.error_message)
                out.traceback = _text(frame.traceback)
        elif type(frame) is Dispatch:
            d = wire.dispatch
            ref = d.routine
            ref.module = frame.module
            ref.qualname = frame.qualname
            if frame.digest:
                ref.digest = frame.digest
                ref.uid = frame.uid
                if frame.code:
                    ref.code = frame.code
            if _out_of_line(wire, frame.args, blobs):
                d.args = bytes(frame.args)
            d.generator = frame.generator
            d.timeout = frame.timeout
            d.parent = frame.parent
            d.capture_output = frame.capture_output
        elif type(frame) is Resume:
            wire.resume.kind = frame.kind
            if _out_of_line(wire, frame.value, blobs):
                wire.resume.value = bytes(frame.value)
        elif type(frame) is Cancel:
            wire.cancel.SetInParent()
        elif type(frame) is NeedCode:
            wire.need_code.digest = frame.digest
        elif type(frame) is Output:
            wire.output.stream = frame.stream
            wire.output.text = _text(frame.text)
        else:  # pragma: no cover - a programming error, not peer input
            raise TypeError(f"not a frame: {frame!r}")
    head = envelope.SerializeToString()
    if not blobs:
        return _LENGTH.pack(len(head)) + head
    return b"".join([_LENGTH.pack(len(head)), head, *blobs])


def decode(data: bytes) -> list[Frame]:
    """Frames of one message; anything malformed raises ProtocolError.

    Out-of-line payloads come back as memoryviews of ``data`` (no copy).
    """
    size = len(data)
    if size < 4:
        raise ProtocolError(f"message of {size} bytes is too short")
    (length,) = _LENGTH.unpack_from(data)
    offset = 4 + length
    if offset > size:
        raise ProtocolError(f"envelope of {length} bytes overruns a {size}-byte message")
    view = memoryview(data)
    try:
        envelope = _wire.Envelope.FromString(view[4:offset])
    except (DecodeError, TypeError) as exc:
        raise ProtocolError(f"malformed envelope ({length} bytes): {exc}") from None
    frames: list[Frame] = []
    append = frames.append
    for wire in envelope.frames:
        kind = wire.WhichOneof("body")
        call = wire.call
        payload: Payload | None = None
        if wire.trailing:
            end = offset + wire.trailing
            if end > size:
                raise ProtocolError(f"payload of call {call} overruns the message")
            payload, offset = view[offset:end], end
        if kind == "outcome":
            o = wire.outcome
            value = o.value if payload is None else payload
            append(Outcome(call, o.kind, value, o.error_type, o.error_message, o.traceback))
        elif kind == "dispatch":
            d = wire.dispatch
            r = d.routine
            append(
                Dispatch(
                    call,
                    r.module,
                    r.qualname,
                    r.digest,
                    r.code,
                    r.uid,
                    d.args if payload is None else payload,
                    d.generator,
                    d.timeout,
                    d.parent,
                    d.capture_output,
                )
            )
        elif kind == "resume":
            value = wire.resume.value if payload is None else payload
            append(Resume(call, wire.resume.kind, value))
        elif kind == "cancel":
            append(Cancel(call))
        elif kind == "need_code":
            append(NeedCode(call, wire.need_code.digest))
        elif kind == "output":
            append(Output(call, wire.output.stream, wire.output.text))
        else:
            raise ProtocolError(f"frame for call {call} has no body")
    if offset != size:
        raise ProtocolError(f"{size - offset} stray bytes after the payloads")
    return frames


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """How one worker is reached, as the pool tells every peer."""

    id: str
    address: str
    pid: int
    tags: tuple[str, ...] = ()
    control: str = ""


def encode_peers(peers: list[PeerRecord]) -> bytes:
    msg = _wire.PeerList()
    for p in peers:
        msg.peers.add(id=p.id, address=p.address, pid=p.pid, tags=list(p.tags), control=p.control)
    return msg.SerializeToString()


def decode_peers(data: bytes) -> list[PeerRecord]:
    try:
        msg = _wire.PeerList.FromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed peer list: {exc}") from None
    return [PeerRecord(p.id, p.address, p.pid, tuple(p.tags), p.control) for p in msg.peers]


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


def _counters_to_wire(c: CountersRecord, out: _wire.Counters) -> None:
    out.started, out.completed, out.failed, out.cancelled = (
        c.started,
        c.completed,
        c.failed,
        c.cancelled,
    )
    out.total_ns, out.max_ns = c.total_ns, c.max_ns
    for k, v in (c.buckets or {}).items():
        out.buckets[k] = v


def _counters_from_wire(c: _wire.Counters) -> CountersRecord:
    return CountersRecord(
        c.started, c.completed, c.failed, c.cancelled, dict(c.buckets), c.total_ns, c.max_ns
    )


def encode_stats(s: StatsRecord) -> bytes:
    msg = _wire.StatsReply(
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
        m = _wire.StatsReply.FromString(data)
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


STATS_REQUEST: Final = _wire.StatsRequest().SerializeToString()

SERVICE: Final = "wool.v1.Worker"
DISPATCH_METHOD: Final = f"/{SERVICE}/Dispatch"
STATS_METHOD: Final = f"/{SERVICE}/Stats"
SET_PEERS_METHOD: Final = f"/{SERVICE}/SetPeers"
