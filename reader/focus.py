"""Reading less: the sentences of each passage that match the question best, and their neighbours.

The reader's cost grows with the tokens it reads, and an answer lies inside one sentence (the
decoder rejects spans that cross a sentence boundary). So instead of whole passages, the reader
can read, per passage, a run of consecutive sentences around the one that shares the most
question terms, weighted by how rare each term is among the sentences being read, up to a
budget of characters. A passage is read whole when it is short enough anyway, when it has no
sentence spans, or when no single sentence holds most of the question's terms that the passage
holds (weight below ``cover``): the answer may then lie in a sentence that matches by meaning
rather than by words, and guessing would lose it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from corpus import Passage
from corpus.analysis import Analyzer

_analyze = Analyzer()


def terms(text: str) -> set[str]:
    """The question's or sentence's words as BM25 indexes them: stemmed, stop words left out."""
    return set(_analyze(text))


def select(
    question: str, passages: Sequence[Passage], budget: int, cover: float = 0.8
) -> list[tuple[int, ...] | None]:
    """Per passage, the indices of the sentences to read (consecutive), or None to read it whole.

    ``budget`` is in characters of sentence text per passage; the best sentence is kept even when
    it alone is longer. A neighbour joins while it fits, the better-matching side first.
    """
    q = terms(question)
    sents = [[p.sentence_text(s) for s in p.sentences] for p in passages]
    bags = [[terms(s) & q for s in ss] for ss in sents]
    n = sum(len(b) for b in bags)
    df = Counter(t for bs in bags for b in bs for t in b)
    idf = {t: math.log(1 + n / c) for t, c in df.items()}
    out: list[tuple[int, ...] | None] = []
    for ss, bs in zip(sents, bags, strict=True):
        scores = [sum(idf[t] for t in b) for b in bs]
        held = sum(idf[t] for t in set().union(*bs))
        if sum(len(s) for s in ss) <= budget or not held or max(scores) < cover * held:
            out.append(None)
            continue
        best = max(range(len(ss)), key=lambda i: (scores[i], -i))
        lo = hi = best
        used = len(ss[best])
        while True:
            sides = [i for i in (lo - 1, hi + 1) if 0 <= i < len(ss)]
            if not sides:
                break
            i = max(sides, key=lambda i: (scores[i], -i))
            if used + 1 + len(ss[i]) > budget:
                break
            used += 1 + len(ss[i])
            lo, hi = min(lo, i), max(hi, i)
        out.append(tuple(range(lo, hi + 1)))
    return out
