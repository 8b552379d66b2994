"""The MCP server: tools ``ask``, ``search`` and ``documents``, the documents as resources.

Served over stdio by ``citeqa mcp`` (desktop chat apps) and over streamable HTTP at ``/mcp``
by the HTTP app. Built with the official ``mcp`` SDK, 1.x API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr

from service.agreement import MergedAnswer
from service.errors import CiteqaError
from service.pipeline import AskResult as Result
from service.pipeline import Filter, Pipeline
from service.schemas import AnswerOut, PassageOut, ask_response, passages_out

URI_PREFIX = "citeqa://documents/"
# a where value: strict, so that true is refused as over HTTP rather than read as 1
Scalar = StrictStr | StrictInt | StrictFloat


class Citation(BaseModel):
    doc_id: str
    title: str
    start: int = Field(..., description="character offset into the document text")
    end: int
    passage_id: str
    quote: str = Field(..., description="document.text[start:end]")
    page: int | None = Field(None, description="1-based page where it starts; null for formats without pages")


class Side(BaseModel):
    """One of the incompatible answers documents give."""

    answer: str = Field(..., description="verbatim span of a document")
    score: float
    documents: int = Field(..., description="how many distinct documents state it")
    citations: list[Citation]


class AskResult(BaseModel):
    question: str
    answered: bool = Field(..., description="false when the documents do not answer the question")
    agreement: Literal["none", "single", "agree", "conflict"] = Field(
        "none",
        description="none: not answered; single: one document states the answer; agree: two or more "
        "do; conflict: documents give incompatible answers (the others are in disagreeing_answers)",
    )
    answer: str | None = Field(None, description="verbatim span of a document")
    score: float | None = Field(None, description="confidence in [0, 1]")
    documents: int = Field(0, description="how many distinct documents state the answer")
    citations: list[Citation] = Field(default_factory=list, description="every place that states the answer")
    disagreeing_answers: list[Side] = Field(
        default_factory=list,
        description="when agreement is conflict: the incompatible answers, with citations",
    )
    other_answers: list[AnswerOut] = Field(default_factory=list)
    passages: list[PassageOut] = Field(default_factory=list, description="the passages that were read")


class SearchResult(BaseModel):
    query: str
    passages: list[PassageOut]


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    metadata: dict[str, str | int | float] = Field(..., description="what ask's and search's where can match")


def _citations(result: Result, m: MergedAnswer) -> list[Citation]:
    return [
        Citation(
            doc_id=c.doc_id,
            title=result.title(c.doc_id),
            start=c.start,
            end=c.end,
            passage_id=c.passage_id,
            quote=result.text(c.doc_id, c.start, c.end),
            page=result.page(c.doc_id, c.start),
        )  # fmt: skip
        for c in m.citations
    ]


def document_uri(doc_id: str) -> str:
    return URI_PREFIX + quote(doc_id, safe="")


def build_mcp(get_pipeline: Callable[[], Pipeline], host: str = "127.0.0.1") -> Any:
    """An MCP server over the pipeline ``get_pipeline()`` returns (loaded by then)."""
    from mcp.server.fastmcp import FastMCP
    from mcp.server.fastmcp.exceptions import ToolError
    from mcp.types import Resource

    class Server(FastMCP):  # type: ignore[misc]
        async def list_resources(self) -> list[Resource]:
            """Every document of the collection as it is now. Resources registered once at
            start-up missed documents added later and kept removed ones; reading goes through
            the template below, which serves any document id."""
            index = get_pipeline().current()
            entries = sorted(index.entries.values(), key=lambda e: e.doc_id) if index is not None else []
            return [
                Resource(
                    uri=document_uri(e.doc_id),
                    name=e.doc_id,
                    title=e.document.title,
                    description=e.document.title,
                    mimeType="text/plain",
                )  # fmt: skip
                for e in entries
            ]

    mcp = Server(
        "citeqa",
        instructions=(
            "Answers questions from a fixed set of documents with verbatim quotes. Every answer comes "
            "with citations: doc_id and character offsets, so document.text[start:end] == quote. "
            "When answered is false, the documents do not answer the question: say so. When agreement "
            "is conflict, the documents disagree: say so and give each answer with its source."
        ),
        host=host,
        stateless_http=True,
        streamable_http_path="/mcp",
    )

    @mcp.tool()
    def ask(
        question: str,
        top_k: int = 3,
        doc_ids: list[str] | None = None,
        where: dict[str, Scalar] | None = None,
    ) -> AskResult:
        """Answer a question from the documents with an extractive (verbatim) answer and its citations.

        doc_ids and where (metadata equality, e.g. {"type": "pdf"}; the documents tool lists
        each document's metadata) limit the documents it answers from.
        """
        p = get_pipeline()
        try:
            result = p.ask(question, top_k, only=Filter.of(doc_ids, where))
            body = ask_response(result)
        except CiteqaError as exc:
            raise ToolError(str(exc)) from None
        if not body.answers:
            return AskResult(question=body.question, answered=False, passages=body.passages)
        best = result.answers[0]
        sides = [
            Side(
                answer=m.answer.text,
                score=m.answer.score,
                documents=m.documents,
                citations=_citations(result, m),
            )
            for m in result.answers[1:]
            if m.conflict
        ]
        return AskResult(
            question=body.question, answered=True, agreement=body.agreement, answer=best.answer.text,
            score=best.answer.score, documents=best.documents, citations=_citations(result, best),
            disagreeing_answers=sides, other_answers=body.answers[1:], passages=body.passages,
        )  # fmt: skip

    @mcp.tool()
    def search(
        query: str,
        top_k: int = 5,
        doc_ids: list[str] | None = None,
        where: dict[str, Scalar] | None = None,
    ) -> SearchResult:
        """Find the passages most relevant to a query (hybrid dense + BM25 retrieval), with offsets.
        doc_ids and where limit the documents searched, as for ask."""
        p = get_pipeline()
        try:
            result = p.search(query, top_k, only=Filter.of(doc_ids, where))
        except CiteqaError as exc:
            raise ToolError(str(exc)) from None
        return SearchResult(query=query, passages=passages_out(result))

    @mcp.tool()
    def documents() -> list[DocumentInfo]:
        """The documents: id, title and metadata (type, pages, path, modified and upload fields)."""
        index = get_pipeline().current()
        entries = index.entries.values() if index is not None else []
        return [
            DocumentInfo(doc_id=e.doc_id, title=e.document.title, metadata=e.document.fields) for e in entries
        ]

    @mcp.resource(URI_PREFIX + "{doc_id}", mime_type="text/plain")
    def document(doc_id: str) -> str:
        """The full text of one document (offsets in citations point into this text)."""
        from urllib.parse import unquote

        try:
            return get_pipeline().document(unquote(doc_id)).text
        except CiteqaError as exc:
            raise ValueError(str(exc)) from None

    return mcp
