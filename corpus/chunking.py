"""Overlapping, sentence-aligned passages sized for the embedding model."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from corpus.documents import Document
from corpus.records import Passage
from corpus.sentences import Span, sentence_spans

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkParams:
    """Passage size in words. MiniLM reads 256 word pieces; 120 words is about 170."""

    max_words: int = 120
    overlap_words: int = 30

    def __post_init__(self) -> None:
        if self.max_words < 1 or not 0 <= self.overlap_words < self.max_words:
            raise ValueError("need max_words >= 1 and 0 <= overlap_words < max_words")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _words(text: str, span: Span) -> int:
    return len(_WORD.findall(text, span[0], span[1]))


def _split_long(text: str, span: Span, max_words: int) -> list[Span]:
    """Cut one over-long sentence into pieces of at most ``max_words`` words."""
    words = list(_WORD.finditer(text, span[0], span[1]))
    return [
        (words[i].start(), words[min(i + max_words, len(words)) - 1].end())
        for i in range(0, len(words), max_words)
    ]


def chunk(document: Document, params: ChunkParams = ChunkParams()) -> list[Passage]:
    """Pack consecutive clean sentences into passages of at most ``max_words`` words.

    Each passage after the first repeats the trailing sentences of the previous one, up
    to ``overlap_words`` words, so an answer near a boundary is seen whole at least once.
    """
    text = document.text
    # A Word file's body holds no running headers or scraped navigation (those live in its header
    # and footer parts, which are not read), so nothing in it is cut as noise: a one-column table's
    # rows ("N/A", "UNESCO") would otherwise go as repeated lines or debris.
    skip_noise = document.metadata.get("type") != "docx"
    units: list[Span] = []
    for span in sentence_spans(text, skip_noise, document.pages):
        if _words(text, span) > params.max_words:
            units.extend(_split_long(text, span, params.max_words))
        else:
            units.append(span)
    sizes = [_words(text, u) for u in units]
    groups: list[tuple[int, int]] = []  # [first, last) unit indexes
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and (j == i or total + sizes[j] <= params.max_words):
            total += sizes[j]
            j += 1
        groups.append((i, j))
        if j >= len(units):
            break
        # step back over trailing sentences for the overlap, but always move forward
        k, back = j, 0
        while k - 1 > i and back + sizes[k - 1] <= params.overlap_words:
            k -= 1
            back += sizes[k]
        i = k
    passages = []
    for n, (a, b) in enumerate(groups):
        start, end = units[a][0], units[b - 1][1]
        passages.append(
            Passage(
                passage_id=f"{document.doc_id}#{n}",
                doc_id=document.doc_id,
                start=start,
                end=end,
                text=text[start:end],
                sentences=tuple(units[a:b]),
                page=document.page_at(start),
            )
        )
    return passages


def chunk_corpus(documents: Iterable[Document], params: ChunkParams = ChunkParams()) -> list[Passage]:
    return [p for doc in documents for p in chunk(doc, params)]
