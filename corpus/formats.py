"""Reading PDF, DOCX and HTML into text, with page spans where the format has pages.

Each reader returns an ``Extracted``: the text every offset will point into, a title found
in the file, and the (start, end) span of each page in that text. The parsing libraries are
imported inside the readers, so ``import corpus`` stays fast.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from corpus.errors import CorpusError, DocumentTooLargeError

PAGE_SEPARATOR = "\n\n"  # between pages: a paragraph break, so no sentence spans two pages
# unpacked bytes per packed byte above which a large zip is taken for a bomb; text XML packs ~10:1
MAX_ZIP_RATIO = 100
_ZIP_RATIO_FLOOR = 10_000_000  # small packages may pack better than that and are harmless anyway
_PDFIUM = threading.Lock()  # PDFium is not thread-safe


@dataclass(frozen=True)
class LoadOptions:
    """Limits on one document and how HTML is read.

    ``html`` is ``"main"`` (the main content: navigation, headers, footers and other
    boilerplate removed; the visible text where no main content is found) or ``"visible"``
    (all visible text).
    """

    max_bytes: int = 200_000_000
    max_pages: int = 2_000
    max_chars: int = 10_000_000
    max_unzipped_bytes: int = 200_000_000
    html: str = "main"

    def __post_init__(self) -> None:
        if self.html not in ("main", "visible"):
            raise ValueError(f"html must be 'main' or 'visible', not {self.html!r}")


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str
    pages: tuple[tuple[int, int], ...] = ()


def sniff(data: bytes) -> str:
    """What the bytes are, whatever the file is called: ``"pdf"``, ``"zip"`` or ``"text"``."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    return "text"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _clean_page(text: str) -> str:
    # PDFium ends lines with \r\n and marks a hyphen at a line break with \x02
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x02", "-\n")
    text = _CONTROL.sub(" ", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def read_pdf(data: bytes, name: str, options: LoadOptions) -> Extracted:
    """The text layer of every page, pages joined by ``PAGE_SEPARATOR``."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
                raise CorpusError(
                    f"{name}: the PDF is encrypted (password-protected); save a copy without a password"
                ) from None
            raise CorpusError(f"{name}: not a readable PDF ({exc})") from None
        try:
            if len(pdf) > options.max_pages:
                raise DocumentTooLargeError(
                    f"{name}: the PDF has {len(pdf)} pages; the limit is {options.max_pages}"
                )
            texts: list[str] = []
            total = 0
            for i in range(len(pdf)):
                page = pdf[i]
                textpage = page.get_textpage()
                texts.append(_clean_page(textpage.get_text_bounded()))
                textpage.close()
                page.close()
                total += len(texts[-1]) + len(PAGE_SEPARATOR)
                if total > options.max_chars:
                    raise DocumentTooLargeError(
                        f"{name}: the PDF holds more than {options.max_chars} characters of text (the limit)"
                    )
            title = str(pdf.get_metadata_dict().get("Title", "")).strip()
        except pdfium.PdfiumError as exc:
            raise CorpusError(f"{name}: not a readable PDF ({exc})") from None
        finally:
            pdf.close()
    if not any(t.strip() for t in texts):
        raise CorpusError(f"{name}: the PDF has no text layer (scanned or image-only pages); it needs OCR")
    return _paged(texts, title)


def _paged(texts: list[str], title: str) -> Extracted:
    """Pages' texts joined by ``PAGE_SEPARATOR``, with the span of each."""
    pages = []
    start = 0
    for t in texts:
        pages.append((start, start + len(t)))
        start += len(t) + len(PAGE_SEPARATOR)
    return Extracted(PAGE_SEPARATOR.join(texts), title, tuple(pages))


def check_zip(data: bytes, name: str, options: LoadOptions, member: str, kind: str) -> None:
    """Refuse a package that is not a zip holding ``member``, or that would unpack too large.

    The declared sizes are what counts: Python's zipfile stops reading a member at its
    declared size, so a package cannot unpack to more than it declares.
    """
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise CorpusError(f"{name}: not a {kind} file (not a readable zip package: {exc})") from None
    if member not in {i.filename for i in infos}:
        raise CorpusError(f"{name}: not a {kind} file (the package has no {member})")
    unpacked = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    ratio = unpacked / packed
    if unpacked > options.max_unzipped_bytes or (unpacked > _ZIP_RATIO_FLOOR and ratio > MAX_ZIP_RATIO):
        raise DocumentTooLargeError(
            f"{name}: the {kind} package unpacks to {unpacked} bytes ({ratio:.0f} times its packed "
            f"size; limits {options.max_unzipped_bytes} bytes and {MAX_ZIP_RATIO} times): "
            "refused as a possible zip bomb"
        )


def read_docx(data: bytes, name: str, options: LoadOptions) -> Extracted:
    """Paragraphs, headings and tables (a row per line, cells between " | ") in document order."""
    check_zip(data, name, options, "word/document.xml", "DOCX")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        heading = ""
        # python-docx resolves a paragraph's style by scanning every style of the document, each
        # time: asked for every paragraph, that was 95 % of reading a long DOCX (bench.ingest).
        # So it is asked once per style id, and only until the first heading is found.
        style_names: dict[str | None, str] = {}
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                text = item.text.strip()
                if text and not heading:
                    style_id = item._p.style
                    if style_id not in style_names:
                        style_names[style_id] = (item.style.name if item.style is not None else "") or ""
                    if style_names[style_id].startswith(("Title", "Heading")):
                        heading = text
            elif isinstance(item, Table):
                text = "\n".join(_row_text(row.cells) for row in item.rows).strip()
            else:  # pragma: no cover - iter_inner_content yields only these two
                continue
            if text:
                blocks.append(text)
        title = (document.core_properties.title or "").strip() or heading
    except Exception as exc:  # whatever the parser trips over (bad XML, a missing part) makes it unreadable
        raise CorpusError(f"{name}: not a readable DOCX file ({type(exc).__name__}: {exc})") from None
    text = _CONTROL.sub(" ", "\n\n".join(blocks))
    if len(text) > options.max_chars:
        raise DocumentTooLargeError(f"{name}: more than {options.max_chars} characters of text (the limit)")
    return Extracted(text, title)


def read_pptx(data: bytes, name: str, options: LoadOptions) -> Extracted:
    """The text of each slide (text boxes, then tables, in the slide's order) as a page."""
    check_zip(data, name, options, "ppt/presentation.xml", "PPTX")
    import pptx

    try:
        deck = pptx.Presentation(io.BytesIO(data))
        if len(deck.slides) > options.max_pages:
            raise DocumentTooLargeError(
                f"{name}: the presentation has {len(deck.slides)} slides; the limit is {options.max_pages}"
            )
        texts = [_CONTROL.sub(" ", "\n\n".join(_shape_texts(slide.shapes))) for slide in deck.slides]
        title = (deck.core_properties.title or "").strip()
    except CorpusError:
        raise
    except Exception as exc:  # as for DOCX
        raise CorpusError(f"{name}: not a readable PPTX file ({type(exc).__name__}: {exc})") from None
    if sum(len(t) for t in texts) > options.max_chars:
        raise DocumentTooLargeError(f"{name}: more than {options.max_chars} characters of text (the limit)")
    return _paged(texts, title)


def _shape_texts(shapes: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for shape in shapes:
        if getattr(shape, "shapes", None) is not None:  # a group
            out.extend(_shape_texts(shape.shapes))
        elif getattr(shape, "has_text_frame", False):
            text = "\n".join(" ".join(p.text.split()) for p in shape.text_frame.paragraphs).strip()
            if text:
                out.append(text)
        elif getattr(shape, "has_table", False):
            out.append("\n".join(_row_text(row.cells) for row in shape.table.rows).strip())
    return [t for t in out if t]


def _row_text(cells: Iterable[Any]) -> str:
    texts: list[str] = []
    for cell in cells:
        t = " ".join(cell.text.split())
        if not texts or t != texts[-1]:  # a merged cell comes back once per grid column
            texts.append(t)
    return " | ".join(texts)


def read_html_main(raw: str) -> str:
    """The page's main content (boilerplate removed), paragraphs separated by blank lines; "" if none."""
    import trafilatura

    main = trafilatura.extract(
        raw, include_tables=True, include_comments=False, favor_precision=True, deduplicate=False
    )
    if not main:
        return ""
    lines = [" ".join(line.split()) for line in main.splitlines()]
    return "\n\n".join(line for line in lines if line)
