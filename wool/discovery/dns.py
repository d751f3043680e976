"""Every address a DNS name resolves to, re-resolved on each find (Kubernetes headless
Services: one A record per ready pod)."""

from __future__ import annotations

import asyncio

from wool.discovery.base import Discovery
from wool.mesh.membership import resolve


class DnsDiscovery(Discovery):
    """The addresses ``name`` resolves to now, each with ``port``."""

    source = "dns"

    def __init__(self, name: str, port: int) -> None:
        if not name or not 0 < int(port) < 65536:
            raise ValueError(f"DnsDiscovery needs a name and a port, not {name!r}:{port!r}")
        self.name = name
        self.port = int(port)

    async def find(self) -> list[str]:
        return await asyncio.to_thread(resolve, f"dns:{self.name}:{self.port}")

    def __repr__(self) -> str:
        return f"DnsDiscovery({self.name!r}, {self.port})"
