"""A fixed list of addresses: the simplest discovery."""

from __future__ import annotations

from collections.abc import Iterable

from wool.discovery.base import Discovery


class SeedDiscovery(Discovery):
    """The ``host:port`` addresses given, as they are (``dns:`` seeds: ``DnsDiscovery``)."""

    source = "seed"

    def __init__(self, addresses: Iterable[str]) -> None:
        self.addresses = list(addresses)
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"a seed is host:port, not {address!r}")

    async def find(self) -> list[str]:
        return list(self.addresses)

    def __repr__(self) -> str:
        return f"SeedDiscovery({self.addresses!r})"
