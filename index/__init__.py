"""Embedding, dense (FAISS) and sparse (BM25) retrieval, fusion, and durable collection states."""

from index.dense import DenseIndex, ExactIndex, FaissIndex
from index.embedder import Embedder, default_model_path
from index.index import (
    Change,
    Entry,
    Hit,
    Index,
    IndexError_,
    StaleIndexError,
    build_index,
    incompatibilities,
    merge_candidates,
    rrf_fuse,
    search_shards,
    shard_of,
    text_sha256,
)
from index.store import Store

__all__ = [
    "Change",
    "DenseIndex",
    "Embedder",
    "Entry",
    "ExactIndex",
    "FaissIndex",
    "Hit",
    "Index",
    "IndexError_",
    "StaleIndexError",
    "Store",
    "build_index",
    "default_model_path",
    "incompatibilities",
    "merge_candidates",
    "rrf_fuse",
    "search_shards",
    "shard_of",
    "text_sha256",
]
