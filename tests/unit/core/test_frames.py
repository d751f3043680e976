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


def test_text_with_lone_surrogates_is_escaped_not_fatal() -> None:
    (received,) = f.decode(f.encode([f.Output(1, f.STDOUT, "bad \udcff name\n")]))
    assert received == f.Output(1, f.STDOUT, "bad \\udcff name\n")


def test_malformed_messages_are_protocol_errors() -> None:
    good = f.encode([f.Outcome(1, f.RETURN, b"x" * 100), f.Cancel(2)])
    with pytest.raises(ProtocolError, match="empty"):
        f.decode(b"")
    with pytest.raises(ProtocolError, match="wire format 7"):
        f.decode(b"\x07" + good[1:])
    with pytest.raises(ProtocolError, match="unknown frame kind 99"):
        f.decode(good + b"\x63")
    with pytest.raises(ProtocolError, match="cut short"):
        f.decode(good[:-3])
    with pytest.raises(ProtocolError, match="overruns"):
        f.decode(good[:60])
    bad_text = f.encode([f.Output(3, f.STDOUT, "ab")]).replace(b"ab", b"\xff\xfe")
    with pytest.raises(ProtocolError, match="UTF-8"):
        f.decode(bad_text)


def test_payloads_are_copied_in_once_and_come_back_as_views() -> None:
    big, bigger = b"a" * 5000, b"b" * 12000
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
    assert isinstance(received[2].value, memoryview)


def test_stats_round_trip() -> None:
    counters = f.CountersRecord(3, 2, 1, 0, {5: 2, 9: 1}, 123, 99)
    record = f.StatsRecord("a", "x", 1, ("t",), counters, counters, 12.5, 4096, 3.0, 2, 1)
    assert f.decode_stats(f.encode_stats(record)) == record
