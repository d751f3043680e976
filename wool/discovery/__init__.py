"""Discovery backends: how a pool or a worker finds workers it did not start.

One interface (``Discovery``): ``publish``/``unpublish`` a worker's record,
``find()`` the addresses known now. What discovery returns is a hint, never
trust: callers use an address only after its handshake (the mesh secret,
and TLS when credentials are set) succeeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wool.discovery.base import Discovery
from wool.discovery.dns import DnsDiscovery
from wool.discovery.local import LocalDiscovery
from wool.discovery.seeds import SeedDiscovery

if TYPE_CHECKING:
    from wool.discovery.lan import LanDiscovery

__all__ = ["Discovery", "DnsDiscovery", "LanDiscovery", "LocalDiscovery", "SeedDiscovery"]


def __getattr__(name: str) -> Any:
    if name == "LanDiscovery":  # zeroconf is an extra (pip install wool[lan])
        from wool.discovery.lan import LanDiscovery

        return LanDiscovery
    raise AttributeError(f"module 'wool.discovery' has no attribute {name!r}")
