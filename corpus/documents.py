"""Loading documents (.txt, .md, .html, .pdf, .docx, .pptx) and folders of them into ``Document`` records."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from corpus.errors import CorpusError, DocumentTooLargeError
from corpus.formats import Extracted, LoadOptions, read_docx, read_html_main, read_pdf, read_pptx, sniff
from corpus.metadata import Metadata, Value, file_type, modified

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
SUFFIXES = (*TEXT_SUFFIXES, ".pdf", ".docx", ".pptx")


@dataclass(frozen=True)
class Document:
    """One document. ``text`` is what every offset points into.

    For .txt and .md it is the file's text exactly; for the other formats it is the text
    extracted from the file (offsets point into that text, which ``/documents/{id}``
    returns). ``pages`` holds the (start, end) span of each page in ``text`` for formats
    with pages (PDF pages, PPTX slides), and is empty for the others. ``metadata`` holds what
    the file says (``type``, ``path``, ``modified``) and what an upload adds; ``fields`` adds
    the title and page count to it.
    """

    doc_id: str
    title: str
    text: str
    source: str = ""
    pages: tuple[tuple[int, int], ...] = ()
    metadata: Metadata = field(default_factory=dict, hash=False)

    @property
    def fields(self) -> dict[str, Value]:
        """The metadata filters see and ``GET /documents`` shows."""
        pages: dict[str, Value] = {"pages": len(self.pages)} if self.pages else {}
        return {"title": self.title, **pages, **self.metadata}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    def page_at(self, offset: int) -> int | None:
        """The 1-based page that holds ``offset`` (one between two pages: the one before), or None."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset, key=lambda span: span[0]))


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
    leading or trailing "/" or spaces, no empty, "." or ".." segments, at most 200 characters,
    and valid Unicode: no lone surrogate, no replacement character (U+FFFD) left by bytes that
    were not UTF-8.
    """
    if not isinstance(doc_id, str) or not doc_id:
        raise CorpusError("document id must not be empty")
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        raise CorpusError("document id is not valid Unicode (it holds a lone surrogate)") from None
    if "\ufffd" in doc_id:  # what a URL path or a form field that was not UTF-8 decodes to
        raise CorpusError("document id holds U+FFFD, the replacement character: it was not valid UTF-8")
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


_KINDS = {".pdf": "pdf", ".docx": "zip", ".pptx": "zip"}
_NAMES = {"pdf": "a PDF", "zip": "a zip package (DOCX, PPTX or similar)", "text": "text"}


def _extract(data: bytes, suffix: str, name: str, options: LoadOptions) -> Extracted:
    """Read ``data`` as the format ``suffix`` names, after checking that the content is of that kind."""
    kind = sniff(data)
    expected = _KINDS.get(suffix, "text")
    if expected == "pdf" and b"%PDF-" in data[:1024]:
        kind = "pdf"  # readers accept a header anywhere in the first KB; a text merely naming it is no PDF
    if kind != expected:
        raise CorpusError(
            f"{name}: the content is {_NAMES[kind]}, not what the extension {suffix or '(none)'!r} says "
            f"({_NAMES[expected]}); give the file its right extension"
        )
    if suffix == ".pdf":
        return read_pdf(data, name, options)
    if suffix == ".docx":
        return read_docx(data, name, options)
    if suffix == ".pptx":
        return read_pptx(data, name, options)
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name}: not valid UTF-8 (byte {exc.start}); save it as UTF-8 text") from None
    raw = raw.removeprefix("\ufeff")
    if suffix in (".html", ".htm"):
        visible, found = _html_to_text(raw)
        text = (read_html_main(raw) if options.html == "main" else "") or visible
        return Extracted(text, found or _title_from_text(text, markdown=False))
    return Extracted(raw, _title_from_text(raw, markdown=suffix in (".md", ".markdown")))


def parse_document(
    data: bytes,
    suffix: str,
    doc_id: str,
    title: str | None = None,
    source: str = "",
    name: str = "",
    options: LoadOptions = LoadOptions(),
    metadata: Mapping[str, Value] | None = None,
) -> Document:
    """Make a document from a file's bytes; ``suffix`` (".txt", ".pdf", …) says how to read it.

    Its metadata is ``{"type": <from suffix>}`` and then ``metadata`` (checked by the caller).

    Raises ``CorpusError`` when the content does not match the suffix, cannot be read (not
    UTF-8, a corrupt or encrypted PDF, a PDF without a text layer) or holds no text, and
    ``DocumentTooLargeError`` when it is over one of ``options``' limits.
    """
    name = name or doc_id
    if len(data) > options.max_bytes:
        raise DocumentTooLargeError(
            f"{name}: the file is {len(data)} bytes; the limit is {options.max_bytes}"
        )
    found = _extract(data, suffix.lower(), name, options)
    if len(found.text) > options.max_chars:
        raise DocumentTooLargeError(f"{name}: more than {options.max_chars} characters of text (the limit)")
    if not found.text.strip():
        raise CorpusError(f"{name}: empty document")
    return Document(
        doc_id=doc_id, title=title or found.title or _title_from_text(found.text, markdown=False),
        text=found.text, source=source, pages=found.pages,
        metadata={"type": file_type(suffix), **(metadata or {})},
    )  # fmt: skip


def load_document(
    path: Path, doc_id: str | None = None, options: LoadOptions = LoadOptions(), name: str = ""
) -> Document:
    """Read one file; raises ``CorpusError`` when it cannot be used (see ``parse_document``).

    Its metadata gets ``path`` (``name``: the path relative to the folder read, or as given)
    and ``modified``.
    """
    name = name or path.name
    try:
        stat = path.stat()
        size = stat.st_size
        if size > options.max_bytes:
            raise DocumentTooLargeError(f"{name}: the file is {size} bytes; the limit is {options.max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    return parse_document(
        data, path.suffix, doc_id or path.name, source=str(path), name=name, options=options,
        metadata={"path": name, **modified(stat.st_mtime)},
    )  # fmt: skip


def corpus_files(root: Path) -> tuple[list[Path], int]:
    """The supported files under ``root`` (sub-folders too; hidden ones left out), and how many
    other files were passed over."""
    files: list[Path] = []
    others = 0
    for file in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in file.relative_to(root).parts) or not file.is_file():
            continue
        if file.suffix.lower() in SUFFIXES:
            files.append(file)
        else:
            others += 1
    return files, others


def load_corpus(
    path: str | Path, options: LoadOptions = LoadOptions(), show_progress: bool = False
) -> list[Document]:
    """Load every supported file under ``path`` (recursively), sorted by doc id.

    A file that cannot be used is skipped with a one-line warning naming it and why, and a
    summary follows the warnings. A missing folder, or one with no usable document, raises
    ``CorpusError``.
    """
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"corpus folder not found: {root}")
    if not root.is_dir():
        raise CorpusError(f"corpus path is not a folder: {root}")
    files, others = corpus_files(root)
    docs: list[Document] = []
    skipped = 0
    with _progress(files, show_progress) as bar:
        for file in bar:
            doc_id = file.relative_to(root).as_posix()
            try:
                docs.append(load_document(file, doc_id=doc_id, options=options, name=doc_id))
            except CorpusError as exc:
                skipped += 1
                log.warning("skipping %s", exc)
    if skipped:
        ignored = f"; {others} files of other types ignored" if others else ""
        log.warning(
            "read %d of %d documents in %s; skipped %d that cannot be used (see above)%s",
            len(docs), len(files), root, skipped, ignored,
        )  # fmt: skip
    if not docs:
        raise CorpusError(f"no usable documents in {root} (looked for {', '.join(SUFFIXES)})")
    return docs


@contextlib.contextmanager
def _progress(files: list[Path], show: bool) -> Iterator[Iterable[Path]]:
    """``files``, behind a progress bar when asked for (warnings print above the bar)."""
    if not show or len(files) < 2:
        yield files
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(files, desc="Reading", unit="file") as bar:
        yield bar


def corpus_fingerprint(documents: list[Document]) -> str:
    """A hash of every doc id and text: any added, removed or edited document changes it."""
    h = hashlib.sha256()
    for doc in sorted(documents, key=lambda d: d.doc_id):
        h.update(doc.doc_id.encode("utf-8") + b"\0" + doc.fingerprint.encode() + b"\0")
    return h.hexdigest()[:16]
