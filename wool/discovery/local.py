"""Workers on this host, found through files in a per-user runtime directory.

``LocalDiscovery("ns")`` keeps one file per published worker under
``$XDG_RUNTIME_DIR/wool/ns`` (or ``/tmp/wool-$UID/ns`` without it): the
worker's record as JSON with its pid. A file whose pid is no longer running
is stale: ``find`` skips it and removes it. The directories are created
0700 and must belong to this user, so other users can neither read the
addresses nor plant their own. Nothing secret is written: a pool still
needs the mesh secret to use what it finds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import tempfile
from pathlib import Path

from wool.discovery.base import Discovery
from wool.protocol.frames import PeerRecord

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def runtime_dir() -> Path:
    """This user's directory for Wool's discovery files (created 0700 if missing)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        base = Path(xdg) / "wool"
    else:
        base = Path(tempfile.gettempdir()) / f"wool-{os.getuid()}"
    _private_dir(base)
    return base


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=False, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by this user; refusing to use it")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _to_json(record: PeerRecord) -> str:
    return json.dumps(
        {
            "id": record.id,
            "address": record.address,
            "control": record.control,
            "pid": record.pid,
            "tags": list(record.tags),
            "incarnation": record.incarnation,
        }
    )


def _from_json(text: str) -> PeerRecord:
    d = json.loads(text)
    tags = d.get("tags", [])
    if not isinstance(d["id"], str) or not isinstance(d["address"], str):
        raise ValueError("id and address must be strings")
    if not isinstance(d["pid"], int) or not all(isinstance(t, str) for t in tags):
        raise ValueError("pid must be an int and tags strings")
    return PeerRecord(
        d["id"],
        d["address"],
        d["pid"],
        tuple(tags),
        str(d.get("control", "")),
        int(d.get("incarnation", 0)),
        "local",
    )


class LocalDiscovery(Discovery):
    """Publish and find workers of ``namespace`` on this host, across processes."""

    source = "local"

    def __init__(self, namespace: str = "default") -> None:
        if not isinstance(namespace, str) or not _NAME.match(namespace):
            raise ValueError(
                f"LocalDiscovery namespace must be letters, digits, '.', '_' or '-' "
                f"(up to 128), not {namespace!r}"
            )
        self.namespace = namespace
        self._dir: Path | None = None

    @property
    def directory(self) -> Path:
        if self._dir is None:
            path = runtime_dir() / self.namespace
            _private_dir(path)
            self._dir = path
        return self._dir

    def _file(self, record: PeerRecord) -> Path:
        if not _NAME.match(record.id):
            raise ValueError(f"cannot publish a worker id like {record.id!r}")
        return self.directory / f"{record.id}.json"

    def publish(self, record: PeerRecord) -> None:
        target = self._file(record)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(_to_json(record))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def unpublish(self, record: PeerRecord) -> None:
        path = self._file(record)
        try:
            if _from_json(path.read_text()).pid == record.pid:
                path.unlink(missing_ok=True)
        except (OSError, ValueError, KeyError):
            pass

    def records_now(self) -> list[PeerRecord]:
        """The live records in the namespace; stale files (dead pid) are removed."""
        found: list[PeerRecord] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                record = _from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not _pid_alive(record.pid):
                path.unlink(missing_ok=True)
                continue
            found.append(record)
        return found

    async def find_records(self) -> list[PeerRecord]:
        return await asyncio.to_thread(self.records_now)

    async def find(self) -> list[str]:
        return [r.address for r in await self.find_records()]

    def __repr__(self) -> str:
        return f"LocalDiscovery({self.namespace!r})"
