"""The ``wool`` package's ``WorkerPool`` arguments: which this mesh honours, which it refuses.

Programs written for that package pass ``worker=``, ``discovery=``,
``loadbalancer=``, ``credentials=``, ``options=``, ``lease=``, ``lazy=``,
``quorum=`` and ``quorum_timeout=``. An argument whose effect this mesh
has is accepted; one asking for something it lacks raises
``wool.UnsupportedArgument`` naming it and saying what to use instead,
before anything starts. Nothing is silently ignored.
"""

from __future__ import annotations

from typing import Any

from wool.errors import UnsupportedArgument

_INSTEAD = {
    "worker": "workers are Wool's own processes; give their tags as positional arguments "
    "and their number as spawn=N (respawn=True replaces workers that die)",
    "loadbalancer": "each call goes to the least-loaded worker; pin or filter calls per "
    "routine with routine.options(worker=..., tags=...)",
    "credentials": "credentials= takes a wool.WorkerCredentials (WorkerCredentials.from_files("
    "ca_path=..., key_path=..., cert_path=...)); every call is also authenticated with the "
    "pool's secret (secret=)",
    "options": "gRPC settings are Wool's own; connect_timeout= bounds connecting to a worker",
    "lease": "lease caps workers found through discovery; give discovery= (a local pool uses "
    "exactly the spawn=N workers it starts, and lease=0 says so and is accepted)",
    "quorum_timeout": "a pool waits for all its workers when it starts; bound that wait "
    "with start_timeout=",
}

_BACKENDS = (
    "a wool discovery backend: wool.LocalDiscovery(namespace), wool.LanDiscovery(), "
    "wool.discovery.DnsDiscovery(name, port) or wool.discovery.SeedDiscovery(addresses)"
)


def check(
    size: int,
    *,
    worker: Any = None,
    discovery: Any = None,
    loadbalancer: Any = None,
    credentials: Any = None,
    options: Any = None,
    lease: int | None = None,
    lazy: bool | None = None,
    quorum: int | None = None,
    quorum_timeout: float | None = None,
) -> None:
    """Refuse what a pool of ``size`` spawned workers (plus ``discovery``) cannot do.

    Accepted: ``discovery`` when it is one of Wool's backends (``size`` 0
    makes the pool durable: it only uses what it finds), ``lease`` (a
    whole number >= 0 capping discovered workers; without discovery only 0),
    ``credentials`` (a ``wool.WorkerCredentials``: spawned workers serve mutual TLS),
    ``lazy`` either way (connections open on the first call, as the
    package's ``lazy=True``; starting waits until every worker is ready, as
    its ``lazy=False``), and ``quorum`` up to ``size`` (met before the first
    call, since starting waits for every worker). Raises
    ``UnsupportedArgument`` (a TypeError) for the rest, ValueError for a
    quorum the pool can never meet or a negative lease.
    """
    if discovery is not None:
        from wool.discovery.base import Discovery

        if not isinstance(discovery, Discovery):
            raise UnsupportedArgument(
                f"WorkerPool(discovery=) takes {_BACKENDS}, not {type(discovery).__name__}"
            )
    if lease is not None:
        if isinstance(lease, bool) or not isinstance(lease, int):
            raise TypeError(f"WorkerPool(lease=) takes a whole number, not {lease!r}")
        if lease < 0:
            raise ValueError(f"WorkerPool(lease={lease}) must be 0 or more")
    durable = discovery is not None and size == 0
    given = {
        "worker": worker is not None,
        "loadbalancer": loadbalancer is not None,
        "credentials": credentials is not None and not _is_credentials(credentials),
        "options": options is not None,
        "lease": discovery is None and lease is not None and lease != 0,
        "quorum_timeout": quorum_timeout is not None,
    }
    refused = [name for name, present in given.items() if present]
    if refused:
        reasons = "; ".join(f"{name}=: {_INSTEAD[name]}" for name in refused)
        names = ", ".join(f"{name}=" for name in refused)
        raise UnsupportedArgument(f"WorkerPool({names}) is not supported yet. {reasons}.")
    if lazy is not None and not isinstance(lazy, bool):
        raise TypeError(f"WorkerPool(lazy=) takes True or False, not {lazy!r}")
    if quorum is not None and not durable and not 0 <= quorum <= size:
        raise ValueError(
            f"WorkerPool(quorum={quorum!r}) can never be met by a pool of {size} local "
            f"worker(s); give a quorum from 0 to {size}, or spawn more workers"
        )


def _is_credentials(value: Any) -> bool:
    try:
        from wool.credentials import WorkerCredentials
    except ImportError:
        return False
    return isinstance(value, WorkerCredentials)
