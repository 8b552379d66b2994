"""BM25 over passages with bm25s (English stop words, Snowball stemming)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np


def _bm25s() -> Any:
    import bm25s

    # bm25s sets its logger to DEBUG on import; its per-build chatter is not ours to show
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    params = {"library": "bm25s", "stopwords": "en", "stemmer": "snowball-english"}

    def __init__(self, _model: Any = None) -> None:
        self._model = _model
        self._stem = _stemmer()

    def _tokenize(self, texts: list[str]) -> Any:
        return _bm25s().tokenize(texts, stopwords="en", stemmer=self._stem, show_progress=False)

    def fit(self, texts: list[str]) -> None:
        self._model = _bm25s().BM25()
        self._model.index(self._tokenize(texts), show_progress=False)
        self._n = len(texts)

    @property
    def size(self) -> int:
        return int(self._model.scores["num_docs"])

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) for one query; ids with a zero score are dropped."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        tokens = self._tokenize([query])
        if not tokens.ids or not tokens.ids[0]:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        ids, scores = self._model.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        ids, scores = ids[0].astype(np.int64), scores[0].astype(np.float32)
        keep = scores > 0
        return scores[keep], ids[keep]

    def save(self, folder: Path) -> None:
        self._model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        return cls(_bm25s().BM25.load(str(folder), show_progress=False))
