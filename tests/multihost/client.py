"""The client side of the multi-host tests, run inside a namespace host: ``python client.py CMD``.

The test process lives in the root namespace and never dials a test
address; it runs this script with ``ip netns exec HOST`` and reads the JSON
it prints (one object per line; events while a scenario runs, the result
last). Commands:

* ``run``: a durable pool over ``--discovery``, wait for ``--expect`` workers,
  ``fib(--fib)``, each worker's own counters, then one call pinned to each
  worker (its pid).
* ``partition``: calls in flight on every worker; the test cuts the victim's
  link and says so on stdin; report how the victim's calls failed and when,
  that the rest completed, convergence, and the victim's return.
* ``refusals``: five wrong ways to reach a TLS worker, each carrying a payload
  that would create a file if the worker unpickled it.
* ``hybrid``: a pool that spawns one worker and publishes it (LocalDiscovery),
  kept until the test writes a line on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import pickle
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import routines_multihost as routines

import wool
from wool.protocol import auth, frames

BOUND = 30.0


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def secret_of(certs: Path) -> bytes:
    """The mesh secret as ``wool worker --secret-file`` reads it."""
    from wool.worker.config import read_secret

    return read_secret(certs / "mesh.secret")


def credentials_of(certs: Path, role: str = "client", *, mutual: bool = True) -> Any:
    from wool.credentials import WorkerCredentials

    return WorkerCredentials.from_files(
        ca_path=certs / "ca.pem",
        key_path=certs / f"{role}.key",
        cert_path=certs / f"{role}.pem",
        mutual=mutual,
    )


def discovery_of(spec: str) -> Any:
    """``seed:HOST:PORT[,HOST:PORT]``, ``dns:NAME:PORT``, ``lan`` or ``local:NAMESPACE``."""
    import wool.discovery as found

    kind, _, rest = spec.partition(":")
    if kind == "seed":
        return found.SeedDiscovery(rest.split(","))
    if kind == "dns":
        name, port = rest.rsplit(":", 1)
        return found.DnsDiscovery(name, int(port))
    if kind == "lan":
        return wool.LanDiscovery()
    if kind == "local":
        return wool.LocalDiscovery(rest)
    raise SystemExit(f"unknown discovery {spec!r}")


def pool_of(args: argparse.Namespace, **extra: Any) -> Any:
    kwargs: dict[str, Any] = {"discovery": discovery_of(args.discovery), **extra}
    if args.certs:
        kwargs["credentials"] = credentials_of(Path(args.certs))
        kwargs["secret"] = secret_of(Path(args.certs))
    elif args.secret:
        kwargs["secret"] = secret_of(Path(args.secret))
    return wool.WorkerPool(**kwargs)


def live_ids(pool: Any) -> list[str]:
    return sorted(p.id for p in pool._mesh.live)


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def counters(pool: Any) -> dict[str, dict[str, int]]:
    """Each worker's own executed and dispatched counts (``pool.statistics()`` asks each one)."""
    stats = await pool.statistics(timeout=5.0)
    return {
        p.id: {
            "executed": p.executed.completed,
            "dispatched": p.dispatched.completed,
            "in_flight": p.executed.in_flight,
            "rejected": p.rejected,
        }
        for p in stats.peers
        if p.state == "ready"
    }


