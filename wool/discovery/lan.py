"""Workers on the local network, announced and found with zeroconf DNS-SD (mDNS).

Needs the ``lan`` extra (``pip install 'wool[lan]'``, which brings
``zeroconf``). Each published worker is a ``_wool._tcp.local.`` service
whose TXT record carries its namespace, id, addresses, pid, tags and
incarnation. Multicast stays inside the link; nothing secret is announced,
and what is found is only a hint until its handshake succeeds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Sequence
from typing import Any, Final

from wool.discovery.base import Discovery
from wool.protocol.frames import PeerRecord

SERVICE: Final = "_wool._tcp.local."


def _zeroconf() -> Any:
    try:
        import zeroconf
    except ImportError:
        raise ImportError(
            "LanDiscovery needs the zeroconf package: pip install 'wool[lan]'"
        ) from None
    return zeroconf


class LanDiscovery(Discovery):
    """Announce and find workers of ``namespace`` on the LAN.

    ``interfaces`` limits the interfaces multicast uses (addresses, e.g.
    ``["127.0.0.1"]``; default all). The first ``find`` listens for up to
    ``wait`` seconds; later ones return at once what has been heard since.
    """

    source = "lan"

    def __init__(
        self,
        namespace: str = "default",
        *,
        interfaces: Sequence[str] | None = None,
        wait: float = 1.0,
    ) -> None:
        zc = _zeroconf()
        if not namespace or any(c in namespace for c in ".\0"):
            raise ValueError(f"LanDiscovery namespace: non-empty, no '.', not {namespace!r}")
        self.namespace = namespace
        self.wait = wait
        self._interfaces = list(interfaces) if interfaces is not None else zc.InterfaceChoice.All
        self._zc: Any = None
        self._browser: Any = None
        self._names: set[str] = set()
        self._published: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._heard = threading.Event()

    def _instance(self) -> Any:
        with self._lock:
            if self._zc is None:
                zc = _zeroconf()
                self._zc = zc.Zeroconf(interfaces=self._interfaces, ip_version=zc.IPVersion.V4Only)
            return self._zc

    def publish(self, record: PeerRecord) -> None:
        zc = _zeroconf()
        host, _, port = record.address.rpartition(":")
        try:
            packed = [ipaddress.ip_address(host.strip("[]")).packed]
        except ValueError:
            packed = []
        info = zc.ServiceInfo(
            SERVICE,
            f"{self.namespace}-{record.id}.{SERVICE}",
            addresses=packed,
            port=int(port),
            properties={
                "ns": self.namespace,
                "id": record.id,
                "address": record.address,
                "control": record.control,
                "pid": str(record.pid),
                "tags": ",".join(record.tags),
                "incarnation": str(record.incarnation),
            },
            server=f"wool-{record.id}.local.",
        )
        instance = self._instance()
        old = self._published.pop(record.id, None)
        if old is not None:
            instance.unregister_service(old)
        instance.register_service(info)
        self._published[record.id] = info

    def unpublish(self, record: PeerRecord) -> None:
        info = self._published.pop(record.id, None)
        if info is not None and self._zc is not None:
            self._zc.unregister_service(info)

    def _listen(self) -> bool:
        """Start browsing if not yet; True when this call started it."""
        zc = _zeroconf()
        instance = self._instance()
        with self._lock:
            if self._browser is not None:
                return False
            owner = self

            class Listener(zc.ServiceListener):  # type: ignore[misc, name-defined, unused-ignore]
                def add_service(self, _zc: Any, _type: str, name: str) -> None:
                    with owner._lock:
                        owner._names.add(name)

                def update_service(self, _zc: Any, _type: str, name: str) -> None:
                    with owner._lock:
                        owner._names.add(name)

                def remove_service(self, _zc: Any, _type: str, name: str) -> None:
                    with owner._lock:
                        owner._names.discard(name)

            self._browser = zc.ServiceBrowser(instance, SERVICE, Listener())
            return True

    def _records(self) -> list[PeerRecord]:
        instance = self._instance()
        with self._lock:
            names = sorted(self._names)
        out: list[PeerRecord] = []
        for name in names:
            info = instance.get_service_info(SERVICE, name, 1000)
            if info is None:
                continue
            record = self._parse(info)
            if record is not None:
                out.append(record)
        return out

    def _parse(self, info: Any) -> PeerRecord | None:
        props = {
            (k.decode() if isinstance(k, bytes) else k): (
                v.decode() if isinstance(v, bytes) else (v or "")
            )
            for k, v in (info.properties or {}).items()
        }
        if props.get("ns") != self.namespace or not props.get("id"):
            return None
        address = props.get("address", "")
        if not address:
            hosts = info.parsed_addresses()
            if not hosts:
                return None
            address = f"{hosts[0]}:{info.port}"
        try:
            pid, incarnation = int(props.get("pid", "0")), int(props.get("incarnation", "0"))
        except ValueError:
            return None
        tags = tuple(t for t in props.get("tags", "").split(",") if t)
        return PeerRecord(
            props["id"], address, pid, tags, props.get("control", ""), incarnation, "lan"
        )

    async def find_records(self) -> list[PeerRecord]:
        started = await asyncio.to_thread(self._listen)
        if started:
            await asyncio.sleep(self.wait)  # mDNS answers arrive over this window
        return await asyncio.to_thread(self._records)

    async def find(self) -> list[str]:
        return [r.address for r in await self.find_records()]

    def close(self) -> None:
        with self._lock:
            zc, self._zc = self._zc, None
            browser, self._browser = self._browser, None
            published, self._published = self._published, {}
        if browser is not None:
            browser.cancel()
        if zc is not None:
            for info in published.values():
                zc.unregister_service(info)
            zc.close()

    def __repr__(self) -> str:
        return f"LanDiscovery({self.namespace!r})"
