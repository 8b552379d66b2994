"""The hybrid index: passages + FAISS + BM25, fused by reciprocal rank fusion, saved with a manifest."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from corpus import ChunkParams, Document, Passage, chunk_corpus
from corpus.documents import corpus_fingerprint
from index.bm25 import BM25Index
from index.dense import FaissIndex
from index.embedder import Embedder

FORMAT_VERSION = 1
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


def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of 1/(k + rank) over rankings (rank from 1), best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("citeqa", "faiss-cpu", "sentence-transformers", "bm25s", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def expected_manifest(documents: list[Document], embedder: Embedder, params: ChunkParams) -> dict[str, Any]:
    """The parts of a manifest that must match for a saved index to be reused."""
    return {
        "format": FORMAT_VERSION,
        "model": {"name": embedder.name, "fingerprint": embedder.fingerprint},
        "chunking": params.as_dict(),
        "corpus": {"fingerprint": corpus_fingerprint(documents), "documents": len(documents)},
    }


class Index:
    """Passages with their dense and BM25 indexes; ``search`` fuses the two rankings."""

    def __init__(
        self,
        passages: list[Passage],
        dense: FaissIndex,
        bm25: BM25Index,
        embedder: Embedder,
        manifest: dict[str, Any],
    ) -> None:
        self.passages = passages
        self.dense = dense
        self.bm25 = bm25
        self.embedder = embedder
        self.manifest = manifest

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    def passage(self, passage_id: str) -> Passage | None:
        if not hasattr(self, "_by_id"):
            self._by_id = {p.passage_id: p for p in self.passages}
        return self._by_id.get(passage_id)

    def search(self, query: str, k: int = 5, candidates: int = 50) -> list[Hit]:
        if not query.strip() or not self.passages or k <= 0:
            return []
        n = min(max(candidates, k), len(self.passages))
        qvec = self.embedder.encode([query])
        dscores, dids = self.dense.search(qvec, n)
        dense = [(int(i), float(s)) for i, s in zip(dids[0], dscores[0]) if i >= 0]
        bscores, bids = self.bm25.search(query, n)
        sparse = [(int(i), float(s)) for i, s in zip(bids, bscores)]
        dense_at = {i: (r, s) for r, (i, s) in enumerate(dense, start=1)}
        sparse_at = {i: (r, s) for r, (i, s) in enumerate(sparse, start=1)}
        fused = rrf_fuse([[i for i, _ in dense], [i for i, _ in sparse]])
        hits = []
        for i, score in fused[:k]:
            dr, ds = dense_at.get(i, (-1, 0.0))
            br, bs = sparse_at.get(i, (-1, 0.0))
            hits.append(Hit(self.passages[i], score, ds, dr, bs, br))
        return hits


def build_index(
    documents: list[Document],
    embedder: Embedder,
    params: ChunkParams = ChunkParams(),
    show_progress: bool = False,
) -> Index:
    """Chunk, embed and index ``documents``."""
    passages = chunk_corpus(documents, params)
    vectors = embedder.encode([p.search_text for p in passages], show_progress=show_progress)
    dense = FaissIndex(vectors.shape[1])
    dense.add(vectors)
    bm25 = BM25Index()
    bm25.fit([p.search_text for p in passages])
    manifest = expected_manifest(documents, embedder, params)
    manifest["model"]["dimension"] = int(vectors.shape[1])
    manifest["corpus"]["passages"] = len(passages)
    manifest["dense"] = FaissIndex.kind
    manifest["bm25"] = BM25Index.params
    manifest["fusion"] = {"method": "rrf", "k": RRF_K}
    manifest["versions"] = _versions()
    manifest["fingerprint"] = _fingerprint(manifest)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Index(passages, dense, bm25, embedder, manifest)


def _fingerprint(manifest: dict[str, Any]) -> str:
    import hashlib

    body = json.dumps({k: manifest[k] for k in ("model", "chunking", "corpus")}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())


def save_index(index: Index, folder: str | Path) -> Path:
    """Write the index to a temporary sibling folder, flush it, then swap it into place."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        index.dense.save(tmp / "dense.faiss")
        index.bm25.save(tmp / "bm25")
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in index.passages:
                fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
        # the manifest is written last: a folder without one is never loaded
        (tmp / "manifest.json").write_text(json.dumps(index.manifest, indent=2) + "\n")
        _fsync_tree(tmp)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _mismatches(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    out = []
    if saved.get("format") != expected["format"]:
        out.append(f"format {saved.get('format')} != {expected['format']}")
    if saved.get("model", {}).get("fingerprint") != expected["model"]["fingerprint"]:
        out.append(f"model {saved.get('model', {}).get('name')!r} differs from {expected['model']['name']!r}")
    if saved.get("chunking") != expected["chunking"]:
        out.append(f"chunking {saved.get('chunking')} != {expected['chunking']}")
    if saved.get("corpus", {}).get("fingerprint") != expected["corpus"]["fingerprint"]:
        out.append("the documents changed since it was built")
    return out


def load_index(
    folder: str | Path,
    embedder: Embedder,
    expected: dict[str, Any] | None = None,
) -> Index:
    """Load a saved index; with ``expected`` (see ``expected_manifest``) refuse a stale one."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise IndexError_(f"no index at {folder}: {REBUILD_HINT.replace('rebuild', 'build')}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexError_(f"unreadable index manifest {manifest_path} ({exc}): {REBUILD_HINT}") from None
    if expected is not None:
        problems = _mismatches(manifest, expected)
        if problems:
            raise StaleIndexError(f"index at {folder} is stale ({'; '.join(problems)}): {REBUILD_HINT}")
    try:
        with open(folder / "passages.jsonl", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        passages = [Passage(**{**r, "sentences": tuple(tuple(s) for s in r["sentences"])}) for r in rows]
        dense = FaissIndex.load(folder / "dense.faiss")
        bm25 = BM25Index.load(folder / "bm25")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexError_(f"damaged index at {folder} ({exc}): {REBUILD_HINT}") from None
    if dense.ntotal != len(passages) or bm25.size != len(passages):
        raise IndexError_(f"index at {folder} is inconsistent (passage counts differ): {REBUILD_HINT}")
    return Index(passages, dense, bm25, embedder, manifest)


def vectors_of(index: Index) -> np.ndarray:
    """All stored vectors (for tests and diagnostics)."""
    return index.dense._index.reconstruct_n(0, index.dense.ntotal)  # type: ignore[attr-defined, no-any-return]
