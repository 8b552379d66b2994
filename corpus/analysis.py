"""Words for matching: what BM25 indexes and what the reader's focus compares with a question."""

from __future__ import annotations

import re
import threading
from typing import Any

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # what bm25s and scikit-learn use


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class Analyzer:
    """Lower-case word tokens of 2+ characters, stop words removed, Snowball-stemmed."""

    def __init__(self) -> None:
        self._stop = _stopwords()
        self._local = threading.local()  # PyStemmer objects must not be shared between threads

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self._stop]
        stem = getattr(self._local, "stem", None)
        if stem is None:
            stem = self._local.stem = _stemmer()
        return list(stem.stemWords(words))
