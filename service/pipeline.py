"""retrieve -> read -> merge: the one verb every front end calls."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from corpus import ChunkParams, CorpusError, Document, load_corpus
from index import Embedder, Hit, Index, IndexError_, build_index, expected_manifest, load_index, save_index
from reader import Answer, BaselineReader, Reader, TrainedReader
from service.errors import BadInputError, NotFoundError, NotReadyError

log = logging.getLogger(__name__)
MAX_TOP_K = 50
READERS = ("trained", "baseline")


@dataclass(frozen=True)
class Citation:
    doc_id: str
    start: int
    end: int
    passage_id: str


@dataclass(frozen=True)
class MergedAnswer:
    """An answer plus every other place the same text was found (``citations``)."""

    answer: Answer
    citations: tuple[Citation, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AskResult:
    question: str
    answers: list[MergedAnswer]
    hits: list[Hit]  # the passages that were read (top_k)
    retrieved: list[Hit] = field(default_factory=list)  # everything retrieved (>= hits), for evaluation


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def merge_answers(answers: list[Answer]) -> list[MergedAnswer]:
    """Fold answers whose text is the same (ignoring case and punctuation) into one.

    The best-scoring occurrence is the answer; the others become extra citations, and
    agreement between passages nudges the score up (1 - prod(1 - s)).
    """
    groups: dict[str, list[Answer]] = {}
    for a in answers:
        groups.setdefault(_norm(a.text) or a.text, []).append(a)
    merged = []
    for group in groups.values():
        group.sort(key=lambda a: -a.score)
        best = group[0]
        miss = 1.0
        for a in group:
            miss *= 1.0 - a.score
        score = round(1.0 - miss, 4) if len(group) > 1 else best.score
        cites = tuple(Citation(a.doc_id, a.start, a.end, a.passage_id) for a in group)
        merged.append(
            MergedAnswer(Answer(best.text, score, best.doc_id, best.start, best.end, best.passage_id), cites)
        )
    merged.sort(key=lambda m: -m.answer.score)
    return merged


def make_reader(name: str, embedder: Embedder) -> Reader:
    if name == "baseline":
        return BaselineReader(embedder)
    if name == "trained":
        return TrainedReader()
    raise BadInputError(f"unknown reader {name!r} (choose from: {', '.join(READERS)})")


class Pipeline:
    """Owns the documents, the index and the reader; cheap to construct, ``warm_up`` loads."""

    def __init__(
        self,
        corpus_dir: str | Path,
        index_dir: str | Path,
        model_path: str | Path | None = None,
        reader: str = "baseline",
        chunking: ChunkParams = ChunkParams(),
        max_question_chars: int = 2000,
        documents: list[Document] | None = None,
    ) -> None:
        """``documents``, when given, are used instead of reading ``corpus_dir``."""
        self.corpus_dir = Path(corpus_dir)
        self._given = documents
        self.index_dir = Path(index_dir)
        self.chunking = chunking
        self.max_question_chars = max_question_chars
        self.embedder = Embedder(model_path)
        self.reader = make_reader(reader, self.embedder)
        self.documents: dict[str, Document] = {}
        self.index: Index | None = None
        # the embedder and reader are not re-entrant-safe under torch's thread pool sharing;
        # one request reads at a time, which on 2 cores costs little
        self._lock = threading.Lock()

    def _load_documents(self) -> list[Document]:
        try:
            docs = self._given if self._given is not None else load_corpus(self.corpus_dir)
        except CorpusError as exc:
            raise BadInputError(str(exc)) from None
        self.documents = {d.doc_id: d for d in docs}
        return docs

    def build(self, show_progress: bool = False) -> Index:
        """Build the index from the corpus folder and save it."""
        docs = self._load_documents()
        index = build_index(docs, self.embedder, self.chunking, show_progress=show_progress)
        save_index(index, self.index_dir)
        self.index = index
        return index

    def warm_up(self, build_if_needed: bool = False) -> None:
        """Load the saved index (refusing a stale one unless ``build_if_needed``) and the reader."""
        docs = self._load_documents()
        expected = expected_manifest(docs, self.embedder, self.chunking)
        try:
            self.index = load_index(self.index_dir, self.embedder, expected)
        except IndexError_ as exc:
            if not build_if_needed:
                raise NotReadyError(str(exc)) from None
            log.info("%s; building it now", exc)
            self.build()
        self.embedder.warm_up()
        self.reader.warm_up()

    def _ready(self) -> Index:
        if self.index is None:
            raise NotReadyError("the index is not loaded")
        return self.index

    def check_question(self, question: str, top_k: int) -> str:
        if not isinstance(question, str) or not question.strip():
            raise BadInputError("question must not be empty")
        if len(question) > self.max_question_chars:
            raise BadInputError(
                f"question is longer than {self.max_question_chars} characters ({len(question)})"
            )
        if not 1 <= top_k <= MAX_TOP_K:
            raise BadInputError(f"top_k must be between 1 and {MAX_TOP_K} (got {top_k})")
        return question.strip()

    def search(self, query: str, top_k: int = 5) -> list[Hit]:
        query = self.check_question(query, top_k)
        with self._lock:
            return self._ready().search(query, top_k)

    def ask(
        self, question: str, top_k: int = 5, retrieve_k: int | None = None, query: str | None = None
    ) -> AskResult:
        """Retrieve ``max(top_k, retrieve_k)`` passages, read the best ``top_k``, merge answers.

        ``query``, when given, is what retrieval searches for (a question refined by earlier
        turns of a chat); the reader still reads ``question``.
        """
        question = self.check_question(question, top_k)
        with self._lock:
            retrieved = self._ready().search(query or question, max(top_k, retrieve_k or 0))
            hits = retrieved[:top_k]
            answers = self.reader.read(question, [h.passage for h in hits], top_n=max(3, top_k))
        return AskResult(question, merge_answers(answers), hits, retrieved)

    def document(self, doc_id: str) -> Document:
        try:
            return self.documents[doc_id]
        except KeyError:
            raise NotFoundError(f"unknown document id: {doc_id!r}") from None

    def title(self, doc_id: str) -> str:
        doc = self.documents.get(doc_id)
        return doc.title if doc else ""
