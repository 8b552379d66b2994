"""The FastAPI app: thin routes over ``Pipeline``; errors become 4xx in one place."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from corpus import CorpusError
from corpus.metadata import parse_where
from service.chat import openai_error
from service.chat import router as chat_router
from service.errors import BadInputError, CiteqaError
from service.mcp_server import build_mcp
from service.pipeline import Filter, Pipeline
from service.schemas import (
    AskRequest,
    AskResponse,
    DocumentChange,
    DocumentOut,
    DocumentSummary,
    ErrorOut,
    Health,
    SearchResponse,
    ask_response,
    pages_out,
    passages_out,
)
from service.settings import Settings
from service.uploads import document_from_request, request_body_spec

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


# module level, so FastAPI can resolve the annotation under `from __future__ import annotations`
P = Annotated[Pipeline, Depends(get_pipeline)]


def pipeline_options(settings: Settings) -> dict[str, Any]:
    """The ``Pipeline`` keyword arguments the settings give (every kind of pipeline takes them)."""
    from corpus import ChunkParams

    return {
        "model_path": settings.model_path,
        "reader": settings.reader,
        "reader_threshold": settings.reader_threshold,
        "precision": settings.precision,
        "reader_focus": settings.reader_focus,
        "reader_sure": settings.reader_sure,
        "reader_dir": settings.reader_dir,
        "chunking": ChunkParams(settings.max_words, settings.overlap_words),
        "max_question_chars": settings.max_question_chars,
        "load_options": settings.load_options(),
    }


def pipeline_from_settings(settings: Settings) -> Pipeline:
    """The pipeline the settings describe; over a sharded index folder, one that asks its
    shards in this process (``cluster.front``)."""
    from cluster import is_sharded

    if is_sharded(settings.index_dir):
        from cluster.front import ClusterPipeline, local_shards

        shards = local_shards(settings.index_dir, settings.model_path, settings.precision)
        return ClusterPipeline(shards, index_dir=settings.index_dir, **pipeline_options(settings))
    return Pipeline(
        corpus_dir=settings.corpus_dir, index_dir=settings.index_dir, **pipeline_options(settings)
    )


# Open without the API key: the page and the API's docs hold no data (the page asks for the key;
# the docs' "Authorize" button takes it for their requests)
DOCS_STATIC = "/docs-static"
OPEN_PATHS = ("/health", "/", "/favicon.ico", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
OPEN_PREFIXES = ("/static/", DOCS_STATIC + "/")


class ApiKeyMiddleware:
    """Require ``Authorization: Bearer <key>`` on every request but /health and the page's files."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode("utf-8")

    def _allowed(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or scope.get("method") == "OPTIONS":
            return True
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                # compare_digest takes the same time wherever the first difference is
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        message = "missing or wrong API key: send the header 'Authorization: Bearer <key>'"
        if scope.get("path", "").startswith("/v1/"):
            response = openai_error(401, message)
        else:
            response = JSONResponse({"detail": message}, status_code=401)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


class ControlCharacterPathMiddleware:
    """A path holding a control character names nothing here: 404. Starlette's routes end in
    ``$``, which matches before a final line break, so ``DELETE /documents/a.txt%0A`` reached
    the route as ``a.txt`` and removed that document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
            detail = f"no such path: {path!r} holds a control character"
            response = (
                openai_error(404, detail)
                if path.startswith("/v1/")
                else JSONResponse({"detail": detail}, 404)
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _declare_bearer_key(app: FastAPI) -> None:
    """The OpenAPI schema says every route but the open ones needs ``Authorization: Bearer``, so
    the docs' "Authorize" button sends the key with their requests."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "CITEQA_API_KEY"}
            }
            for path, operations in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


