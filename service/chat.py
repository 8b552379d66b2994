"""An OpenAI-compatible chat endpoint: the extractive answer as the reply, with numbered citations.

The reply's ``content`` reads well in any chat UI (answer, markers, a Sources list); the same
citations are machine-readable in ``message.annotations`` with ``start_index``/``end_index``
into the content and the document offsets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from service.agreement import Citation
from service.errors import BadInputError
from service.pipeline import AskResult, Pipeline
from service.schemas import FilterIn

MODEL_ID = "citeqa"
# A follow-up this short ("and when?") is read as a refinement of the previous question.
FOLLOW_UP_WORDS = 6


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error shape, which OpenAI clients parse."""

    error: OpenAIErrorBody


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIError} for status in (400, 401, 404, 413, 422, 503)
}
router = APIRouter(prefix="/v1", tags=["openai-compatible"], responses=_ERRORS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(FilterIn):
    """A chat completion request; ``doc_ids``, ``where`` and ``top_k`` are citeqa extensions
    (extra body fields: ``extra_body`` in the OpenAI client)."""

    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ... are accepted and ignored
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    top_k: int = Field(3, description="citeqa extension: passages to retrieve and read (1..50)")


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    if isinstance(message.content, list):
        return " ".join(str(p.get("text", "")) for p in message.content if p.get("type") == "text")
    return ""


def question_from(messages: list[ChatMessage]) -> tuple[str, str]:
    """(question, retrieval query): the last user message, refined by the one before if it is short."""
    users = [_text(m).strip() for m in messages if m.role == "user"]
    users = [u for u in users if u]
    if not users:
        raise BadInputError("messages: no user message with text content")
    question = users[-1]
    query = question
    if len(users) > 1 and len(question.split()) < FOLLOW_UP_WORDS:
        query = f"{users[-2]} {question}"
    return question, query


def _quote(text: str, width: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _annotation(kind: str, index: int, start_index: int, end_index: int, **cite: Any) -> dict[str, Any]:
    """OpenAI's ``url_citation`` shape, so chat UIs can show it, plus citeqa's own fields."""
    body = {"start_index": start_index, "end_index": end_index, "index": index, "kind": kind, **cite}
    return {"type": "url_citation", "url_citation": body}


def _source(
    result: AskResult, base_url: str, doc_id: str, start: int, end: int, passage_id: str
) -> dict[str, Any]:
    """An annotation's document fields: the title, a link, the offsets. The link encodes each
    part of the id ("a b?.txt" -> a%20b%3F.txt) and keeps its slashes, as the web page does."""
    url = f"{base_url}/documents/{quote(doc_id, safe='/')}"
    return {
        "title": result.title(doc_id), "url": url, "doc_id": doc_id,
        "start": start, "end": end, "passage_id": passage_id,
    }  # fmt: skip


def compose(result: AskResult, base_url: str = "") -> tuple[str, list[dict[str, Any]]]:
    """The reply text and its annotations; links point at ``base_url``/documents/...

    When documents disagree, the reply says so and gives each side with its own citations
    (annotations of kind ``conflict``); otherwise it gives the best answer (kind ``answer``).
    """
    parts: list[str] = []
    annotations: list[dict[str, Any]] = []
    pos = 0

    def add(s: str) -> int:
        nonlocal pos
        parts.append(s)
        pos += len(s)
        return pos - len(s)

    if result.answers:
        conflict = result.agreement == "conflict"
        shown = [m for m in result.answers if m.conflict] if conflict else result.answers[:1]
        if conflict:
            add("The sources disagree:\n")
        sources: list[tuple[int, Citation, int, int]] = []  # marker, citation, its answer in the content
        for i, m in enumerate(shown, start=1):
            if conflict:
                add(f"{i}. ")
            a_start = add(m.answer.text)
            a_end = pos
            for c in m.citations:
                sources.append((len(sources) + 1, c, a_start, a_end))
                add(f" [{len(sources)}]")
            if conflict:
                add("\n")
        scores = " and ".join(f"{m.answer.score:.2f}" for m in shown)
        agree = f"; {shown[0].documents} documents agree" if result.agreement == "agree" else ""
        add("\n" if conflict else "\n\n")  # a conflict's last line has ended already
        add(f"(confidence {scores}{agree})\n\nSources:\n")
        for n, c, a_start, a_end in sources:
            page = result.page(c.doc_id, c.start)
            on_page = f", p. {page}" if page is not None else ""
            add(f"[{n}] {result.title(c.doc_id)} — {c.doc_id}:{c.start}-{c.end}{on_page}\n    “")
            add(_quote(result.sentence(c.passage_id, c.doc_id, c.start, c.end)[1]))
            add("”\n")
            where = _source(result, base_url, c.doc_id, c.start, c.end, c.passage_id)
            where["page"] = page
            text = result.text(c.doc_id, c.start, c.end)
            annotations.append(
                _annotation("conflict" if conflict else "answer", n, a_start, a_end, **where, text=text)
            )
    else:
        add("The documents do not answer this question.")
        if result.hits:
            add(" The closest passages are:\n")
        for n, h in enumerate(result.hits[:3], start=1):
            ps = h.passage
            add(f"[{n}] {result.title(ps.doc_id)} — {ps.doc_id}:{ps.start}-{ps.end}\n    “")
            q_start = add(_quote(ps.search_text or ps.text))
            q_end = pos
            add("”\n")
            where = _source(result, base_url, ps.doc_id, ps.start, ps.end, ps.passage_id)
            annotations.append(_annotation("passage", n, q_start, q_end, **where))
    return "".join(parts).rstrip("\n"), annotations


def _pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


P = Annotated[Pipeline, Depends(_pipeline)]


@router.get("/models")
def list_models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "citeqa"}],
    }


def _chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _stream(cid: str, created: int, content: str, annotations: list[dict[str, Any]]) -> Iterator[str]:
    yield _chunk(cid, created, {"role": "assistant", "content": ""})
    # line by line: the answer arrives first, the sources after it
    for line in content.splitlines(keepends=True):
        yield _chunk(cid, created, {"content": line})
    yield _chunk(cid, created, {"annotations": annotations}, finish="stop")
    yield "data: [DONE]\n\n"


@router.post("/chat/completions", response_model=None)
def chat_completions(body: ChatRequest, p: P, request: Request) -> JSONResponse | StreamingResponse:
    if body.model != MODEL_ID:
        raise BadInputError(f"model: unknown model {body.model!r}; this server serves {MODEL_ID!r}")
    question, query = question_from(body.messages)
    result = p.ask(question, body.top_k, query=query, only=body.only())
    content, annotations = compose(result, str(request.base_url).rstrip("/"))
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if body.stream:
        return StreamingResponse(_stream(cid, created, content, annotations), media_type="text/event-stream")
    prompt_words = sum(len(_text(m).split()) for m in body.messages)
    return JSONResponse(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "annotations": annotations},
                    "finish_reason": "stop",
                }
            ],
            # word counts: citeqa has no generative tokens to count
            "usage": {
                "prompt_tokens": prompt_words,
                "completion_tokens": len(content.split()),
                "total_tokens": prompt_words + len(content.split()),
            },
        }
    )


def openai_error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind: Literal["invalid_request_error", "not_found_error", "server_error"] = (
        "not_found_error" if status == 404 else "invalid_request_error" if status < 500 else "server_error"
    )
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": None}}, status_code=status
    )
