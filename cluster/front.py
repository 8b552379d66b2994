"""The front of a sharded collection: one question asked of every shard, answered as one.

``ClusterPipeline`` is the ``Pipeline`` the HTTP app, the chat endpoint, MCP and the CLI already
use, with the collection replaced by shards behind ``ShardClient``s: in-process ``Shard``s
(``LocalShards``) or Ray Serve deployments (``cluster.serve``). A query costs two rounds: every
shard's BM25 statistics for it, then every shard's candidates scored with their sum and the one
query embedding; ``index.merge_candidates`` fuses them as ``Index.search`` would over one
collection of all the documents. A shard that does not answer fails the query with 503 and
``Retry-After``: an answer is never computed without one of the shards.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cluster.layout import Layout
from cluster.shard import Catalogue, Shard
from corpus import Document, Passage
from index import Embedder, Entry, FaissIndex, Hit, Index, IndexError_, merge_candidates, shard_of
from index.bm25 import BM25Index
from index.index import RRF_K
from service.errors import CiteqaError, NotFoundError, NotReadyError
from service.pipeline import NO_FILTER, AskResult, Filter, Pipeline, Update, plan_add

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5
SHARD_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 600.0


class ShardUnavailableError(NotReadyError):
    """A shard did not answer (its replica died, or the cluster is busy): ask again soon."""

    retry_after = RETRY_AFTER_S


class Pending(Protocol):
    def result(self, timeout_s: float | None = None) -> Any: ...


class ShardClient(Protocol):
    """Calls one shard's ``Shard`` methods by name; the answer comes with ``result()``."""

    def call(self, method: str, *args: Any) -> Pending: ...


@dataclass
class _Done:
    value: Any = None
    error: BaseException | None = None

    def result(self, timeout_s: float | None = None) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class LocalShard:
    """A shard in this process (a sharded folder served without Ray, and tests)."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def call(self, method: str, *args: Any) -> Pending:
        try:
            return _Done(getattr(self.shard, method)(*args))
        except CiteqaError as exc:
            return _Done(error=exc)


def local_shards(
    folder: str | Path, model_path: str | Path | None = None, precision: str = "auto"
) -> list[LocalShard]:
    try:
        layout = Layout.load(folder)
    except IndexError_ as exc:
        raise NotReadyError(str(exc)) from None
    return [LocalShard(Shard(f, model_path, precision)) for f in layout.folders]


def gather(pendings: Sequence[Pending], timeout_s: float = SHARD_TIMEOUT_S) -> list[Any]:
    """Every shard's answer, or ``ShardUnavailableError`` (503) when one did not give one.

    The service's own errors (404, 409, 422) pass through as they are."""
    out = []
    for i, pending in enumerate(pendings):
        try:
            out.append(pending.result(timeout_s=timeout_s))
        except CiteqaError:
            raise
        except Exception as exc:  # a dead replica, a timeout, a lost node: Ray's errors vary
            log.warning("shard %d did not answer: %s: %s", i, type(exc).__name__, exc)
            raise ShardUnavailableError(
                f"shard {i} of {len(pendings)} is not available ({type(exc).__name__}); "
                f"ask again in {RETRY_AFTER_S} s"
            ) from None
    return out


class _Moved(Exception):
    """A shard committed a change between two rounds of one query: ask again."""


class ShardedIndex(Index):
    """The front's view of a sharded collection: every shard's documents (no passages, vectors
    or BM25 postings: those stay on the shards), and search by asking the shards.

    Like ``Index``, one immutable state: ``versions`` are the shard versions it was made of,
    and a search that meets another version raises ``_Moved``.
    """

    def __init__(self, shards: Sequence[ShardClient], parts: Sequence[Catalogue], embedder: Embedder) -> None:
        entries: dict[str, Entry] = {}
        for part in parts:
            entries.update(part.entries)
        digest = hashlib.sha256("".join(p.fingerprint for p in parts).encode()).hexdigest()[:16]
        manifest = {
            "fingerprint": digest,
            "version": sum(p.version for p in parts),
            "shards": [{"version": p.version, "fingerprint": p.fingerprint} for p in parts],
            "corpus": {"documents": len(entries), "passages": sum(p.passages for p in parts)},
            "fusion": {"method": "rrf", "k": RRF_K},
        }
        super().__init__(entries, {}, FaissIndex(1), BM25Index(), embedder, manifest)
        self.shards = list(shards)
        self.parts = list(parts)
        self.versions = [p.version for p in parts]

    @property
    def passage_count(self) -> int:
        return int(self.manifest["corpus"]["passages"])

    @property
    def passages(self) -> list[Passage]:
        raise NotImplementedError("the passages of a sharded collection stay on its shards")

    def passage(self, passage_id: str) -> Passage | None:
        return None  # AskResult finds the passages it read among its hits

    def search(
        self, query: str, k: int = 5, candidates: int = 50, only: Collection[str] | None = None
    ) -> list[Hit]:
        if not query.strip() or k <= 0 or not self.passage_count:
            return []
        n = max(candidates, k)
        # round 1: the collection's BM25 statistics, while the query is embedded here
        pending = [s.call("stats", query) for s in self.shards]
        qvec = self.embedder.encode([query])
        answers = gather(pending)
        self._check([v for v, _ in answers])
        stats = answers[0][1]
        for _, more in answers[1:]:
            stats = stats + more
        # round 2: each shard's candidates; a filter sends each shard only its own documents
        # (routed by the same hash that placed them: no lookup in every shard's catalogue)
        owners: list[list[str] | None] = [None] * len(self.shards)
        if only is not None:
            owned: list[list[str]] = [[] for _ in self.shards]
            for doc_id in only:
                owned[shard_of(doc_id, len(self.shards))].append(doc_id)
            owners = list(owned)
        asked = [i for i in range(len(self.shards)) if owners[i] is None or owners[i]]
        answers = gather([self.shards[i].call("candidates", query, n, owners[i], qvec, stats) for i in asked])
        self._check([v for v, _, _ in answers], asked)
        return merge_candidates([(d, b) for _, d, b in answers], n, k)

    def _check(self, versions: Sequence[int], which: Sequence[int] | None = None) -> None:
        which = range(len(self.shards)) if which is None else which
        if any(self.versions[i] != v for i, v in zip(which, versions)):
            raise _Moved()

    def updated(self, *args: Any, **kwargs: Any) -> Index:
        raise NotImplementedError("a sharded collection changes shard by shard (ClusterPipeline)")


