"""What a by-value call sends, and what the connection sends again when a worker asks."""

import asyncio
from typing import Any

import wool
from wool.errors import WorkerLost
from wool.mesh.connection import Connection
from wool.protocol import frames as f
from wool.routine import Shipment


def _main_routine(source: str, **names: object) -> wool.Routine:
    ns: dict = {"__name__": "__main__", "wool": wool, **names}
    exec(source, ns)
    return ns["task"]


class _Writer:
    """Records frames; the first write fails the stream at once, as a broken socket does."""

    def __init__(self, conn: Connection, fail: bool) -> None:
        self.conn, self.fail, self.sent, self.closed = conn, fail, [], False

    def send(self, frame: Any) -> None:
        if self.closed:
            return
        if self.fail:
            self.conn._fail(ConnectionError("broken"))
            return
        self.sent.append(frame)

    def close(self) -> None:
        self.closed = True


def _connection(fail: bool = False) -> tuple[Connection, _Writer, list]:
    lost: list = []
    conn = Connection(f.PeerRecord("w", "127.0.0.1:9", 1), b"s", lambda c, e: lost.append(e))
    writer = _Writer(conn, fail)
    conn._writer = writer  # type: ignore[assignment]
    return conn, writer, lost


async def test_a_write_failing_at_once_fails_the_by_value_call_instead_of_hanging() -> None:
    task = _main_routine("@wool.routine\nasync def task():\n    return SCALE\n", SCALE=10)
    conn, _, lost = _connection(fail=True)
    _, waiter = conn.dispatch(task, b"", None, "")
    assert waiter.done() and isinstance(waiter.exception(), WorkerLost)
    async with asyncio.timeout(5):
        try:
            await conn.wait(waiter)
        except WorkerLost:
            pass
    assert lost and not conn.pending


async def test_need_code_resends_only_what_was_named_and_then_fails_typed() -> None:
    task = _main_routine(
        "@wool.routine\nasync def task():\n    return A, B\n", A="a" * 100, B="b" * 100
    )
    conn, writer, _ = _connection()
    call, waiter = conn.dispatch(task, b"", None, "")
    values = [fr for fr in writer.sent if type(fr) is f.Value]
    [dispatch] = [fr for fr in writer.sent if type(fr) is f.Dispatch]
    assert len(values) == 3 and dispatch.code  # A, B, the manifest; code the first time
    writer.sent.clear()
    wanted = values[1].digest
    conn._resend_with_code(f.NeedCode(call, wanted))
    assert [type(fr) for fr in writer.sent] == [f.Value, f.Dispatch]
    assert writer.sent[0].digest == wanted
    writer.sent.clear()
    conn._resend_with_code(f.NeedCode(call, dispatch.digest))
    assert [type(fr) for fr in writer.sent] == [f.Dispatch] and writer.sent[0].code
    for _ in range(10):
        conn._resend_with_code(f.NeedCode(call, wanted))
    assert isinstance(waiter.exception(), wool.SerializationError)
    assert call not in conn.pending


@wool.routine
async def ping() -> None:
    """Importable: this module has a file and a spec."""


def test_an_importable_routine_is_one_dispatch_by_name() -> None:
    known: set[bytes] = set()
    frame = ping.request(1, b"", 0.0, "", False, known)
    assert type(frame) is f.Dispatch and frame.qualname == "ping" and frame.module
    assert not frame.code and not known
    by_value = _main_routine("@wool.routine\nasync def task():\n    return 1\n")
    assert type(by_value.request(2, b"", 0.0, "", False, known)) is Shipment
