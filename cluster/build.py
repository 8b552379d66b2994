"""Split a corpus into shards and build each: embedded here, or on a Ray cluster (Ray Data).

With a cluster, documents stream through ``map_batches`` over a pool of actors, one per CPU of
the cluster (each loads the embedding model once, then chunks and embeds its batches), and the
passages and vectors stream back here, where each shard's FAISS and BM25 indexes are assembled
and committed like any collection (``index.store.Store``: atomic, versioned). Adding a node adds
actors: nothing in the code names the nodes.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cluster.layout import SHARDS_FILE, Layout, check_address, is_sharded
from corpus import ChunkParams, Document, Passage, chunk_corpus
from index import Embedder, IndexError_, Store, build_index, text_sha256
from index.index import Embedded

BATCH_DOCUMENTS = 8  # documents per Ray Data batch: small, so every actor gets work on small corpora


@dataclass(frozen=True)
class BuildReport:
    shards: list[dict[str, int]]  # per shard: documents, passages, version
    documents: int
    passages: int
    seconds: float
    embed_seconds: float
    workers: int  # embedding actors (1: this process)


def _kept(folder: Path) -> list[Document]:
    """Documents added through the API to an existing sharded collection (a rebuild keeps them)."""
    if not is_sharded(folder):
        return []
    kept: list[Document] = []
    for shard in Layout.load(folder).folders:
        try:
            index = Store(shard).load(Embedder())
        except IndexError_:
            continue
        kept.extend(e.document for e in index.entries.values() if e.origin == "added")
    return kept


def build_shards(
    documents: Sequence[Document],
    index_dir: str | Path,
    shards: int,
    model_path: str | Path | None = None,
    precision: str = "auto",
    chunking: ChunkParams = ChunkParams(),
    ray_address: str | None = None,
    show_progress: bool = False,
    embedder: Embedder | None = None,
) -> BuildReport:
    """Build ``documents`` (the corpus folder's) into ``shards`` shard folders under ``index_dir``.

    Documents added through the API to an earlier sharded build are kept; a folder that holds
    a single-node collection is refused (``ValueError``), never overwritten.
    """
    t0 = time.perf_counter()
    folder = Path(index_dir)
    if (folder / "CURRENT").exists() and not is_sharded(folder):
        raise ValueError(f"{folder} holds a collection that is not sharded: choose another --index-dir")
    corpus_ids = {d.doc_id for d in documents}
    added = [d for d in _kept(folder) if d.doc_id not in corpus_ids]
    origin = {d.doc_id: "corpus" for d in documents} | {d.doc_id: "added" for d in added}
    everything = [*documents, *added]
    layout = Layout.new(folder, shards)
    embedder = embedder or Embedder(model_path, precision=precision)
    t_embed = time.perf_counter()
    embedded: dict[str, Embedded] | None = None
    workers = 1
    if ray_address is not None:
        embedded, workers = embed_on_ray(
            everything, ray_address, model_path, precision, chunking, show_progress
        )
    embed_seconds = time.perf_counter() - t_embed
    report = []
    for i, shard_folder in enumerate(layout.folders):
        mine = [d for d in everything if layout.owner(d.doc_id) == i]
        if show_progress:
            print(f"shard {i + 1}/{shards}: {len(mine)} documents", file=sys.stderr, flush=True)
        t = time.perf_counter()
        index = build_index(
            mine,
            embedder,
            chunking,
            show_progress=show_progress and embedded is None,
            origin={d.doc_id: origin[d.doc_id] for d in mine},
            corpus_seen={d.doc_id: text_sha256(d.text) for d in mine if origin[d.doc_id] == "corpus"},
            embedded=embedded,
        )
        if embedded is None:
            embed_seconds += time.perf_counter() - t
        store = Store(shard_folder)
        with store.locked():
            store.commit(index)
        report.append(
            {"documents": len(index.entries), "passages": index.passage_count, "version": index.version}
        )
    model = {"name": embedder.name, "fingerprint": embedder.fingerprint}
    layout.commit({"model": model, "chunking": chunking.as_dict()})
    for stale in folder.glob("shard-*"):  # a rebuild into fewer shards
        if stale.is_dir() and stale.name not in layout.names:
            shutil.rmtree(stale, ignore_errors=True)
    return BuildReport(
        report,
        len(everything),
        sum(r["passages"] for r in report),
        time.perf_counter() - t0,
        embed_seconds,
        workers,
    )


# -- Ray Data ------------------------------------------------------------------------------


def _rows(docs: Sequence[Document]) -> list[dict[str, Any]]:
    return [
        {"doc_id": d.doc_id, "title": d.title, "text": d.text, "source": d.source,
         "pages": json.dumps(d.pages), "metadata": json.dumps(d.metadata)}
        for d in docs
    ]  # fmt: skip


def _document(row: dict[str, Any]) -> Document:
    pages = tuple((int(s), int(e)) for s, e in json.loads(row["pages"]))
    return Document(
        str(row["doc_id"]),
        str(row["title"]),
        str(row["text"]),
        str(row["source"]),
        pages,
        json.loads(row["metadata"]),
    )


class ChunkAndEmbed:
    """A Ray Data actor: loads the model once, then chunks and embeds batches of documents."""

    def __init__(self, model_path: str | None, precision: str, chunking: dict[str, int]) -> None:
        self.embedder = Embedder(model_path, precision=precision)
        self.embedder.warm_up()
        self.params = ChunkParams(**chunking)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        docs = [_document({k: batch[k][i] for k in batch}) for i in range(len(batch["doc_id"]))]
        out: dict[str, list[Any]] = {"doc_id": [], "passages": [], "vectors": [], "dimension": []}
        for doc in docs:
            passages = chunk_corpus([doc], self.params)
            vectors = (
                self.embedder.encode([p.search_text for p in passages]).astype(np.float32)
                if passages
                else np.zeros((0, 0), np.float32)
            )
            rows = [{k: v for k, v in asdict(p).items() if k != "text"} for p in passages]
            out["doc_id"].append(doc.doc_id)
            out["passages"].append(json.dumps(rows))
            out["vectors"].append(vectors.tobytes())
            out["dimension"].append(int(vectors.shape[1]) if passages else 0)
        return out


def _results(rows: Iterable[dict[str, Any]], by_id: dict[str, Document]) -> Iterator[tuple[str, Embedded]]:
    for row in rows:
        doc = by_id[str(row["doc_id"])]
        passages = [
            Passage(r["passage_id"], r["doc_id"], r["start"], r["end"], doc.text[r["start"] : r["end"]],
                    tuple((int(s), int(e)) for s, e in r["sentences"]), r["page"])
            for r in json.loads(row["passages"])
        ]  # fmt: skip
        dim = int(row["dimension"])
        vectors = (
            np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dim) if dim else np.zeros((0, 1))
        )
        yield doc.doc_id, (passages, vectors)


def embed_on_ray(
    docs: Sequence[Document],
    address: str,
    model_path: str | Path | None,
    precision: str,
    chunking: ChunkParams,
    show_progress: bool = False,
) -> tuple[dict[str, Embedded], int]:
    """Chunk and embed ``docs`` on the Ray cluster at ``address``: their passages and vectors by
    doc id, and how many actors did it."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        check_address(address)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = show_progress
        cpus = int(ray.cluster_resources().get("CPU", 1))
        size = max(1, min(BATCH_DOCUMENTS, -(-len(docs) // cpus)))  # every CPU gets a batch
        batches = max(1, -(-len(docs) // size))
        actors = max(1, min(cpus, batches))
        ds = ray.data.from_items(_rows(docs), override_num_blocks=batches)
        out = ds.map_batches(
            ChunkAndEmbed,
            fn_constructor_kwargs={
                "model_path": str(model_path) if model_path else None,
                "precision": precision,
                "chunking": chunking.as_dict(),
            },
            batch_size=size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        by_id = {d.doc_id: d for d in docs}
        embedded = dict(_results(out.iter_rows(), by_id))
    finally:
        if started_here:
            ray.shutdown()
    missing = set(by_id) - set(embedded)
    if missing:
        raise RuntimeError(f"the cluster returned no passages for {len(missing)} documents")
    return embedded, actors


__all__ = ["SHARDS_FILE", "BuildReport", "build_shards", "embed_on_ray"]
