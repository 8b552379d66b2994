"""The hybrid index: passages + FAISS + BM25, fused by reciprocal rank fusion.

An ``Index`` is one immutable state of a collection: its documents, their passages, and the
dense and sparse indexes over them. ``Index.updated`` derives the next state, chunking and
embedding only the documents that are new or changed. Saving and loading states durably is
``index.store``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any, TypeVar

import numpy as np

from corpus import ChunkParams, Document, Passage, chunk_corpus
from index.bm25 import BM25Index, Stats
from index.dense import FaissIndex
from index.embedder import Embedder

FORMAT_VERSION = 2
RRF_K = 60
REBUILD_HINT = "run `citeqa index` to rebuild it"


class IndexError_(RuntimeError):
    """The index folder is missing or unreadable."""


class StaleIndexError(IndexError_):
    """The saved index does not match the corpus, the model or the chunking asked for."""


@dataclass(frozen=True)
class Hit:
    """One retrieved passage: fused score and the ranks/scores from each retriever (-1: absent)."""

    passage: Passage
    score: float
    dense_score: float
    dense_rank: int
    bm25_score: float
    bm25_rank: int


T = TypeVar("T", bound=Hashable)


def rrf_fuse(
    rankings: Sequence[Sequence[T]], k: int = RRF_K, tie: Callable[[T], Any] | None = None
) -> list[tuple[T, float]]:
    """Reciprocal rank fusion: sum of 1/(k + rank) over rankings (rank from 1), best first.

    Ties are broken by ``tie(item)`` (default: the item itself).
    """
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    tie = tie or (lambda item: item)
    return sorted(scores.items(), key=lambda kv: (-kv[1], tie(kv[0])))


Scored = tuple[Passage, float]
Embedded = tuple[Sequence[Passage], np.ndarray]  # a document's passages and their vectors


def _ranked(scored: Iterable[Scored], n: int | None = None) -> list[Scored]:
    """Best first; equal scores by passage id, so that the candidates of every layout of a
    collection (built at once, built incrementally, split into shards) rank alike. Which of
    several passages tied at the candidate cut-off get in still follows each index's own order."""
    return sorted(scored, key=lambda ps: (-ps[1], ps[0].passage_id))[:n]


