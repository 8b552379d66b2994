"""Dense vector indexes: FAISS, and an exact numpy twin the tests use as ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class DenseIndex(Protocol):
    @property
    def ntotal(self) -> int: ...

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` inner products per query: (scores, ids), ids -1 where fewer exist."""
        ...


def _ids(ids: np.ndarray | None, start: int, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(start, start + n, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"{n} vectors but {ids.shape} ids")
    return ids


class ExactIndex:
    """Brute-force inner product in numpy (ids default to insertion order)."""

    def __init__(self, dimension: int) -> None:
        self.vectors = np.zeros((0, dimension), dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.int64)

    @property
    def ntotal(self) -> int:
        return len(self.vectors)

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None:
        self.ids = np.concatenate([self.ids, _ids(ids, self.ntotal, len(vectors))])
        self.vectors = np.vstack([self.vectors, vectors.astype(np.float32)])

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        self.vectors, self.ids = self.vectors[keep], self.ids[keep]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = queries @ self.vectors.T
        n = min(k, self.ntotal)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
        scores = np.take_along_axis(sims, order, axis=1)
        ids = self.ids[order]
        pad = k - n
        if pad:
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores.astype(np.float32), ids.astype(np.int64)


class FaissIndex:
    """Exact inner-product search over normalised vectors, each stored under a 64-bit id.

    ``IndexIDMap2`` over ``IndexFlatIP``: passages keep their ids across additions and
    removals, so an update touches only the vectors it adds or removes.
    """

    kind = "faiss.IndexIDMap2(IndexFlatIP)"

    def __init__(self, dimension: int, _index: object | None = None) -> None:
        import faiss

        self._index = _index if _index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)  # type: ignore[attr-defined]

    @property
    def dimension(self) -> int:
        return int(self._index.d)  # type: ignore[attr-defined]

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self._index.add_with_ids(x, _ids(ids, self.ntotal, len(x)))  # type: ignore[attr-defined]

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[attr-defined]

    def copy(self) -> FaissIndex:
        import faiss

        return FaissIndex(self.dimension, _index=faiss.clone_index(self._index))  # type: ignore[arg-type]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        return self._index.search(q, k)  # type: ignore[attr-defined, no-any-return]

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything stored, for tests and diagnostics."""
        import faiss

        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)  # type: ignore[attr-defined]
        inner = faiss.downcast_index(self._index.index)  # type: ignore[attr-defined]
        return ids, inner.reconstruct_n(0, self.ntotal)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))  # type: ignore[call-overload]

    @classmethod
    def load(cls, path: Path) -> FaissIndex:
        import faiss

        index = faiss.read_index(str(path))
        return cls(index.d, _index=index)
