"""Words for matching: what BM25 indexes and what the reader's focus compares with a question."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from typing import Any

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # what bm25s and scikit-learn use

# Number words and month names, for the rules that read counts and dates in answers (the reader's
# span rules, the agreement between sources).
ONES = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
TENS = {
    w: 10 * i
    for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split())
    if i > 1
}
SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
MONTHS = {
    m: i
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
         ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
         ("october", "oct"), ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for m in names
}  # fmt: skip


def alternation(words: Iterable[str]) -> str:
    """A regular expression group matching any of ``words``, longest first."""
    return "(?:" + "|".join(sorted(map(re.escape, words), key=lambda w: (-len(w), w))) + ")"


@functools.cache
def _stopwords() -> frozenset[str]:
    """bm25s's English stop words, read from its ``stopwords.py`` alone: importing
    ``bm25s.stopwords`` runs the package's ``__init__``, which imports scipy (0.34 s, for a list
    of words; nothing else here loads scipy): one-shot ``citeqa ask`` took 0.2 s less."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("bm25s")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the BM25 stop words need the package bm25s (pip install bm25s)")
    source = (Path(next(iter(spec.submodule_search_locations))) / "stopwords.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "STOPWORDS_EN" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    raise RuntimeError("bm25s/stopwords.py has no STOPWORDS_EN")


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
