"""Dense vector indexes: FAISS, and an exact numpy twin the tests use as ground truth."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

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


EXACT_MAX = 100_000  # above this many vectors an exact scan costs more than IVF's small recall loss
# a filtered IVF search scores up to this many allowed vectors directly (about 30 MB, a few ms)
FILTER_EXACT_MAX = 20_000
MMAP_MIN_BYTES = 64 * 2**20  # indexes at least this large are memory-mapped, not read into memory


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4 sqrt(n), the usual FAISS rule."""
    return int(min(65_536, max(64, 4 * np.sqrt(n))))


def ivf_probes(nlist: int) -> int:
    """Lists scanned per query: 1/64 of them, at least 16 (recall@10 is measured by ``make bench``)."""
    return max(16, nlist // 64)


class FaissIndex:
    """Inner-product search over normalised vectors, each stored under a 64-bit id.

    Below ``EXACT_MAX`` vectors it is exact (``IndexIDMap2`` over ``IndexFlatIP``); above, an
    ``IndexIVFFlat`` (ids stored natively, a hash map for lookups by id) scans the
    ``ivf_probes`` nearest of ``ivf_lists`` lists. ``fit`` switches kind as a collection grows
    or shrinks. Passages keep their ids across additions and removals, so an update touches
    only the vectors it adds or removes. Every search uses one thread: a server answers
    several requests at once, and the models want the cores.
    """

    def __init__(self, dimension: int, _index: object | None = None, _mapped: bool = False) -> None:
        import faiss

        self._index: Any = _index if _index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.mapped = _mapped  # memory-mapped from a saved version: read-only

    @property
    def kind(self) -> str:
        import faiss

        if isinstance(self._index, faiss.IndexIVF):
            return f"faiss.IndexIVFFlat(nlist={self._index.nlist}, nprobe={self._index.nprobe})"
        return "faiss.IndexIDMap2(IndexFlatIP)"

    @property
    def exact(self) -> bool:
        import faiss

        return not isinstance(self._index, faiss.IndexIVF)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self._index.add_with_ids(x, _ids(ids, self.ntotal, len(x)))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def copy(self) -> FaissIndex:
        import faiss

        if self.mapped:  # a clone would still view the mapped file; read it into memory instead
            return FaissIndex(
                self.dimension, _index=faiss.deserialize_index(faiss.serialize_index(self._index))
            )
        return FaissIndex(self.dimension, _index=faiss.clone_index(self._index))

    def fit(self, exact_max: int = EXACT_MAX) -> FaissIndex:
        """This index, or the same vectors in the kind that suits their number.

        IVF above ``exact_max`` vectors; back to exact below half of it (not at the same
        point, so a collection hovering there is not rebuilt on every change).
        """
        n = self.ntotal
        if self.exact and n > exact_max:
            return FaissIndex.ivf(*self.vectors())
        if not self.exact and n < exact_max // 2:
            ids, vecs = self.vectors()
            flat = FaissIndex(self.dimension)
            flat.add(vecs, ids)
            return flat
        return self

    @classmethod
    def ivf(cls, ids: np.ndarray, vectors: np.ndarray, nlist: int | None = None) -> FaissIndex:
        """An IVF index over ``vectors``, its centroids trained on a sample of them."""
        import faiss

        n, d = vectors.shape
        nlist = nlist or ivf_lists(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and adding may use every core
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
        index.nprobe = ivf_probes(nlist)
        return cls(d, _index=index)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query, among ``allowed`` ids (sorted) when given.

        The flat index skips the other ids as it scans (exact). An IVF index scores the allowed
        vectors directly when there are up to ``FILTER_EXACT_MAX`` of them (exact: probing lists
        could miss allowed passages that sit in unprobed lists); above that it probes more
        lists the fewer ids are allowed (approximate, like an unfiltered IVF search).
        """
        import faiss

        faiss.omp_set_num_threads(1)  # per calling thread: OpenMP settings are thread-local
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            return self._index.search(q, k)
        ids = np.ascontiguousarray(allowed, dtype=np.int64)
        sel = faiss.IDSelectorBatch(ids)
        if self.exact:
            params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
            return self._index.search(q, k, params=params)
        if len(ids) <= FILTER_EXACT_MAX:
            scores = q @ self._index.reconstruct_batch(ids).T
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            out_s = np.full((len(q), k), -np.inf, np.float32)
            out_i = np.full((len(q), k), -1, np.int64)
            out_s[:, : top.shape[1]] = np.take_along_axis(scores, top, axis=1)
            out_i[:, : top.shape[1]] = ids[top]
            return out_s, out_i
        share = len(ids) / max(1, self.ntotal)
        nprobe = min(self._index.nlist, max(self._index.nprobe, int(np.ceil(self._index.nprobe / share))))
        params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]
        return self._index.search(q, k, params=params)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything stored, for tests, diagnostics and changing kind."""
        import faiss

        if not self.exact:
            ivf = self._index
            lists = ivf.invlists
            ids = np.concatenate(
                [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(ivf.nlist)]
                + [np.zeros(0, dtype=np.int64)]
            ).astype(np.int64)
            ids.sort()
            vecs = ivf.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dimension), np.float32)
            return ids, vecs.astype(np.float32)
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = faiss.downcast_index(self._index.index)
        return ids, inner.reconstruct_n(0, self.ntotal)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, mmap_min_bytes: int = MMAP_MIN_BYTES) -> FaissIndex:
        """Read an index; a large one is memory-mapped (its vectors stay on disk, paged in on use).

        A saved version is never rewritten, so mapping it is safe; ``copy`` reads it fully
        before a change is made.
        """
        import faiss

        mapped = path.stat().st_size >= mmap_min_bytes
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mapped else 0
        index = faiss.read_index(str(path), flags)
        return cls(index.d, _index=index, _mapped=mapped)
