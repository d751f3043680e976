"""The one converter between frames and the wire."""

import pytest

from wool.errors import ProtocolError
from wool.protocol import frames as f


def test_every_frame_kind_round_trips() -> None:
    sent = [
        f.Dispatch(1, "pkg.mod", "fn", b"", b"", "", b"args", True, 2.5, "w/1/2", True),
        f.Dispatch(2, "", "fn", b"d" * 16, b"code", "uid", b"", False, 0.0, "", False),
        f.Resume(1, f.SEND, b"v"),
        f.Cancel(3),
        f.Outcome(4, f.RETURN, b"result"),
        f.Outcome(5, f.RAISE, b"p", "mod.Boom", "msg", "Traceback ..."),
        f.NeedCode(6, b"digest"),
        f.Output(7, f.STDERR, "text\n"),
    ]
    assert f.decode(f.encode(sent)) == sent


def test_malformed_envelope_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="overruns"):
        f.decode(b"\xff\xff\xff not protobuf")
    garbage = b"\xff\xfe not protobuf"
    with pytest.raises(ProtocolError, match="malformed"):
        f.decode(len(garbage).to_bytes(4, "big") + garbage)


def test_frame_without_body_is_a_protocol_error() -> None:
    from wool.protocol import wire_pb2

    envelope = wire_pb2.Envelope()
    envelope.frames.add(call=9)
    head = envelope.SerializeToString()
    with pytest.raises(ProtocolError, match="no body"):
        f.decode(len(head).to_bytes(4, "big") + head)


def test_large_payloads_travel_out_of_line_and_come_back_as_views() -> None:
    big, bigger = b"a" * (f.INLINE_MAX + 1), b"b" * (3 * f.INLINE_MAX)
    sent = [
        f.Dispatch(1, "m", "q", b"", b"", "", big),
        f.Outcome(2, f.RETURN, b"small"),
        f.Outcome(3, f.YIELD, bigger),
        f.Resume(4, f.SEND, big),
    ]
    data = f.encode(sent)
    assert data.count(big) == 2 and data.count(bigger) == 1, "each payload copied in once"
    received = f.decode(data)
    assert received == sent
    assert isinstance(received[0].args, memoryview)
    assert isinstance(received[1].value, bytes)


def test_truncated_or_padded_messages_are_protocol_errors() -> None:
    data = f.encode([f.Outcome(1, f.RETURN, b"x" * (f.INLINE_MAX + 10))])
    with pytest.raises(ProtocolError, match="overruns"):
        f.decode(data[:-1])
    with pytest.raises(ProtocolError, match="stray"):
        f.decode(data + b"!")
    with pytest.raises(ProtocolError, match="too short"):
        f.decode(b"\x00")


def test_peers_and_stats_round_trip() -> None:
    peers = [f.PeerRecord("a", "127.0.0.1:1", 10, ("gpu",), "127.0.0.1:2")]
    assert f.decode_peers(f.encode_peers(peers)) == peers
    counters = f.CountersRecord(3, 2, 1, 0, {5: 2, 9: 1}, 123, 99)
    record = f.StatsRecord("a", "x", 1, ("t",), counters, counters, 12.5, 4096, 3.0, 2, 1)
    assert f.decode_stats(f.encode_stats(record)) == record
