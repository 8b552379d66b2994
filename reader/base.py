"""The reader interface and its answer record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from corpus import Passage


@dataclass(frozen=True)
class Answer:
    """An extractive answer: ``document.text[start:end] == text``, found in ``passage_id``."""

    text: str
    score: float
    doc_id: str
    start: int
    end: int
    passage_id: str


class Reader(Protocol):
    name: str

    @property
    def conflict_share(self) -> float | None:
        """The reader's own share for conflicts (``service.agreement.merge_answers``), or None for
        the default."""
        ...

    def warm_up(self) -> None: ...

    def read(
        self, question: str, passages: Sequence[Passage], top_n: int = 3, ranked: bool = False
    ) -> list[Answer]:
        """Best answers first, scores in [0, 1]; an empty list means: not answered here.
        ``ranked``: the passages come best first, and the reader may leave some unread."""
        ...
