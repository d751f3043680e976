"""The membership merge rules: who wins, who is trusted, who is dropped, and when."""

from __future__ import annotations

import pytest

from wool.errors import ProtocolError
from wool.mesh.membership import Membership, rank, resolve
from wool.protocol.frames import MemberRecord, PeerRecord, decode_members, encode_members


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Client:
    def __init__(self) -> None:
        self.tables: list[list[str]] = []

    def set_peers(self, peers: object) -> None:
        self.tables.append([p.id for p in peers])  # type: ignore[attr-defined]


def peer(pid: str, inc: int = 1, port: int = 1) -> PeerRecord:
    return PeerRecord(pid, f"127.0.0.1:{port}", 10, ("t",), f"127.0.0.1:{port + 1000}", inc)


def member(pid: str, inc: int = 1, hb: int = 0, left: bool = False, port: int = 1) -> MemberRecord:
    return MemberRecord(peer(pid, inc, port), hb, left)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def m(clock: Clock) -> Membership:
    return Membership(
        PeerRecord("me", "127.0.0.1:9", 1), None, secret=b"s", interval=0.5,
        suspect_after=3.0, forget_after=30.0, clock=clock,
    )  # fmt: skip


def ids(m: Membership) -> list[str]:
    return [p.id for p in m.members()]


def test_rank_orders_incarnation_then_leave_then_heartbeat() -> None:
    assert rank(member("a", inc=2, hb=0)) > rank(member("a", inc=1, hb=99, left=True))
    assert rank(member("a", inc=1, hb=0, left=True)) > rank(member("a", inc=1, hb=99))
    assert rank(member("a", inc=1, hb=5)) > rank(member("a", inc=1, hb=4))


def test_gossip_is_a_hint_until_this_process_reached_the_address(m: Membership) -> None:
    assert not m.merge([member("a")])
    assert ids(m) == ["me"] and [e.peer.id for e in m.table()] == ["me"]  # not passed on
    # Answered from another address: still a hint.
    assert not m.merge([member("a")], verified_at="127.0.0.1:7")
    assert m.merge([member("a")], verified_at="127.0.0.1:1001")  # its control address
    assert ids(m) == ["me", "a"] and [e.peer.id for e in m.table()] == ["me", "a"]


def test_newer_heartbeats_from_anyone_keep_a_verified_member(m: Membership, clock: Clock) -> None:
    m.merge([member("a", hb=1)], verified_at="127.0.0.1:1")
    for hb in range(2, 10):
        clock.now += 1.0
        assert not m.merge([member("a", hb=hb)])  # third-hand, same life: no change
        assert not m.expire()
    assert ids(m) == ["me", "a"]


def test_a_stalled_heartbeat_is_dropped_after_suspect_after(m: Membership, clock: Clock) -> None:
    m.merge([member("a", hb=4)], verified_at="127.0.0.1:1")
    clock.now += 3.0
    assert not m.expire() and ids(m) == ["me", "a"]
    clock.now += 0.01
    assert m.expire() and ids(m) == ["me"]
    # Stale gossip of the same heartbeat (or older) does not bring it back.
    assert not m.merge([member("a", hb=4)], verified_at="127.0.0.1:1")
    assert not m.merge([member("a", hb=3)], verified_at="127.0.0.1:1")
    assert ids(m) == ["me"]
    # It was only cut off: a newer heartbeat, verified again, brings it back.
    assert m.merge([member("a", hb=5)], verified_at="127.0.0.1:1")
    assert ids(m) == ["me", "a"]


def test_a_leave_is_a_tombstone_that_wins_and_spreads(m: Membership, clock: Clock) -> None:
    m.merge([member("a", inc=1, hb=7)], verified_at="127.0.0.1:1")
    assert m.merge([member("a", inc=2, left=True)])  # tombstones need no verification
    assert ids(m) == ["me"]
    assert [(e.peer.id, e.left) for e in m.table()] == [("me", False), ("a", True)]
    assert not m.merge([member("a", inc=1, hb=99)], verified_at="127.0.0.1:1")  # older life
    clock.now += 31.0
    m.expire()
    assert [e.peer.id for e in m.table()] == ["me"]  # forgotten after forget_after


def test_a_restart_is_a_new_life_verified_anew(m: Membership) -> None:
    m.merge([member("a", inc=1, hb=9)], verified_at="127.0.0.1:1")
    assert m.merge([member("a", inc=5, port=2)])  # heard of its new life: out until reached
    assert ids(m) == ["me"]
    assert m.merge([member("a", inc=5, port=2)], verified_at="127.0.0.1:2")
    [a] = [p for p in m.members() if p.id == "a"]
    assert (a.incarnation, a.address) == (5, "127.0.0.1:2")


def test_a_worker_outranks_an_old_tombstone_of_its_own_id(m: Membership) -> None:
    mine = m.me.incarnation
    m.merge([MemberRecord(PeerRecord("me", "x:1", 1, incarnation=mine), 0, True)])
    assert m.me.incarnation == mine + 1 and not m.own().left
    m.merge([MemberRecord(PeerRecord("me", "x:1", 1, incarnation=mine + 1), 50, False)])
    assert m.me.incarnation == mine + 1  # an echo of itself is not a threat


def test_changes_reach_the_mesh_client_and_repeats_do_not() -> None:
    client = Client()
    m = Membership(PeerRecord("me", "127.0.0.1:9", 1), client, secret=b"s")  # type: ignore[arg-type]
    m.handle(encode_members([member("a")]))  # a hint: nothing to publish
    assert m.merge([member("a", hb=1)], verified_at="127.0.0.1:1")
    m._publish()
    m._publish()
    assert client.tables == [["me", "a"]]


def test_own_entry_comes_first_and_a_leave_raises_the_incarnation(m: Membership) -> None:
    before = m.me.incarnation
    m.leave(timeout=0.1)  # no peers: nothing to tell, returns at once
    own = m.table()[0]
    assert own.peer.id == "me" and own.left and own.peer.incarnation == before + 1
    assert m.members() == []


def test_member_lists_round_trip_and_garbage_is_a_protocol_error() -> None:
    entries = [member("a", inc=3, hb=4), member("b", left=True)]
    back = decode_members(encode_members(entries), "seed")
    assert [(e.peer.id, e.peer.incarnation, e.heartbeat, e.left) for e in back] == [
        ("a", 3, 4, False),
        ("b", 1, 0, True),
    ]
    assert back[0].peer.control == "127.0.0.1:1001" and back[0].peer.source == "seed"
    with pytest.raises(ProtocolError, match="malformed member list"):
        decode_members(b"\xff\xff\xff")


def test_seeds_resolve_as_given_or_through_dns() -> None:
    assert resolve("10.0.0.1:7700") == ["10.0.0.1:7700"]
    assert "127.0.0.1:7700" in resolve("dns:localhost:7700")
    assert resolve("dns:no-such-host.invalid:7700") == []
    with pytest.raises(ValueError, match="dns:NAME:PORT"):
        resolve("dns:localhost")


def test_bad_timing_is_refused() -> None:
    with pytest.raises(ValueError, match="interval < suspect_after"):
        Membership(PeerRecord("me", "x:1", 1), None, secret=b"s", interval=1, suspect_after=1)