class ClusterPipeline(Pipeline):
    """``Pipeline`` over shards: reads fan out, writes go to the shard that owns the document.

    The reader and the query embedder run here, at the front; the shards hold the passages,
    vectors and BM25 postings. The front keeps each shard's catalogue (its documents) and asks
    the shards for their versions at most every ``RELOAD_CHECK_S``, so a change committed by
    another front or by ``citeqa add`` is served within that time; its own writes at once.
    """

    def __init__(self, shards: Sequence[ShardClient], index_dir: str | Path = "", **kwargs: Any) -> None:
        kwargs.setdefault("documents", [])
        super().__init__(corpus_dir=index_dir, index_dir=index_dir, **kwargs)
        self.shards = list(shards)
        self.index: ShardedIndex | None = None  # type: ignore[assignment]
        self._refresh_lock = threading.Lock()

    # -- the collection ------------------------------------------------------------------

    def refresh(self, force: bool = False) -> ShardedIndex:
        """Fetch the catalogue of every shard whose version changed (all of them the first time)."""
        with self._refresh_lock:
            old = self.index
            if old is None:
                parts = gather([s.call("catalogue") for s in self.shards])
            else:
                versions = gather([s.call("version") for s in self.shards])
                stale = [i for i, v in enumerate(versions) if force or v != old.versions[i]]
                if not stale:
                    self._checked = time.monotonic()
                    return old
                fresh = gather([self.shards[i].call("catalogue") for i in stale])
                parts = list(old.parts)
                for i, part in zip(stale, fresh):
                    parts[i] = part
            self.index = ShardedIndex(self.shards, parts, self.embedder)
            self._checked = time.monotonic()
            return self.index

    def warm_up(
        self, build_if_needed: bool = False, load_reader: bool = True, show_progress: bool = False
    ) -> None:
        self.refresh()
        self.warm_models(load_reader)

    def build(self, show_progress: bool = False) -> Index:
        raise NotReadyError("a sharded collection is built by `citeqa index --shards N`")

    def current(self) -> ShardedIndex | None:  # type: ignore[override]
        if self.index is None:
            return None
        if time.monotonic() - self._checked >= self.RELOAD_CHECK_S:
            return self.refresh()
        return self.index

    def _retrying(self, ask: Callable[[], AskResult]) -> AskResult:
        for _ in range(3):
            try:
                return ask()
            except _Moved:
                self.refresh()
        raise ShardUnavailableError("the collection kept changing during the question; ask again")

    def search(self, query: str, top_k: int = 5, only: Filter = NO_FILTER) -> AskResult:
        return self._retrying(lambda: super(ClusterPipeline, self).search(query, top_k, only))

    def ask(
        self,
        question: str,
        top_k: int = 3,
        retrieve_k: int | None = None,
        query: str | None = None,
        only: Filter = NO_FILTER,
    ) -> AskResult:
        return self._retrying(
            lambda: super(ClusterPipeline, self).ask(question, top_k, retrieve_k, query, only)
        )

    # -- writes --------------------------------------------------------------------------

    def _owner(self, doc_id: str) -> int:
        return shard_of(doc_id, len(self.shards))

    def add_documents(
        self, documents: list[Document], replace: bool = True, show_progress: bool = False
    ) -> Update:
        """Each document goes to the shard that owns it; each shard commits its own atomically.

        What would refuse the batch (an id given twice; with ``replace`` False, an id that
        exists) is checked across every shard first: a shard refusing its part after another
        committed left half of the batch added."""
        plan_add(self.refresh(), documents, replace)  # raises what one index would raise
        groups: dict[int, list[Document]] = {}
        for doc in documents:
            groups.setdefault(self._owner(doc.doc_id), []).append(doc)
        try:
            updates: list[Update] = gather(
                [self.shards[i].call("add", docs, replace) for i, docs in sorted(groups.items())],
                timeout_s=WRITE_TIMEOUT_S,  # embedding a large upload takes a while
            )
        finally:
            index = self.refresh()
        return Update(
            index.version,
            added=[d for u in updates for d in u.added],
            replaced=[d for u in updates for d in u.replaced],
            unchanged=[d for u in updates for d in u.unchanged],
        )

    def remove_documents(self, doc_ids: list[str]) -> Update:
        index = self.refresh()  # another front may have added it a moment ago
        missing = [d for d in doc_ids if d not in index.entries]
        if missing:
            raise NotFoundError(f"unknown document id: {missing[0]!r}")
        groups: dict[int, list[str]] = {}
        for doc_id in doc_ids:
            groups.setdefault(self._owner(doc_id), []).append(doc_id)
        try:
            gather([self.shards[i].call("remove", ids) for i, ids in sorted(groups.items())])
        finally:
            index = self.refresh()
        return Update(index.version, removed=list(doc_ids))
