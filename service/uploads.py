"""Turning an HTTP request body into a ``Document``: size limit, accepted types, safe ids."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from corpus import SUFFIXES, CorpusError, Document, LoadOptions, check_doc_id, parse_document
from corpus.metadata import Metadata, check_metadata, check_unicode
from service.errors import BadInputError, TooLargeError, UnsupportedTypeError, from_corpus_error
from service.schemas import DocumentIn

# a file part without a known extension is read as its content type says
TYPES = {
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/html": ".html",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}
ACCEPTED = (
    "a .txt, .md, .html, .pdf, .docx or .pptx file as multipart/form-data (field 'file'), "
    "or JSON {doc_id?, title?, text, metadata?}"
)

MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": (
                "a .txt, .md or .html file (UTF-8), a .pdf with a text layer, a .docx or a .pptx"
            ),
        },
        "doc_id": {"type": "string", "description": "id to store it under (default: the file name)"},
        "title": {"type": "string", "description": "default: the first heading or line"},
        "metadata": {
            "type": "string",
            "description": 'a JSON object of strings and numbers, e.g. {"team": "audit", "year": 2024}',
        },
    },
    "required": ["file"],
}


def request_body_spec() -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of POST/PUT /documents (the route parses the body itself)."""
    return {
        "required": True,
        "content": {
            "application/json": {"schema": DocumentIn.model_json_schema()},
            "multipart/form-data": {"schema": MULTIPART_SCHEMA},
        },
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them where possible."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"the upload is {int(declared)} bytes; the limit is {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLargeError(f"the upload is larger than the limit of {limit} bytes")
    return bytes(body)


def _valid_text(value: str, what: str) -> str:
    try:
        return check_unicode(value, what)
    except CorpusError as exc:
        raise BadInputError(str(exc)) from None


def _id(doc_id: str) -> str:
    try:
        return check_doc_id(doc_id)
    except CorpusError as exc:
        raise BadInputError(str(exc)) from None


def _metadata(raw: object) -> Metadata:
    try:
        return check_metadata(raw)
    except CorpusError as exc:
        raise BadInputError(str(exc)) from None


def _metadata_field(value: object) -> Metadata:
    """The form's ``metadata`` field: a JSON object in a text field."""
    if value is None or value == "":
        return {}
    if not isinstance(value, str):
        raise BadInputError("metadata must be a text field holding a JSON object")
    return _metadata(_json(value, "metadata"))


def _default_id(text: str) -> str:
    return "doc-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12] + ".txt"


def _json(data: str | bytes, what: str) -> object:
    """``data`` parsed as JSON, or ``BadInputError`` saying why not. Besides malformed JSON and
    bytes that are not UTF-8, Python's parser refuses integers of over 4,300 digits (ValueError)
    and nesting deeper than its recursion limit (RecursionError)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise BadInputError(f"{what} is not valid JSON here (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError among them
        raise BadInputError(f"{what} is not valid JSON ({exc})") from None


def _from_json(body: bytes, path_id: str | None) -> Document:
    raw = _json(body, "the body")
    try:
        doc = DocumentIn.model_validate(raw)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise BadInputError(msgs) from None
    text = _valid_text(doc.text, "text")
    if not text.strip():
        raise BadInputError("text must not be empty")
    title = _valid_text(doc.title, "title").strip() if doc.title else None
    if path_id is not None and doc.doc_id is not None and doc.doc_id != path_id:
        raise BadInputError(f"doc_id {doc.doc_id!r} in the body differs from {path_id!r} in the path")
    doc_id = _id(path_id or doc.doc_id or _default_id(text))
    return parse_document(
        text.encode("utf-8"), ".txt", doc_id, title=title or None, source="api",
        metadata=_metadata(doc.metadata or {}),
    )  # fmt: skip


async def _from_form(
    request: Request, body: bytes, path_id: str | None, limit: int, options: LoadOptions
) -> Document:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10, max_part_size=limit)
    except HTTPException as exc:  # Starlette's 400 for a form it will not parse ("Too many fields...")
        raise BadInputError(f"the form cannot be read: {exc.detail}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadInputError(f"no file in the form: send {ACCEPTED}")
        name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in SUFFIXES:
            part_type = (upload.content_type or "").split(";")[0].strip().lower()
            if not suffix and part_type in TYPES:
                suffix = TYPES[part_type]
            else:
                raise UnsupportedTypeError(
                    f"unsupported file type {suffix or part_type or 'unknown'!r}: "
                    f"accepted are {', '.join(SUFFIXES)}"
                )
        data = await upload.read()
        fields = {k: form.get(k) for k in ("doc_id", "title")}
        for key, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise BadInputError(f"{key} must be a text field")
        given_id = fields["doc_id"] or None
        if path_id is not None and given_id is not None and given_id != path_id:
            raise BadInputError(f"doc_id {given_id!r} in the form differs from {path_id!r} in the path")
        doc_id = _id(str(path_id or given_id or name or _default_id(data.decode("utf-8", "replace"))))
        title = _valid_text(str(fields["title"]), "title").strip() if fields["title"] else None
        metadata = _metadata_field(form.get("metadata"))
        try:
            # off the event loop: reading a large PDF or DOCX takes a while
            return await run_in_threadpool(
                functools.partial(
                    parse_document,
                    data,
                    suffix,
                    doc_id,
                    title=title or None,
                    source="upload",
                    name=name or doc_id,
                    options=options,
                    metadata=metadata,
                )
            )
        except CorpusError as exc:
            raise from_corpus_error(exc) from None
    finally:
        await form.close()


async def document_from_request(
    request: Request, limit: int, path_id: str | None = None, options: LoadOptions = LoadOptions()
) -> Document:
    """The document a POST or PUT carries (``path_id``: the id in the URL of a PUT)."""
    if path_id is not None:
        path_id = _id(path_id)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", "multipart/form-data"):
        raise UnsupportedTypeError(f"unsupported content type {kind or 'none'!r}: send {ACCEPTED}")
    body = await read_body(request, limit)
    if kind == "application/json":
        try:
            return _from_json(body, path_id)
        except CorpusError as exc:
            raise from_corpus_error(exc) from None
    return await _from_form(request, body, path_id, limit, options)
