"""Another process on this host running a hybrid pool that publishes its workers.

``python discovery_host.py --namespace NS [--tag T] [--spawn N] [--lan]``,
the mesh secret (hex) in ``WOOL_TEST_SECRET``. Prints one JSON line with
its workers (id, pid, address) once they are published; stops its pool
(and so its workers, and withdraws them) at the end of stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import wool
from wool.discovery import Discovery


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--tag", action="append", default=[])
    parser.add_argument("--spawn", type=int, default=1)
    parser.add_argument("--lan", action="store_true")
    args = parser.parse_args()
    discovery: Discovery
    if args.lan:
        discovery = wool.LanDiscovery(args.namespace, interfaces=["127.0.0.1"], wait=0.5)
    else:
        discovery = wool.LocalDiscovery(args.namespace)
    secret = bytes.fromhex(os.environ["WOOL_TEST_SECRET"])
    pool = wool.WorkerPool(*args.tag, spawn=args.spawn, discovery=discovery, secret=secret)
    pool.start()
    try:
        workers = [
            {"id": w.id, "pid": w.pid, "address": w.address, "source": w.source}
            for w in pool.workers
            if w.source == "spawned"
        ]
        print(json.dumps({"workers": workers}), flush=True)
        sys.stdin.read()
    finally:
        pool.stop()


if __name__ == "__main__":
    main()
