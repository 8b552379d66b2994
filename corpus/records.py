"""Records made by the corpus stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Passage:
    """A contiguous slice of a document: ``document.text[start:end] == text``.

    ``sentences`` are the (start, end) document offsets of the clean sentences inside the
    passage; noise (navigation debris, glossary pop-ups) lies between them and is left out
    of ``search_text``, which is what gets embedded and BM25-indexed. ``page`` is the
    1-based page where the passage starts, None for formats without pages.
    """

    passage_id: str
    doc_id: str
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]
    page: int | None = None

    @property
    def search_text(self) -> str:
        return " ".join(self.sentence_text(s) for s in self.sentences)

    def sentence_text(self, span: tuple[int, int]) -> str:
        return self.text[span[0] - self.start : span[1] - self.start]
