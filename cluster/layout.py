"""Where the shards of a sharded index folder are.

Layout::

    SHARDS.json             {"format": 1, "shards": ["shard-000", "shard-001"], ...}
    shard-000/              a collection folder like any other (index.store.Store)
    shard-001/

A document belongs to shard ``index.shard_of(doc_id, n)``. ``SHARDS.json`` is written last, by
a flushed rename, once every shard is committed: a folder without it is not sharded (yet).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.index import REBUILD_HINT, IndexError_, shard_of
from index.store import _write_durably

SHARDS_FILE = "SHARDS.json"
FORMAT = 1


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Refuse (``ConnectionError``) a Ray address where nothing listens: ``ray.init`` would
    wait for it for minutes. ``auto`` (the cluster this machine belongs to) is Ray's to find."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(f"--ray {address!r}: give the head node as HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray cluster answers at {address} ({exc.strerror or exc})") from None


def is_sharded(folder: str | Path) -> bool:
    return (Path(folder) / SHARDS_FILE).is_file()


@dataclass(frozen=True)
class Layout:
    """The shard folders of a sharded index folder, in shard order."""

    folder: Path
    names: tuple[str, ...]

    @classmethod
    def new(cls, folder: str | Path, shards: int) -> Layout:
        if shards < 1:
            raise ValueError("a collection needs at least one shard")
        return cls(Path(folder), tuple(f"shard-{i:03d}" for i in range(shards)))

    @classmethod
    def load(cls, folder: str | Path) -> Layout:
        path = Path(folder) / SHARDS_FILE
        try:
            raw = json.loads(path.read_text())
            names = tuple(str(n) for n in raw["shards"])
            if raw.get("format") != FORMAT or not names or any("/" in n or n.startswith(".") for n in names):
                raise ValueError(f"format {raw.get('format')}, shards {names}")
        except FileNotFoundError:
            raise IndexError_(f"no sharded index at {folder}: run `citeqa index --shards N`") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexError_(f"{path} is damaged ({exc}): {REBUILD_HINT}") from None
        return cls(Path(folder), names)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def folders(self) -> list[Path]:
        return [self.folder / name for name in self.names]

    def owner(self, doc_id: str) -> int:
        """The shard that holds (or will hold) ``doc_id``."""
        return shard_of(doc_id, self.count)

    def commit(self, extra: dict[str, Any] | None = None) -> None:
        """Name the shards (call once each of them is committed)."""
        body = {"format": FORMAT, "shards": list(self.names), "routing": "sha256(doc_id) mod shards"}
        body |= extra or {}
        body["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_durably(self.folder / SHARDS_FILE, (json.dumps(body, indent=2) + "\n").encode())
