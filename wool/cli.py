"""The ``wool`` command: ``wool worker`` (a durable worker), ``wool certs init`` (certificates).

``python -m wool ...`` is the same command. Every flag of ``wool worker`` is
checked (``wool.worker.config``) before anything binds; ``--dry-run`` prints
the result as JSON, without secret values, and exits, which is how
deployment manifests are tested.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from wool.errors import WoolError
from wool.worker.config import DEFAULT_DRAIN_GRACE, SECRET_ENV, WorkerConfigError, resolve

_WORKER_HELP = f"""\
Run a worker that other machines (or other programs on this one) dispatch
routines to. It runs until stopped with SIGTERM or Ctrl-C, then drains: it
takes no new calls, lets running ones finish for --drain-grace seconds,
cancels the rest, tells its peers it is leaving, and exits 0.

Anyone who can dispatch to a worker runs code as its user, so: every worker
needs the mesh secret (--secret-file or ${SECRET_ENV}), and a worker that
listens beyond loopback also needs mutual TLS (--tls-ca/--tls-cert/--tls-key)
unless you pass --insecure. `wool certs init DIR` makes all of these.
"""

_WORKER_EXAMPLES = """\
examples:
  # make a CA, certificates and a mesh secret for a quick start
  wool certs init certs/

  # a worker for programs on this machine only (no TLS needed on loopback)
  wool worker --listen 127.0.0.1:7700 --secret-file certs/mesh.secret

  # a worker on a network, joining a mesh through a peer on host-a
  wool worker --listen 0.0.0.0:7700 --advertise host-b:7700 --join host-a:7700 \\
      --tls-ca certs/ca.pem --tls-cert certs/worker.pem --tls-key certs/worker.key \\
      --secret-file certs/mesh.secret --tag gpu

  # check a command line (e.g. from a Kubernetes manifest) without starting anything
  wool worker --listen 0.0.0.0:7700 --join dns:wool-workers:7700 \
      --tls-ca /etc/wool/ca.pem --tls-cert /etc/wool/worker.pem --tls-key /etc/wool/worker.key \
      --secret-file /etc/wool/mesh.secret --dry-run
"""

_CERTS_HELP = """\
Write a fresh CA (ca.pem, ca.key), a worker certificate (worker.pem,
worker.key), a client certificate (client.pem, client.key) and a mesh secret
(mesh.secret) into DIR; private keys and the secret are readable by you only.
For a quick start: in production, use certificates from your own CA.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wool",
        description="Wool: run async Python routines across a mesh of worker processes.",
        epilog="Run `wool worker --help` or `wool certs init --help` for details.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = commands.add_parser(
        "worker",
        help="run a durable worker that other machines can dispatch to",
        description=_WORKER_HELP,
        epilog=_WORKER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = worker.add_argument_group("where it listens")
    where.add_argument(
        "--listen",
        default="127.0.0.1:7700",
        metavar="HOST:PORT",
        help="address to bind (default %(default)s; port 0 picks a free port; 0.0.0.0 for "
        "every interface, which needs TLS)",
    )
    where.add_argument(
        "--advertise",
        default="",
        metavar="HOST:PORT",
        help="address peers should dial, when it differs from --listen (containers, NAT); "
        "default: the bound address (the host name when listening on 0.0.0.0)",
    )
    where.add_argument("--id", default="", help="this worker's name in the mesh (default HOST-PID)")
    where.add_argument(
        "--tag",
        action="append",
        default=[],
        help="a capability tag callers can ask for, e.g. gpu (repeatable)",
    )
    peers = worker.add_argument_group("finding peers")
    peers.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a peer already in the mesh, HOST:PORT, or dns:NAME:PORT for every address NAME "
        "resolves to (e.g. a Kubernetes headless Service); repeatable",
    )
    peers.add_argument(
        "--discovery",
        default="",
        metavar="lan|local:NAMESPACE",
        help="also find peers on the local network (lan, zeroconf) or on this host "
        "(local:NAMESPACE)",
    )
    security = worker.add_argument_group("security")
    security.add_argument(
        "--secret-file",
        default=None,
        metavar="FILE",
        help=f"file holding the mesh secret (default: the {SECRET_ENV} environment variable); "
        "required",
    )
    security.add_argument("--tls-ca", default=None, metavar="FILE", help="CA certificate (PEM)")
    security.add_argument(
        "--tls-cert", default=None, metavar="FILE", help="this worker's certificate (PEM)"
    )
    security.add_argument(
        "--tls-key", default=None, metavar="FILE", help="this worker's private key (PEM)"
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback without TLS (warned about on every start)",
    )
    running = worker.add_argument_group("running")
    running.add_argument(
        "--drain-grace",
        type=float,
        default=DEFAULT_DRAIN_GRACE,
        metavar="SECONDS",
        help="on SIGTERM, how long running calls may finish before they are cancelled "
        "(default %(default)g)",
    )
    running.add_argument(
        "--ready-file",
        default=None,
        metavar="FILE",
        help="once listening, write {id, address, control, pid} as JSON to FILE",
    )
    running.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved configuration as JSON (no secret values) and exit",
    )

    certs = commands.add_parser(
        "certs",
        help="make certificates and a mesh secret",
        description="Make certificates and a mesh secret.",
    )
    certs_commands = certs.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    init = certs_commands.add_parser(
        "init",
        help="write a CA, worker and client certificates and a mesh secret into DIR",
        description=_CERTS_HELP,
        epilog="example:\n  wool certs init certs/ --host host-a --host 10.0.0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("directory", metavar="DIR", type=Path, help="where to write the files")
    init.add_argument(
        "--host",
        action="append",
        default=[],
        help="an extra host name or IP for the worker certificate (repeatable)",
    )
    return parser


def _configure_logging() -> None:
    """One line per event on stderr, for ``logging.getLogger("wool")``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("wool")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _worker(args: argparse.Namespace) -> int:
    config = resolve(
        listen=args.listen,
        worker_id=args.id,
        advertise=args.advertise,
        tags=args.tag,
        seeds=args.join,
        discovery=args.discovery,
        secret_file=args.secret_file,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure=args.insecure,
        drain_grace=args.drain_grace,
        ready_file=args.ready_file,
    )
    if args.dry_run:
        for warning in config.warnings():
            print(f"wool worker: warning: {warning}", file=sys.stderr)
        print(json.dumps(config.describe(), indent=2))
        return 0
    loaded = config.load()
    _configure_logging()
    from wool.worker.process import run_durable  # gRPC is imported only to serve

    return run_durable(loaded)


def _certs_init(args: argparse.Namespace) -> int:
    try:
        from wool import certs
    except ImportError as exc:
        raise WorkerConfigError(f"`wool certs` is not available in this build: {exc}") from exc
    written = certs.init(args.directory, hosts=args.host)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wool`` command; returns its exit status (2 for bad input, as argparse)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "worker":
            return _worker(args)
        return _certs_init(args)
    except WoolError as exc:
        print(f"wool {args.command}: error: {exc}", file=sys.stderr)
        return 2
