"""Loading a folder of documents (.txt, .md, .html) into ``Document`` records."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


class CorpusError(ValueError):
    """The corpus folder cannot be used (missing, empty, unreadable)."""


@dataclass(frozen=True)
class Document:
    """One document. ``text`` is what every offset points into.

    For .txt and .md it is the file's text exactly; for .html it is the visible text
    extracted from the markup (offsets point into that text, which ``/documents/{id}``
    returns).
    """

    doc_id: str
    title: str
    text: str
    source: str = ""

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
    "section", "article", "header", "footer", "blockquote", "pre", "title", "nav", "dd", "dt",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.heading = ""
        self._skip = 0
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag != "br" else "\n")
        if tag in ("title", "h1"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in == "title" and not self.title:
            self.title = data.strip()
            return  # the <title> is metadata, not body text
        if self._in == "h1" and not self.heading:
            self.heading = data.strip()
        self.parts.append(data)


def _html_to_text(raw: str) -> tuple[str, str]:
    parser = _TextExtractor()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text, parser.title or parser.heading


def _title_from_text(text: str, markdown: bool) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if markdown:
        for ln in lines:
            if ln.startswith("#"):
                return ln.lstrip("#").strip()
    return lines[0][:200] if lines else ""


MAX_DOC_ID = 200
_BAD_ID_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]")


def check_doc_id(doc_id: str) -> str:
    """Return ``doc_id`` if it is safe as a document id, else raise ``CorpusError`` saying why.

    Ids are relative-path-like ("notes/2024.md"): no control characters or backslashes, no
    leading or trailing "/" or spaces, no empty, "." or ".." segments, at most 200 characters.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise CorpusError("document id must not be empty")
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        raise CorpusError("document id is not valid Unicode (it holds a lone surrogate)") from None
    if len(doc_id) > MAX_DOC_ID:
        raise CorpusError(f"document id is longer than {MAX_DOC_ID} characters")
    bad = _BAD_ID_CHARS.search(doc_id)
    if bad:
        raise CorpusError(f"document id must not contain control characters or backslashes ({bad.group()!r})")
    if doc_id != doc_id.strip() or doc_id.startswith("/") or doc_id.endswith("/"):
        raise CorpusError("document id must not start or end with '/' or spaces")
    if any(part in ("", ".", "..") for part in doc_id.split("/")):
        raise CorpusError("document id must not contain empty, '.' or '..' path segments")
    return doc_id


def parse_document(
    data: bytes, suffix: str, doc_id: str, title: str | None = None, source: str = "", name: str = ""
) -> Document:
    """Make a document from a file's bytes; ``suffix`` (".txt", ".md", ".html", …) says how to read it.

    Raises ``CorpusError`` if the bytes are not UTF-8 or hold no text.
    """
    name = name or doc_id
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name}: not valid UTF-8 (byte {exc.start}); save it as UTF-8 text") from None
    raw = raw.removeprefix("\ufeff")
    suffix = suffix.lower()
    if suffix in (".html", ".htm"):
        text, found = _html_to_text(raw)
        found = found or _title_from_text(text, markdown=False)
    else:
        text = raw
        found = _title_from_text(text, markdown=suffix in (".md", ".markdown"))
    if not text.strip():
        raise CorpusError(f"{name}: empty document")
    return Document(doc_id=doc_id, title=title or found, text=text, source=source)


def load_document(path: Path, doc_id: str | None = None) -> Document:
    """Read one file; raises ``CorpusError`` if it is not UTF-8 or holds no text."""
    return parse_document(
        path.read_bytes(), path.suffix, doc_id or path.name, source=str(path), name=path.name
    )


def load_corpus(path: str | Path) -> list[Document]:
    """Load every supported file under ``path`` (recursively), sorted by doc id.

    Files that are empty or not UTF-8 are skipped with a warning naming them. A missing
    folder, or one with no usable document, raises ``CorpusError``.
    """
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"corpus folder not found: {root}")
    if not root.is_dir():
        raise CorpusError(f"corpus path is not a folder: {root}")
    docs: list[Document] = []
    for file in sorted(root.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in SUFFIXES:
            continue
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            continue
        doc_id = file.relative_to(root).as_posix()
        try:
            docs.append(load_document(file, doc_id=doc_id))
        except CorpusError as exc:
            log.warning("skipping %s", exc)
    if not docs:
        raise CorpusError(f"no usable documents in {root} (looked for {', '.join(SUFFIXES)})")
    return docs


def corpus_fingerprint(documents: list[Document]) -> str:
    """A hash of every doc id and text: any added, removed or edited document changes it."""
    h = hashlib.sha256()
    for doc in sorted(documents, key=lambda d: d.doc_id):
        h.update(doc.doc_id.encode("utf-8") + b"\0" + doc.fingerprint.encode() + b"\0")
    return h.hexdigest()[:16]