def since(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict:
    """Each worker's completed counts between two readings (in-flight as of the second)."""
    out = {}
    for peer, now in after.items():
        was = before.get(peer, {})
        out[peer] = {k: v if k == "in_flight" else v - was.get(k, 0) for k, v in now.items()}
    return out


async def converged(pool: Any, expect: int) -> None:
    """Wait until every worker knows ``expect`` peers, so nested calls can cross hosts.

    Durable workers learn of each other by gossip after they report ready; a
    call made before that keeps all its nested calls on the worker it landed on."""
    deadline = time.monotonic() + BOUND
    for peer in live_ids(pool):
        while len(await routines.known_peers.options(worker=peer)()) < expect:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {BOUND}s waiting for {peer} to see peers")
            await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    async with asyncio.timeout(BOUND * 2):
        async with pool_of(args) as pool:
            await until(lambda: len(pool._mesh.live) >= args.expect, BOUND, "workers")
            if args.converged:
                await converged(pool, args.expect)
            before = await counters(pool)
            result = await routines.fib(args.fib)
            seen = since(before, await counters(pool))  # before the pinned calls below add to them
            ids = live_ids(pool)
            pids = {peer: await routines.whoami.options(worker=peer)() for peer in ids}
            emit(result=result, peers=ids, pids=pids, counters=seen)


class Stdin:
    """Lines the test writes, read on a thread so the loop keeps running."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        threading.Thread(target=self._read, args=(loop,), daemon=True).start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(self.queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(self.queue.put_nowait, "")

    async def line(self) -> str:
        return await asyncio.wait_for(self.queue.get(), BOUND)


def leaf(exc: BaseException) -> BaseException:
    """The first exception inside nested exception groups (a TaskGroup's failure)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def outcome(call: Any) -> dict[str, Any]:
    try:
        value = await call
    except Exception as exc:
        first = leaf(exc)
        return {"error": type(first).__name__, "message": str(first), "at": time.monotonic()}
    return {"value": value, "at": time.monotonic()}


async def partition(args: argparse.Namespace) -> None:
    stdin = Stdin(asyncio.get_running_loop())
    async with asyncio.timeout(BOUND * 3):
        async with pool_of(args) as pool:
            await until(lambda: len(pool._mesh.live) >= args.expect, BOUND, "workers")
            ids = live_ids(pool)
            assert await routines.fib(10) == 55  # warm: workers hold streams to each other
            calls = {
                peer: asyncio.ensure_future(
                    outcome(routines.hold.options(worker=peer)(60 if peer == args.victim else 3))
                )
                for peer in ids
            }

            async def all_in_flight() -> bool:
                seen = await counters(pool)
                return all(seen.get(p, {}).get("in_flight", 0) >= 1 for p in ids)

            deadline = time.monotonic() + BOUND
            while not await all_in_flight():
                assert time.monotonic() < deadline, "calls never reached every worker"
                await asyncio.sleep(0.05)
            emit(event="in_flight", peers=ids)
            down_at = float((await stdin.line()).split()[1])
            lost = await calls[args.victim]
            rest = {p: await c for p, c in calls.items() if p != args.victim}
            await until(lambda: args.victim not in live_ids(pool), BOUND, "the victim dropped")
            emit(
                event="down",
                lost=lost,
                lost_after=lost["at"] - down_at,
                rest=rest,
                converged_after=time.monotonic() - down_at,
                live=live_ids(pool),
            )
            await stdin.line()  # the test saw every live worker drop the victim
            emit(event="work", fib_after=await outcome(routines.fib(12)))
            up_at = float((await stdin.line()).split()[1])
            try:
                await until(lambda: args.victim in live_ids(pool), BOUND, "the victim rejoined")
            except AssertionError as exc:
                known = [p.id for p in pool._mesh.peers]
                reason = pool._mesh.lost_reason(args.victim)
                raise AssertionError(f"{exc}; table {known}; lost: {reason!r}") from None
            back = await outcome(routines.whoami.options(worker=args.victim)())
            emit(event="up", rejoined_after=time.monotonic() - up_at, back=back)


class Tripwire:
    """Unpickling this creates a file: proof that bytes were unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def evil(path: Path) -> bytes:
    args = pickle.dumps(((Tripwire(str(path)),), {}))
    dispatch = frames.Dispatch(1, "routines_multihost", "whoami", b"", b"", "", args)
    return frames.encode([dispatch])


async def raw(target: str, creds: Any, metadata: tuple, payload: bytes | None) -> dict[str, Any]:
    """One dispatch stream opened by hand; the status gRPC reports for it."""
    from wool.mesh import transport

    channel = transport.aio_channel(target, creds)
    try:
        call = channel.stream_stream(frames.DISPATCH_METHOD)(metadata=metadata, timeout=10)
        try:
            if payload is not None:
                await call.write(payload)
            await call.done_writing()
        except Exception:  # the worker may end the call before we finish writing
            pass
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return {"code": exc.code().name, "details": exc.details()}
        return {"code": (await call.code()).name, "details": await call.details()}
    finally:
        await channel.close()


async def typed(target: str, creds: Any, secret: bytes) -> dict[str, Any]:
    """What a Wool caller gets when it dials with these credentials: a typed error, or none."""
    from wool.mesh.client import MeshClient
    from wool.protocol.frames import PeerRecord

    try:
        client = MeshClient(secret, credentials=creds, connect_timeout=10)
    except TypeError as exc:  # a MeshClient without credentials= (issue 11, H11)
        return {"error": "TypeError", "message": str(exc)}
    client.set_peers([PeerRecord("target", target, 0, ())])
    try:
        await client.connect()
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    finally:
        await client.close_loop()
    return {"error": None}


async def refusals(args: argparse.Namespace) -> None:
    certs, other, wires = Path(args.certs), Path(args.other), Path(args.tripwires)
    secret = secret_of(certs)
    good = credentials_of(certs)
    cases: dict[str, tuple[Any, tuple, bytes]] = {
        "other_ca": (credentials_of(other), auth.client_metadata(secret), secret),
        "no_client_cert": (
            credentials_of(certs, mutual=False),
            auth.client_metadata(secret),
            secret,
        ),
        "plaintext": (None, auth.client_metadata(secret), secret),
        "wrong_secret": (good, auth.client_metadata(b"not the secret"), b"not the secret"),
    }
    report: dict[str, Any] = {}
    async with asyncio.timeout(BOUND * 2):
        for name, (creds, metadata, key) in cases.items():
            report[name] = {
                "raw": await raw(args.target, creds, metadata, evil(wires / name)),
                "typed": await typed(args.target, creds, key),
            }
        report["control"] = await raw(
            args.target, good, auth.client_metadata(secret), evil(wires / "control")
        )
        captured = auth.client_metadata(secret)
        first = await raw(args.target, good, captured, None)
        report["replay"] = {
            "first": first,
            "raw": await raw(args.target, good, captured, evil(wires / "replay")),
        }
        report["legitimate"] = await typed(args.target, good, secret)
    emit(**report)


async def hybrid(args: argparse.Namespace) -> None:
    stdin = Stdin(asyncio.get_running_loop())
    async with asyncio.timeout(BOUND * 3):
        async with pool_of(args, spawn=1) as pool:
            await until(lambda: len(pool._mesh.live) >= args.expect, BOUND, "workers")
            assert await routines.fib(8) == 21
            spawned = [w.pid for w in pool.workers if w.source == "spawned"]
            emit(event="ready", spawned=spawned, peers=live_ids(pool))
            await stdin.line()
    emit(event="stopped")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "partition", "refusals", "hybrid"])
    parser.add_argument("--discovery", default="")
    parser.add_argument("--certs", default="")
    parser.add_argument("--secret", default="", help="a directory holding mesh.secret only")
    parser.add_argument("--other", default="")
    parser.add_argument("--target", default="")
    parser.add_argument("--tripwires", default="")
    parser.add_argument("--victim", default="")
    parser.add_argument("--expect", type=int, default=1)
    parser.add_argument(
        "--converged", action="store_true", help="run: first wait until each worker sees --expect"
    )
    parser.add_argument("--fib", type=int, default=18)
    args = parser.parse_args()
    command = {"run": run, "partition": partition, "refusals": refusals, "hybrid": hybrid}
    asyncio.run(command[args.command](args))


if __name__ == "__main__":
    main()
