"""The FastAPI app: thin routes over ``Pipeline``; errors become 4xx in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.chat import openai_error
from service.chat import router as chat_router
from service.errors import CiteqaError
from service.mcp_server import build_mcp, register_documents
from service.pipeline import Pipeline
from service.schemas import (
    AskRequest,
    AskResponse,
    DocumentOut,
    DocumentSummary,
    ErrorOut,
    Health,
    SearchResponse,
    ask_response,
    passages_out,
)
from service.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


# module level, so FastAPI can resolve the annotation under `from __future__ import annotations`
P = Annotated[Pipeline, Depends(get_pipeline)]


def pipeline_from_settings(settings: Settings) -> Pipeline:
    from corpus import ChunkParams

    return Pipeline(
        corpus_dir=settings.corpus_dir,
        index_dir=settings.index_dir,
        model_path=settings.model_path,
        reader=settings.reader,
        chunking=ChunkParams(settings.max_words, settings.overlap_words),
        max_question_chars=settings.max_question_chars,
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app. The pipeline loads in the lifespan unless one is given already loaded."""
    settings = settings or Settings()

    mcp = build_mcp(lambda: app.state.pipeline, host=settings.host)
    mcp_app = mcp.streamable_http_app()  # creates the session manager the lifespan runs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pipeline is None:
            p = pipeline_from_settings(settings)
            p.warm_up()
            app.state.pipeline = p
        else:
            app.state.pipeline = pipeline
        register_documents(mcp, app.state.pipeline)
        async with mcp.session_manager.run():
            yield

    app = FastAPI(
        title="citeqa",
        summary="Extractive question answering with character-exact citations.",
        version="0.1.0",
        lifespan=lifespan,
        responses={422: {"model": ErrorOut}},
    )

    def _error(request: Request, status: int, message: str) -> JSONResponse:
        # OpenAI-compatible routes answer in OpenAI's error shape, the rest as {"detail": ...}
        if request.url.path.startswith("/v1/"):
            return openai_error(status, message)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(CiteqaError)
    async def _citeqa_error(request: Request, exc: CiteqaError) -> JSONResponse:
        return _error(request, exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(request, 422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(request, exc.status_code, str(exc.detail))

    app.include_router(chat_router)
    # MCP's streamable HTTP endpoint at exactly /mcp (a mount would answer /mcp/ and redirect /mcp)
    app.router.routes.extend(mcp_app.routes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post("/ask", response_model=AskResponse, responses={404: {"model": ErrorOut}})
    def ask(body: AskRequest, p: P) -> AskResponse:
        return ask_response(p.ask(body.question, body.top_k), p.title)

    @app.get("/search", response_model=SearchResponse)
    def search(p: P, q: Annotated[str, Query(description="search text")], top_k: int = 5) -> SearchResponse:
        return SearchResponse(query=q, passages=passages_out(p.search(q, top_k), p.title))

    @app.get("/documents", response_model=list[DocumentSummary])
    def documents(p: P) -> list[DocumentSummary]:
        return [
            DocumentSummary(doc_id=d.doc_id, title=d.title, length=len(d.text)) for d in p.documents.values()
        ]

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses={404: {"model": ErrorOut}})
    def document(doc_id: str, p: P) -> DocumentOut:
        d = p.document(doc_id)
        return DocumentOut(doc_id=d.doc_id, title=d.title, text=d.text)

    @app.get("/health", response_model=Health)
    def health(p: P) -> Health:
        index = p.index
        return Health(
            status="ok" if index is not None else "not ready",
            documents=len(p.documents),
            passages=len(index.passages) if index else 0,
            model=p.embedder.name,
            reader=p.reader.name,
            index_fingerprint=index.fingerprint if index else "",
        )

    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory service.api:app_factory``: settings from ``CITEQA_*``."""
    return create_app(Settings())
