"""One shard of a sharded collection, served: its committed state and the writes to it.

A ``Shard`` runs wherever the shard's folder can be read: in the front's own process, or in a
Ray Serve replica (``cluster.serve``). Several replicas of one shard share its folder: writes
take the store's lock and commit atomically, and every call first checks (one ``stat``) whether
another process committed, so a write is served by every replica from the next query on.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus import Document
from index import Embedder, Entry, Index, IndexError_, Store
from index.bm25 import Stats
from index.index import Scored
from service.errors import NotReadyError
from service.pipeline import Update, plan_add, plan_remove, replace_version


@dataclass(frozen=True)
class Catalogue:
    """What the front keeps of a shard: its documents and how many passages they have."""

    version: int
    fingerprint: str
    entries: dict[str, Entry]
    passages: int


class Shard:
    def __init__(
        self, folder: str | Path, model_path: str | Path | None = None, precision: str = "auto"
    ) -> None:
        self.store = Store(folder)
        self.model_path = model_path
        self.precision = precision
        self.embedder = Embedder(model_path, precision=precision)  # loads on the first write only
        self._index: Index | None = None
        self._token: object = None
        self._lock = threading.Lock()

    def current(self) -> Index:
        """The committed state (loaded again when another process committed since)."""
        token = self.store.token()
        index = self._index
        if index is not None and token == self._token:
            return index
        with self._lock:
            if self._index is None or self.store.token() != self._token:
                token = self.store.token()
                try:
                    self._index = self.store.load(self.embedder)
                except IndexError_ as exc:
                    raise NotReadyError(str(exc)) from None
                self._token = token
            return self._index

    # -- reading -------------------------------------------------------------------------

    def version(self) -> int:
        return self.current().version

    def catalogue(self) -> Catalogue:
        index = self.current()
        return Catalogue(index.version, index.fingerprint, index.entries, index.passage_count)

    def stats(self, query: str) -> tuple[int, Stats]:
        """This shard's BM25 statistics for ``query`` (the front adds up all shards')."""
        index = self.current()
        return index.version, index.bm25.stats(query)

    def candidates(
        self, query: str, n: int, only: Collection[str] | None, qvec: np.ndarray, stats: Stats
    ) -> tuple[int, list[Scored], list[Scored]]:
        """``Index.candidates`` with the query's embedding and the collection's statistics."""
        index = self.current()
        dense, sparse = index.candidates(query, n, only, qvec, stats)
        return index.version, dense, sparse

    # -- writing -------------------------------------------------------------------------

    def _commit(self, plan: tuple[object, Update], base: Index) -> Update:
        change, update = plan
        with self._lock:
            index = base.updated(change, self.embedder)  # type: ignore[arg-type]
            self.store.commit(index)
            self._index, self._token = index, self.store.token()
        return replace_version(update, index.version)

    def add(self, documents: Sequence[Document], replace: bool) -> Update:
        """Add (or with ``replace``, replace) documents that belong to this shard."""
        with self.store.locked():
            base = self.current()
            return self._commit(plan_add(base, documents, replace), base)

    def remove(self, doc_ids: Sequence[str]) -> Update:
        with self.store.locked():
            base = self.current()
            return self._commit(plan_remove(base, doc_ids), base)
