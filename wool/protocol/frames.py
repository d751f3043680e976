"""Typed frames and the one converter between them and the generated wire code.

Nothing else in Wool imports ``wire_pb2``. Frames travel in batches (an
envelope per gRPC message) and are plain slotted objects once decoded, so
the rest of the runtime never sees protobuf.
"""

from __future__ import annotations

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


@dataclass(slots=True)
class Dispatch:
    call: int
    module: str
    qualname: str
    digest: bytes
    code: bytes
    uid: str
    args: bytes
    generator: bool = False
    timeout: float = 0.0
    parent: str = ""
    capture_output: bool = False


@dataclass(slots=True)
class Resume:
    call: int
    kind: int
    value: bytes = b""


@dataclass(slots=True)
class Cancel:
    call: int


@dataclass(slots=True)
class Outcome:
    call: int
    kind: int
    value: bytes = b""
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


def encode(frames: list[Frame]) -> bytes:
    """One envelope holding ``frames`` in order."""
    envelope = _wire.Envelope()
    add = envelope.frames.add
    for frame in frames:
        wire = add(call=frame.call)
        if type(frame) is Outcome:
            out = wire.outcome
            out.kind = frame.kind
            if frame.value:
                out.value = frame.value
            if frame.kind == RAISE:
                out.error_type = frame.error_type
                out.error_message = frame.error_message
                out.traceback = frame.traceback
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
            d.args = frame.args
            d.generator = frame.generator
            d.timeout = frame.timeout
            d.parent = frame.parent
            d.capture_output = frame.capture_output
        elif type(frame) is Resume:
            wire.resume.kind = frame.kind
            wire.resume.value = frame.value
        elif type(frame) is Cancel:
            wire.cancel.SetInParent()
        elif type(frame) is NeedCode:
            wire.need_code.digest = frame.digest
        elif type(frame) is Output:
            wire.output.stream = frame.stream
            wire.output.text = frame.text
        else:  # pragma: no cover - a programming error, not peer input
            raise TypeError(f"not a frame: {frame!r}")
    return envelope.SerializeToString()


def decode(data: bytes) -> list[Frame]:
    """Frames of one envelope; anything malformed raises ProtocolError."""
    try:
        envelope = _wire.Envelope.FromString(data)
    except (DecodeError, TypeError) as exc:
        raise ProtocolError(f"malformed envelope ({len(data)} bytes): {exc}") from None
    frames: list[Frame] = []
    append = frames.append
    for wire in envelope.frames:
        kind = wire.WhichOneof("body")
        call = wire.call
        if kind == "outcome":
            o = wire.outcome
            append(Outcome(call, o.kind, o.value, o.error_type, o.error_message, o.traceback))
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
                    d.args,
                    d.generator,
                    d.timeout,
                    d.parent,
                    d.capture_output,
                )
            )
        elif kind == "resume":
            append(Resume(call, wire.resume.kind, wire.resume.value))
        elif kind == "cancel":
            append(Cancel(call))
        elif kind == "need_code":
            append(NeedCode(call, wire.need_code.digest))
        elif kind == "output":
            append(Output(call, wire.output.stream, wire.output.text))
        else:
            raise ProtocolError(f"frame for call {call} has no body")
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
