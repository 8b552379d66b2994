"""Embedding, dense (FAISS) and sparse (BM25) retrieval, fusion, and index persistence."""

from index.dense import DenseIndex, ExactIndex, FaissIndex
from index.embedder import Embedder, default_model_path
from index.store import (
    Hit,
    Index,
    IndexError_,
    StaleIndexError,
    build_index,
    expected_manifest,
    load_index,
    rrf_fuse,
    save_index,
)

__all__ = [
    "DenseIndex",
    "Embedder",
    "ExactIndex",
    "FaissIndex",
    "Hit",
    "Index",
    "IndexError_",
    "StaleIndexError",
    "build_index",
    "default_model_path",
    "expected_manifest",
    "load_index",
    "rrf_fuse",
    "save_index",
]
