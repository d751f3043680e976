"""Reachability seen from inside a namespace host: ``python probe.py ADDRESS... [--resolve NAME]``.

Prints one JSON object: for each address, ``open``, ``refused`` (a host
answered), ``timeout`` or ``unreachable``; with ``--resolve``, every address
the name resolves to here.
"""

from __future__ import annotations

import argparse
import json
import socket


def reach(address: str, port: int) -> str:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((address, port))
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError:
            return "unreachable"
        return "open"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("addresses", nargs="*")
    parser.add_argument("--port", type=int, default=9)
    parser.add_argument("--resolve", default="")
    args = parser.parse_args()
    report: dict[str, object] = {a: reach(a, args.port) for a in args.addresses}
    if args.resolve:
        infos = socket.getaddrinfo(args.resolve, args.port, type=socket.SOCK_STREAM)
        report["resolved"] = sorted({info[4][0] for info in infos})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