def fuse(dense: Sequence[Scored], sparse: Sequence[Scored], k: int) -> list[Hit]:
    """The ``k`` best passages by reciprocal rank fusion of two rankings (ties by passage id)."""
    dense_at = {p.passage_id: (r, s) for r, (p, s) in enumerate(dense, start=1)}
    sparse_at = {p.passage_id: (r, s) for r, (p, s) in enumerate(sparse, start=1)}
    by_id = {p.passage_id: p for p, _ in [*dense, *sparse]}
    fused = rrf_fuse([[p.passage_id for p, _ in dense], [p.passage_id for p, _ in sparse]])
    hits = []
    for pid, score in fused[:k]:
        dr, ds = dense_at.get(pid, (-1, 0.0))
        br, bs = sparse_at.get(pid, (-1, 0.0))
        hits.append(Hit(by_id[pid], score, ds, dr, bs, br))
    return hits


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document belongs to: a stable hash of its id (the same in every process and
    on every machine, unlike Python's ``hash``)."""
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big") % shards


def search_shards(
    shards: Sequence[Index], query: str, k: int = 5, candidates: int = 50, only: Collection[str] | None = None
) -> list[Hit]:
    """``Index.search`` over a collection split into ``shards`` (each an ``Index`` of some of its
    documents): the query is embedded once, each shard scores BM25 with the statistics of all of
    them, each returns its ``candidates`` best of both kinds, and the merged lists are fused.
    Over exact dense indexes this returns what one ``Index`` of all the documents returns.
    (``cluster`` does the same with shards in other processes.)"""
    if not query.strip() or k <= 0 or not any(shard.by_key for shard in shards):
        return []
    n = max(candidates, k)
    stats = shards[0].bm25.stats(query)
    for shard in shards[1:]:
        stats = stats + shard.bm25.stats(query)
    qvec = shards[0].embedder.encode([query])
    return merge_candidates([shard.candidates(query, n, only, qvec, stats) for shard in shards], n, k)


def merge_candidates(parts: Iterable[tuple[Sequence[Scored], Sequence[Scored]]], n: int, k: int) -> list[Hit]:
    """The ``k`` best passages of several shards' ``Index.candidates`` (``n`` of each kind)."""
    parts = list(parts)
    # a passage id found in two shards (a document routed twice) counts once
    dense = _ranked({p.passage_id: (p, s) for d, _ in parts for p, s in d}.values(), n)
    sparse = _ranked({p.passage_id: (p, s) for _, b in parts for p, s in b}.values(), n)
    return fuse(dense, sparse, k)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("citeqa", "faiss-cpu", "sentence-transformers", "bm25s", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


ORIGINS = ("corpus", "added")


@dataclass(frozen=True)
class Entry:
    """A document of the collection, where it came from, and the keys of its passages.

    ``origin`` is ``"corpus"`` for a file of the corpus folder and ``"added"`` for one added
    through the API or ``citeqa add``.
    """

    document: Document
    origin: str
    keys: tuple[int, ...]
    sha256: str = ""

    @property
    def doc_id(self) -> str:
        return self.document.doc_id


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def collection_fingerprint(entries: Iterable[Entry]) -> str:
    """A hash of every doc id and text: any added, removed or edited document changes it."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.doc_id):
        h.update(e.doc_id.encode("utf-8") + b"\0" + e.sha256.encode() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Change:
    """Documents to add or replace (``add``, with their origin) and doc ids to remove."""

    add: tuple[tuple[Document, str], ...] = ()
    remove: tuple[str, ...] = ()
    corpus_seen: dict[str, str] | None = None  # the corpus folder's state after this change


class Index:
    """One state of the collection; ``search`` fuses the dense and BM25 rankings.

    Treat it as immutable: ``updated`` returns a new state and leaves this one untouched, so
    a query that started on it finishes on it.
    """

    def __init__(
        self,
        entries: dict[str, Entry],
        passages: dict[int, Passage],
        dense: FaissIndex,
        bm25: BM25Index,
        embedder: Embedder,
        manifest: dict[str, Any],
        corpus_seen: dict[str, str] | None = None,
    ) -> None:
        self.entries = entries
        self.by_key = passages
        self.dense = dense
        self.bm25 = bm25
        self.embedder = embedder
        self.manifest = manifest
        self.corpus_seen = dict(corpus_seen or {})  # corpus folder doc id -> text sha256, as last synced
        self._by_id = {p.passage_id: p for p in passages.values()}

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def version(self) -> int:
        return int(self.manifest.get("version", 0))

    @property
    def passages(self) -> list[Passage]:
        return list(self.by_key.values())

    @property
    def passage_count(self) -> int:
        return len(self.by_key)

    @property
    def documents(self) -> dict[str, Document]:
        return {doc_id: e.document for doc_id, e in self.entries.items()}

    def document(self, doc_id: str) -> Document | None:
        e = self.entries.get(doc_id)
        return e.document if e else None

    def title(self, doc_id: str) -> str:
        e = self.entries.get(doc_id)
        return e.document.title if e else ""

    def passage(self, passage_id: str) -> Passage | None:
        return self._by_id.get(passage_id)

    def search(
        self, query: str, k: int = 5, candidates: int = 50, only: Collection[str] | None = None
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``; with ``only``, the best of those documents'
        passages (the filter applies before ranking, so ``k`` of them come back if they exist)."""
        if not query.strip() or k <= 0:
            return []
        dense, sparse = self.candidates(query, max(candidates, k), only)  # embeds only if needed
        return fuse(dense, sparse, k)

    def candidates(
        self,
        query: str,
        n: int,
        only: Collection[str] | None = None,
        qvec: np.ndarray | None = None,
        stats: Stats | None = None,
    ) -> tuple[list[Scored], list[Scored]]:
        """The ``n`` best passages by dense similarity to ``qvec`` (the query's embedding) and
        the ``n`` best by BM25, each best first, ties by passage id. ``stats``: BM25 statistics
        of the whole collection when this state is one shard of it."""
        allowed = None
        if only is not None:
            keys = (key for d in only if d in self.entries for key in self.entries[d].keys)
            allowed = np.unique(np.fromiter(keys, np.int64))
        n = min(n, len(self.by_key) if allowed is None else len(allowed))
        if n <= 0:
            return [], []
        if qvec is None:
            qvec = self.embedder.encode([query])
        dscores, dids = self.dense.search(qvec, n, allowed)
        dense = [(self.by_key[int(i)], float(s)) for i, s in zip(dids[0], dscores[0]) if i >= 0]
        bscores, bids = self.bm25.search(query, n, allowed, stats)
        sparse = [(self.by_key[int(i)], float(s)) for i, s in zip(bids, bscores)]
        return _ranked(dense), _ranked(sparse)

    def updated(self, change: Change, embedder: Embedder | None = None, show_progress: bool = False) -> Index:
        """The state after ``change``: only added documents are chunked and embedded.

        A document in ``change.add`` whose id exists replaces it; one whose text and title are
        unchanged keeps its passages (only its origin and metadata are updated). Unknown ids in
        ``change.remove`` are ignored. ``embedder`` (default: this state's) embeds the new
        passages and serves the new state.
        """
        embedder = embedder or self.embedder
        params = ChunkParams(**self.manifest["chunking"])
        drop: set[str] = {d for d in change.remove if d in self.entries}
        retag: dict[str, tuple[Document, str]] = {}
        new: list[tuple[Document, str]] = []
        for doc, origin in change.add:
            old = self.entries.get(doc.doc_id)
            if old and old.document.text == doc.text and old.document.title == doc.title:
                if old.origin != origin or old.document.metadata != doc.metadata:
                    retag[doc.doc_id] = (doc, origin)  # same text: nothing to re-embed
                drop.discard(doc.doc_id)
                continue
            if old:
                drop.add(doc.doc_id)
            new.append((doc, origin))
        gone = [k for d in drop for k in self.entries[d].keys]
        dense, bm25 = self.dense.copy(), self.bm25.copy()
        dense.remove(np.asarray(gone, dtype=np.int64))
        bm25.remove(gone)
        passages = {k: p for k, p in self.by_key.items() if p.doc_id not in drop}
        entries = {d: e for d, e in self.entries.items() if d not in drop}
        for d, (doc, origin) in retag.items():
            entries[d] = replace(entries[d], document=doc, origin=origin)
        next_key = int(self.manifest["next_key"])
        added = _index_documents(new, dense, bm25, embedder, params, next_key, show_progress=show_progress)
        for entry, doc_passages in added:
            entries[entry.doc_id] = entry
            passages.update(doc_passages)
        next_key += sum(len(dp) for _, dp in added)
        dense = dense.fit()
        seen = self.corpus_seen if change.corpus_seen is None else change.corpus_seen
        manifest = _manifest(entries, embedder, params, dense, next_key)
        manifest["version"] = self.version
        return Index(entries, dict(sorted(passages.items())), dense, bm25, embedder, manifest, seen)


def _index_documents(
    docs: Sequence[tuple[Document, str]],
    dense: FaissIndex,
    bm25: BM25Index,
    embedder: Embedder,
    params: ChunkParams,
    next_key: int,
    show_progress: bool = False,
    embedded: Mapping[str, Embedded] | None = None,
) -> list[tuple[Entry, dict[int, Passage]]]:
    """Chunk and embed ``docs`` into ``dense`` and ``bm25`` under keys from ``next_key`` on
    (a document in ``embedded`` brings its passages and their vectors, computed elsewhere)."""
    out = []
    all_passages: list[Passage] = []
    keys: list[int] = []
    given: list[np.ndarray] = []
    todo: list[int] = []  # positions in all_passages still to embed
    for doc, origin in docs:
        if origin not in ORIGINS:
            raise ValueError(f"unknown origin {origin!r}")
        done = embedded.get(doc.doc_id) if embedded is not None else None
        ps = list(done[0]) if done is not None else chunk_corpus([doc], params)
        if done is not None:
            if len(done[1]) != len(ps):
                raise ValueError(f"{doc.doc_id!r}: {len(ps)} passages but {len(done[1])} vectors")
            given.extend(done[1])
        else:
            todo.extend(range(len(all_passages), len(all_passages) + len(ps)))
        ks = list(range(next_key, next_key + len(ps)))
        next_key += len(ps)
        out.append((Entry(doc, origin, tuple(ks), text_sha256(doc.text)), dict(zip(ks, ps))))
        all_passages.extend(ps)
        keys.extend(ks)
    if all_passages:
        texts = [p.search_text for p in all_passages]
        if not todo:
            vectors = np.stack(given).astype(np.float32, copy=False)
        else:
            fresh = embedder.encode([texts[i] for i in todo], show_progress=show_progress)
            vectors = np.empty((len(texts), fresh.shape[1]), dtype=np.float32)
            mask = np.ones(len(texts), dtype=bool)
            mask[todo] = False
            vectors[todo] = fresh
            if given:
                vectors[mask] = np.stack(given)
        dense.add(vectors, np.asarray(keys, dtype=np.int64))
        bm25.add(keys, texts)
    return out


def _manifest(
    entries: dict[str, Entry], embedder: Embedder, params: ChunkParams, dense: FaissIndex, next_key: int
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": {"name": embedder.name, "fingerprint": embedder.fingerprint, "dimension": dense.dimension},
        "chunking": params.as_dict(),
        "corpus": {
            "fingerprint": collection_fingerprint(entries.values()),
            "documents": len(entries),
            "passages": sum(len(e.keys) for e in entries.values()),
        },
        "dense": dense.kind,
        "bm25": BM25Index.params,
        "fusion": {"method": "rrf", "k": RRF_K},
        "versions": _versions(),
        "next_key": next_key,
    }
    manifest["fingerprint"] = _fingerprint(manifest)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return manifest


def build_index(
    documents: list[Document],
    embedder: Embedder,
    params: ChunkParams = ChunkParams(),
    show_progress: bool = False,
    origin: str | dict[str, str] = "corpus",
    corpus_seen: dict[str, str] | None = None,
    embedded: Mapping[str, Embedded] | None = None,
) -> Index:
    """Chunk, embed and index ``documents`` from scratch (``origin``: one for all, or per doc id;
    ``embedded``: passages and vectors of some documents, computed elsewhere, by doc id)."""
    origins = origin if isinstance(origin, dict) else {d.doc_id: origin for d in documents}
    given = [v for _, v in (embedded or {}).values() if len(v)]
    # vectors computed elsewhere give the dimension without loading the model here
    dense = FaissIndex(given[0].shape[1] if given else embedder.dimension)
    bm25 = BM25Index()
    pairs = [(d, origins[d.doc_id]) for d in sorted(documents, key=lambda d: d.doc_id)]
    if len({d.doc_id for d, _ in pairs}) != len(pairs):
        raise ValueError("duplicate document ids")
    added = _index_documents(pairs, dense, bm25, embedder, params, 0, show_progress, embedded)
    dense = dense.fit()
    entries = {e.doc_id: e for e, _ in added}
    passages = {k: p for _, ps in added for k, p in ps.items()}
    if corpus_seen is None:
        corpus_seen = {e.doc_id: e.sha256 for e in entries.values() if e.origin == "corpus"}
    manifest = _manifest(entries, embedder, params, dense, len(passages))
    return Index(entries, passages, dense, bm25, embedder, manifest, corpus_seen)


def _fingerprint(manifest: dict[str, Any]) -> str:
    body = json.dumps({k: manifest[k] for k in ("model", "chunking", "corpus")}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def incompatibilities(manifest: dict[str, Any], embedder: Embedder, params: ChunkParams) -> list[str]:
    """Why a saved state cannot be reused with this model and chunking (empty: it can)."""
    out = []
    if manifest.get("format") != FORMAT_VERSION:
        out.append(f"format {manifest.get('format')} != {FORMAT_VERSION}")
    if manifest.get("model", {}).get("fingerprint") != embedder.fingerprint:
        out.append(f"model {manifest.get('model', {}).get('name')!r} differs from {embedder.name!r}")
    if manifest.get("chunking") != params.as_dict():
        out.append(f"chunking {manifest.get('chunking')} != {params.as_dict()}")
    return out


def vectors_of(index: Index) -> np.ndarray:
    """All stored vectors in key order (for tests and diagnostics)."""
    ids, vecs = index.dense.vectors()
    return vecs[np.argsort(ids, kind="stable")]  # type: ignore[no-any-return]
