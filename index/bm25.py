"""Incremental BM25 over passages (Lucene's formula, English stop words, Snowball stemming).

Passages are added and removed by integer key without touching the rest: each passage's term
counts are kept, and collection statistics (document frequencies, average length) are derived
from them at query time, so an index built incrementally scores exactly like one built at once.
``copy`` is cheap enough to give every committed state its own instance.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.analysis import Analyzer

K1 = 1.5
B = 0.75


@dataclass(frozen=True)
class Stats:
    """What BM25 needs of a collection to score a query: its passages, their total length, and
    per query term the passages that hold it. Shards of one collection add theirs up, and each
    shard scoring with the sum scores exactly as the whole collection would."""

    passages: int
    length: int
    df: dict[str, int]

    def __add__(self, other: Stats) -> Stats:
        df = {t: self.df.get(t, 0) + other.df.get(t, 0) for t in self.df.keys() | other.df.keys()}
        return Stats(self.passages + other.passages, self.length + other.length, df)


class BM25Index:
    params = {"formula": "lucene", "k1": K1, "b": B, "stopwords": "en", "stemmer": "snowball-english"}

    def __init__(self, analyzer: Analyzer | None = None) -> None:
        self.analyzer = analyzer or Analyzer()
        # key -> (term ids, term counts); per-term postings are derived lazily for search
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._vocab: dict[str, int] = {}
        self._postings: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._lengths: dict[int, int] = {}

    @property
    def size(self) -> int:
        return len(self._rows)

    def keys(self) -> list[int]:
        return list(self._rows)

    def copy(self) -> BM25Index:
        out = BM25Index(self.analyzer)
        out._rows = dict(self._rows)  # rows are never mutated, so sharing them is safe
        out._vocab = dict(self._vocab)
        out._lengths = dict(self._lengths)
        return out

    def add(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        for key, text in zip(keys, texts, strict=True):
            if key in self._rows:
                raise ValueError(f"passage key {key} is already indexed")
            counts = Counter(self._vocab.setdefault(t, len(self._vocab)) for t in self.analyzer(text))
            ids = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
            tfs = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            self._rows[key] = (ids, tfs)
            self._lengths[key] = int(tfs.sum())
        self._postings = None

    def remove(self, keys: Sequence[int]) -> None:
        for key in keys:
            self._rows.pop(key, None)
            self._lengths.pop(key, None)
        self._postings = None

    def fit(self, texts: Sequence[str]) -> None:
        """Index ``texts`` under keys 0..n-1 (a fresh index)."""
        self.__init__(self.analyzer)  # type: ignore[misc]
        self.add(range(len(texts)), texts)

    def _build_postings(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """term -> (keys, counts, passage lengths) of every passage holding it."""
        by_term: dict[int, list[tuple[int, float, int]]] = {}
        for key, (ids, tfs) in self._rows.items():
            dl = self._lengths[key]
            for t, tf in zip(ids.tolist(), tfs.tolist()):
                by_term.setdefault(t, []).append((key, tf, dl))
        out = {}
        for t, entries in by_term.items():
            columns = list(zip(*entries))
            out[t] = (
                np.asarray(columns[0], dtype=np.int64),
                np.asarray(columns[1], dtype=np.float32),
                np.asarray(columns[2], dtype=np.float32),
            )
        return out

    def _postings_now(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        postings = self._postings
        if postings is None:
            postings = self._postings = self._build_postings()
        return postings

    def stats(self, query: str) -> Stats:
        """This index's share of the statistics ``query`` is scored with (see ``Stats``)."""
        postings = self._postings_now()
        df = {}
        for t in dict.fromkeys(self.analyzer(query)):
            post = postings.get(self._vocab[t]) if t in self._vocab else None
            df[t] = len(post[0]) if post is not None else 0
        return Stats(self.size, sum(self._lengths.values()), df)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None, stats: Stats | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, keys) for one query; passages sharing no term are left out, and
        so are those whose keys are not in ``allowed`` (sorted), when given. ``stats``: score
        with a whole collection's statistics (this index being one shard of it)."""
        words = [t for t in dict.fromkeys(self.analyzer(query)) if t in self._vocab]
        if k <= 0 or self.size == 0 or not words:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        postings = self._postings_now()
        stats = stats if stats is not None else self.stats(query)
        n = stats.passages
        avgdl = stats.length / n
        keys_parts, score_parts = [], []
        for word in words:
            post = postings.get(self._vocab[word])
            if post is None:
                continue
            keys, tfs, dls = post
            df = stats.df[word]
            idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
            keys_parts.append(keys)
            score_parts.append(idf * tfs / (tfs + K1 * (1.0 - B + B * dls / avgdl)))
        if not keys_parts:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        uniq, inverse = np.unique(np.concatenate(keys_parts), return_inverse=True)
        sums = np.bincount(inverse, weights=np.concatenate(score_parts).astype(np.float64))
        if allowed is not None:
            keep = np.isin(uniq, allowed, assume_unique=True)
            uniq, sums = uniq[keep], sums[keep]
        order = np.lexsort((uniq, -sums))[:k]  # best first, ties by key
        return sums[order].astype(np.float32), uniq[order]

    def save(self, path: Path) -> None:
        """One .npz file: keys, row offsets, term ids, counts and the vocabulary."""
        keys = np.asarray(list(self._rows), dtype=np.int64)
        rows = [self._rows[int(key)] for key in keys]
        offsets = np.cumsum([0] + [len(ids) for ids, _ in rows]).astype(np.int64)
        terms = np.concatenate([ids for ids, _ in rows]) if rows else np.zeros(0, np.int32)
        counts = np.concatenate([tfs for _, tfs in rows]) if rows else np.zeros(0, np.float32)
        vocab = json.dumps(sorted(self._vocab, key=self._vocab.__getitem__), ensure_ascii=False)
        with open(path, "wb") as fh:
            np.savez(fh, keys=keys, offsets=offsets, terms=terms, counts=counts, vocab=np.asarray(vocab))

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        with np.load(path, allow_pickle=False) as z:
            keys, offsets, terms, counts = z["keys"], z["offsets"], z["terms"], z["counts"]
            vocab = json.loads(str(z["vocab"]))
        out = cls()
        out._vocab = {t: i for i, t in enumerate(vocab)}
        for i, key in enumerate(keys.tolist()):
            ids, tfs = terms[offsets[i] : offsets[i + 1]], counts[offsets[i] : offsets[i + 1]]
            out._rows[key] = (ids, tfs)
            out._lengths[key] = int(tfs.sum())
        return out
