"""HTTP request/response models (the contract in the README)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from index import Hit
from service.agreement import MergedAnswer
from service.pipeline import AskResult, Filter


class FilterIn(BaseModel):
    """Which documents to answer from; the filter applies before ranking.

    Request bodies are strict: a value of the wrong JSON type is a 422 (``"top_k": "3"``,
    ``"stream": "yes"``), not converted, as the README says.
    """

    model_config = ConfigDict(strict=True)

    doc_ids: list[str] | None = Field(
        None, description="only these documents (GET /documents lists the ids)", examples=[["report.pdf"]]
    )
    where: dict[str, Any] | None = Field(
        None,
        description="only documents whose metadata has these values (equality; a number matches its text)",
        examples=[{"type": "pdf"}],
    )

    def only(self) -> Filter:
        return Filter.of(self.doc_ids, self.where)


class AskRequest(FilterIn):
    question: str = Field(
        ...,
        description="a question in plain language",
        examples=["When did North Korea and North Vietnam establish formal diplomatic relations?"],
    )
    top_k: int = Field(3, description="passages to retrieve and read (1..50)")


class CitationOut(BaseModel):
    doc_id: str
    start: int
    end: int
    passage_id: str
    page: int | None = Field(None, description="1-based page where it starts; null for formats without pages")
    text: str = Field(
        "", description="verbatim: documents[doc_id].text[start:end]; may word the answer differently"
    )


class AnswerOut(BaseModel):
    text: str = Field(..., description="verbatim: documents[doc_id].text[start:end]")
    score: float = Field(..., description="confidence in [0, 1]")
    doc_id: str
    start: int
    end: int
    passage_id: str
    page: int | None = Field(None, description="1-based page where it starts; null for formats without pages")
    citations: list[CitationOut] = Field(
        default_factory=list, description="every place that states this answer, in any wording"
    )
    documents: int = Field(1, description="how many distinct documents state it")
    conflict: bool = Field(False, description="one side of a disagreement between documents")


class PassageOut(BaseModel):
    passage_id: str
    doc_id: str
    title: str
    start: int
    end: int
    page: int | None = Field(None, description="1-based page where it starts; null for formats without pages")
    text: str = Field(..., description="verbatim: documents[doc_id].text[start:end]")
    sentences: list[tuple[int, int]] = Field(
        default_factory=list,
        description="document offsets of the passage's clean sentences; text between them (navigation, "
        "pop-ups) is what the reader leaves out",
    )
    score: float = Field(..., description="reciprocal-rank-fusion score of dense and BM25 retrieval")


class AskResponse(BaseModel):
    question: str
    answers: list[AnswerOut]
    passages: list[PassageOut]
    agreement: Literal["none", "single", "agree", "conflict"] = Field(
        "none",
        description="none: no answer; single: the answer rests on one document; agree: two or more "
        "documents state it; conflict: documents give incompatible answers (those marked conflict)",
    )
    version: int = Field(0, description="the collection version that answered")


class SearchResponse(BaseModel):
    query: str
    passages: list[PassageOut]
    version: int = Field(0, description="the collection version that answered")


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    length: int
    origin: str = Field("corpus", description="corpus (the corpus folder) or added (API / citeqa add)")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="type, title, pages, path and modified (from the file) and what an upload gave",
    )


class DocumentIn(BaseModel):
    """A document given as JSON (files go as multipart/form-data with a ``file`` field)."""

    doc_id: str | None = Field(
        None, description="id to store it under (default: derived from the title or the text)"
    )
    title: str | None = Field(None, description="default: the first line of the text")
    text: str = Field(..., description="the document's text; offsets in answers point into it")
    metadata: dict[str, Any] | None = Field(
        None,
        description='strings and numbers to filter on (`where`), e.g. {"team": "audit", "year": 2024}',
    )


class DocumentChange(BaseModel):
    doc_id: str
    title: str = ""
    length: int = 0
    passages: int = 0
    status: str = Field(..., description="added, replaced, unchanged or removed")
    version: int = Field(..., description="the collection version after the change")


class PageOut(BaseModel):
    page: int = Field(..., description="1-based")
    start: int
    end: int = Field(..., description="text[start:end] is the page's text")


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    text: str
    pages: list[PageOut] | None = Field(None, description="only for formats with pages (PDF)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="as in GET /documents")


class Health(BaseModel):
    status: str
    documents: int
    passages: int
    model: str
    reader: str
    index_fingerprint: str
    version: int = 0


class ErrorOut(BaseModel):
    detail: str


def pages_out(pages: tuple[tuple[int, int], ...]) -> list[PageOut] | None:
    return [PageOut(page=n, start=s, end=e) for n, (s, e) in enumerate(pages, start=1)] or None


def answer_out(m: MergedAnswer, result: AskResult | None = None) -> AnswerOut:
    """``result``, the answer's ``AskResult``, gives the pages of the documents."""
    a = m.answer
    cites = [
        CitationOut(
            doc_id=c.doc_id,
            start=c.start,
            end=c.end,
            passage_id=c.passage_id,
            text=c.text,
            page=result.page(c.doc_id, c.start) if result else None,
        )
        for c in m.citations
    ]
    return AnswerOut(
        text=a.text, score=a.score, doc_id=a.doc_id, start=a.start, end=a.end, passage_id=a.passage_id,
        page=result.page(a.doc_id, a.start) if result else None, citations=cites,
        documents=m.documents, conflict=m.conflict,
    )  # fmt: skip


def passages_out(result: AskResult, hits: list[Hit] | None = None) -> list[PassageOut]:
    """The passages read for ``result`` (or ``hits``), titled from the state that answered."""
    return [
        PassageOut(
            passage_id=h.passage.passage_id,
            doc_id=h.passage.doc_id,
            title=result.title(h.passage.doc_id),
            start=h.passage.start,
            end=h.passage.end,
            page=h.passage.page,
            text=h.passage.text,
            sentences=list(h.passage.sentences),
            score=round(h.score, 6),
        )  # fmt: skip
        for h in (result.hits if hits is None else hits)
    ]


def ask_response(result: AskResult) -> AskResponse:
    return AskResponse(
        question=result.question,
        answers=[answer_out(m, result) for m in result.answers],
        passages=passages_out(result),
        agreement=result.agreement,
        version=result.version,
    )
