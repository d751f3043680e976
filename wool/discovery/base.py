"""The interface every discovery backend implements."""

from __future__ import annotations

from typing import ClassVar

from wool.protocol.frames import PeerRecord


class Discovery:
    """Publishes workers and finds them.

    ``find()`` returns the addresses known now; ``find_records()`` the
    records behind them where the backend carries more than an address
    (local files and LAN announcements do), each tagged with ``source``.
    Neither is trusted: a pool verifies every address with a handshake
    before it sends it a call. Backends that only find (seeds, DNS) accept
    ``publish`` and ``unpublish`` and do nothing.
    """

    source: ClassVar[str] = "discovery"

    def publish(self, record: PeerRecord) -> None:
        """Announce a worker this process runs; replaces an earlier record of its id."""

    def unpublish(self, record: PeerRecord) -> None:
        """Withdraw a record this process published; a missing one is not an error."""

    async def find(self) -> list[str]:
        """The addresses of the workers known now (dispatch addresses)."""
        return [r.address for r in await self.find_records()]

    async def find_records(self) -> list[PeerRecord]:
        """What is known of each worker now; by default only its address."""
        return [PeerRecord("", a, 0, source=self.source) for a in await self.find()]

    def close(self) -> None:
        """Release what the backend holds (sockets, threads); it may not be used after."""