class _LazyMcp:
    """The MCP server, built when /mcp is first asked for: importing the MCP library took 0.37 s,
    15 % of the server's start-up, for an endpoint not every deployment uses. Its session
    manager runs in a task of the lifespan's own (anyio wants a task group left by the task
    that entered it), which waits for the first request and ends with the lifespan."""

    def __init__(self, get_pipeline: Any, host: str) -> None:
        self._get_pipeline, self._host = get_pipeline, host
        self._wanted, self._ready = anyio.Event(), anyio.Event()
        self._asgi: ASGIApp | None = None
        self.error: BaseException | None = None

    async def asgi(self) -> ASGIApp | None:
        """The MCP app, started on the first call; None if it could not start (``error``)."""
        self._wanted.set()
        await self._ready.wait()
        return self._asgi

    async def serve(self) -> None:
        await self._wanted.wait()
        try:
            mcp = await anyio.to_thread.run_sync(build_mcp, self._get_pipeline, self._host)
            asgi = mcp.streamable_http_app().routes[0].endpoint  # creates the session manager
        except Exception as exc:  # each /mcp request gets a 503 saying so, instead of waiting
            log.exception("the MCP server did not start")
            self.error = exc
            self._ready.set()
            return
        async with mcp.session_manager.run():
            self._asgi = asgi
            self._ready.set()
            await anyio.sleep_forever()


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app. The pipeline loads in the lifespan unless one is given already loaded."""
    settings = settings or Settings()

    class McpEndpoint:
        """/mcp, served by the MCP app that the lifespan starts on the first request here."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            mcp: _LazyMcp = app.state.mcp
            asgi = await mcp.asgi()
            if asgi is None:
                error = JSONResponse({"detail": f"the MCP server did not start: {mcp.error}"}, 503)
                await error(scope, receive, send)
            else:
                await asgi(scope, receive, send)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pipeline is None:
            p = pipeline_from_settings(settings)
            p.warm_up()
            app.state.pipeline = p
        else:
            app.state.pipeline = pipeline
        async with anyio.create_task_group() as tasks:
            app.state.mcp = _LazyMcp(lambda: app.state.pipeline, settings.host)
            tasks.start_soon(app.state.mcp.serve)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    # FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN: blank pages offline.
    # fastapi-offline serves the same pages with those files shipped in its package.
    app = FastAPIOffline(
        title="citeqa",
        summary="Extractive question answering with character-exact citations.",
        version="0.1.0",
        lifespan=lifespan,
        responses={422: {"model": ErrorOut}},
        static_url=DOCS_STATIC,
    )
    if settings.api_key:
        _declare_bearer_key(app)

    def _error(request: Request, status: int, message: str) -> JSONResponse:
        # OpenAI-compatible routes answer in OpenAI's error shape, the rest as {"detail": ...}
        if request.url.path.startswith("/v1/"):
            return openai_error(status, message)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(CiteqaError)
    async def _citeqa_error(request: Request, exc: CiteqaError) -> JSONResponse:
        response = _error(request, exc.status, str(exc))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # a shard of a cluster is restarting: the answer will come
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(request, 422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(request, exc.status_code, str(exc.detail))

    app.include_router(chat_router)
    # MCP's streamable HTTP endpoint at exactly /mcp (a mount would answer /mcp/ and redirect /mcp)
    app.router.routes.append(Route("/mcp", endpoint=McpEndpoint()))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post("/ask", response_model=AskResponse, responses={404: {"model": ErrorOut}})
    def ask(body: AskRequest, p: P) -> AskResponse:
        return ask_response(p.ask(body.question, body.top_k, only=body.only()))

    @app.get("/search", response_model=SearchResponse, responses={404: {"model": ErrorOut}})
    def search(
        p: P,
        q: Annotated[str, Query(description="search text")],
        top_k: int = 5,
        doc_ids: Annotated[list[str] | None, Query(description="only these documents (repeatable)")] = None,
        where: Annotated[
            list[str] | None, Query(description="only documents with this metadata: key=value (repeatable)")
        ] = None,
    ) -> SearchResponse:
        try:
            pairs = parse_where(where or [])
        except CorpusError as exc:
            raise BadInputError(str(exc).replace("--where", "where")) from None
        result = p.search(q, top_k, only=Filter.of(doc_ids, pairs))
        return SearchResponse(query=q, passages=passages_out(result), version=result.version)

    @app.get("/documents", response_model=list[DocumentSummary])
    def documents(p: P) -> list[DocumentSummary]:
        index = p.current()
        entries = index.entries.values() if index is not None else []
        return [
            DocumentSummary(
                doc_id=e.doc_id,
                title=e.document.title,
                length=len(e.document.text),
                origin=e.origin,
                metadata=e.document.fields,
            )  # fmt: skip
            for e in entries
        ]

    @app.get(
        "/documents/{doc_id:path}",
        response_model=DocumentOut,
        response_model_exclude_none=True,  # "pages" only for documents that have pages
        responses={404: {"model": ErrorOut}},
    )
    def document(doc_id: str, p: P) -> DocumentOut:
        d = p.document(doc_id)
        return DocumentOut(
            doc_id=d.doc_id, title=d.title, text=d.text, pages=pages_out(d.pages), metadata=d.fields
        )

    changes: dict[int | str, dict[str, Any]] = {
        201: {"model": DocumentChange, "description": "added"},
        409: {"model": ErrorOut}, 413: {"model": ErrorOut}, 415: {"model": ErrorOut},
    }  # fmt: skip

    def _change(p: Pipeline, doc_id: str, status: str, version: int, entry: Any = None) -> DocumentChange:
        index = p.index
        if entry is None and index is not None:
            entry = index.entries.get(doc_id)
        if entry is None:
            return DocumentChange(doc_id=doc_id, status=status, version=version)
        d = entry.document
        return DocumentChange(
            doc_id=doc_id, title=d.title, length=len(d.text), passages=len(entry.keys), status=status,
            version=version,
        )  # fmt: skip

    @app.post(
        "/documents",
        status_code=201,
        response_model=DocumentChange,
        responses=changes,
        openapi_extra={"requestBody": request_body_spec()},
    )
    async def add_document(request: Request, p: P) -> DocumentChange:
        """Add a document: a .txt/.md/.html/.pdf/.docx/.pptx file (multipart) or JSON; 409 if it exists."""
        doc = await document_from_request(request, settings.max_upload_bytes, options=settings.load_options())
        update = await run_in_threadpool(p.add_documents, [doc], False)
        return _change(p, doc.doc_id, "added", update.version)

    @app.put(
        "/documents/{doc_id:path}",
        response_model=DocumentChange,
        # 404: an id that is no URL path (a line break in it) matches no route
        responses={**changes, 404: {"model": ErrorOut}},
        openapi_extra={"requestBody": request_body_spec()},
    )
    async def put_document(doc_id: str, request: Request, p: P) -> JSONResponse:
        """Replace a document (or add it under this id): 200 when replaced, 201 when added."""
        doc = await document_from_request(
            request, settings.max_upload_bytes, path_id=doc_id, options=settings.load_options()
        )
        update = await run_in_threadpool(p.add_documents, [doc], True)
        status = "added" if update.added else "replaced" if update.replaced else "unchanged"
        body = _change(p, doc.doc_id, status, update.version)
        return JSONResponse(body.model_dump(), status_code=201 if update.added else 200)

    @app.delete(
        "/documents/{doc_id:path}", response_model=DocumentChange, responses={404: {"model": ErrorOut}}
    )
    def delete_document(doc_id: str, p: P) -> DocumentChange:
        """Remove a document, its passages and their vectors."""
        before = p.index.entries.get(doc_id) if p.index is not None else None
        update = p.remove_documents([doc_id])
        return _change(p, doc_id, "removed", update.version, entry=before)

    @app.get("/health", response_model=Health)
    def health(p: P) -> Health:
        index = p.current()
        return Health(
            status="ok" if index is not None else "not ready",
            documents=len(p.documents),
            passages=index.passage_count if index else 0,
            model=p.embedder.name,
            reader=p.reader.name,
            index_fingerprint=index.fingerprint if index else "",
            version=index.version if index else 0,
        )

    # HEAD too, outside the schema (one operation per route there): uptime monitors probe with it
    app.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)

    app.add_middleware(ControlCharacterPathMiddleware)
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, key=settings.api_key)
    if settings.cors_origins:  # off unless configured; added last, so preflights skip the key check
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory service.api:app_factory``: settings from ``CITEQA_*``."""
    return create_app(Settings())
