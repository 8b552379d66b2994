"""Dense vector indexes: FAISS, and an exact numpy twin the tests use as ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class DenseIndex(Protocol):
    @property
    def ntotal(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` inner products per query: (scores, ids), ids -1 where fewer exist."""
        ...


class ExactIndex:
    """Brute-force inner product in numpy."""

    def __init__(self, dimension: int) -> None:
        self.vectors = np.zeros((0, dimension), dtype=np.float32)

    @property
    def ntotal(self) -> int:
        return len(self.vectors)

    def add(self, vectors: np.ndarray) -> None:
        self.vectors = np.vstack([self.vectors, vectors.astype(np.float32)])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = queries @ self.vectors.T
        n = min(k, self.ntotal)
        ids = np.argsort(-sims, axis=1, kind="stable")[:, :n]
        scores = np.take_along_axis(sims, ids, axis=1)
        pad = k - n
        if pad:
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores.astype(np.float32), ids.astype(np.int64)


class FaissIndex:
    """Exact inner-product search with FAISS (``IndexFlatIP``) over normalised vectors."""

    kind = "faiss.IndexFlatIP"

    def __init__(self, dimension: int, _index: object | None = None) -> None:
        import faiss

        self._index = _index if _index is not None else faiss.IndexFlatIP(dimension)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)  # type: ignore[attr-defined]

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))  # type: ignore[attr-defined]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        return self._index.search(q, k)  # type: ignore[attr-defined, no-any-return]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))  # type: ignore[call-overload]

    @classmethod
    def load(cls, path: Path) -> FaissIndex:
        import faiss

        index = faiss.read_index(str(path))
        return cls(index.d, _index=index)
