"""PDF, DOCX and HTML main-content reading: text, pages, offsets, limits and bad input."""

import io
import logging

import pytest

from corpus import (
    ChunkParams,
    CorpusError,
    DocumentTooLargeError,
    LoadOptions,
    chunk,
    load_corpus,
    parse_document,
)

from .samples import (
    BOILERPLATE_HTML,
    broken_docx,
    corrupt_pdf,
    docx_bytes,
    encrypted_pdf,
    otters_pdf,
    pdf_bytes,
    pptx_bytes,
    scanned_pdf,
    zip_bomb_docx,
)


def _check_passages(doc, params=ChunkParams()):
    passages = chunk(doc, params)
    assert passages
    for p in passages:
        assert doc.text[p.start : p.end] == p.text
        assert p.page == doc.page_at(p.start)
    return passages


def _sentences(doc):
    """The text of every sentence the passages hold, once each (what is read and searched)."""
    spans = sorted({s for p in _check_passages(doc) for s in p.sentences})
    return "\n".join(doc.text[a:b] for a, b in spans)


def test_pdf_text_and_pages():
    doc = parse_document(otters_pdf(), ".pdf", "otters.pdf")
    assert doc.title == "Sea otters"
    assert len(doc.pages) == 2
    first, second = (doc.text[s:e] for s, e in doc.pages)
    assert first == "Sea otters live along the North Pacific coast.\nThey rarely come ashore."
    assert second.startswith("Sea otters use rocks to crack open shellfish.")
    assert doc.text == first + "\n\n" + second
    at = doc.text.index("rocks")
    assert doc.page_at(at) == 2 and doc.page_at(0) == 1 and doc.page_at(len(doc.text)) == 2
    # small passages so that each page gets its own
    pages = {p.page for p in _check_passages(doc, ChunkParams(max_words=10, overlap_words=0))}
    assert pages == {1, 2}


def test_pdf_with_an_empty_page_keeps_page_numbers():
    doc = parse_document(pdf_bytes([["Page one text."], [], ["Page three text."]]), ".pdf", "a.pdf")
    assert [doc.text[s:e] for s, e in doc.pages] == ["Page one text.", "", "Page three text."]
    assert doc.page_at(doc.text.index("three")) == 3
    assert doc.title == "Page one text."


@pytest.mark.parametrize(
    ("data", "suffix", "message"),
    [
        (scanned_pdf(), ".pdf", "has no text layer (scanned or image-only pages); it needs OCR"),
        (encrypted_pdf(), ".pdf", "encrypted"),
        (corrupt_pdf(), ".pdf", "not a readable PDF"),
        (b"just some text", ".pdf", "the content is text, not what the extension '.pdf' says (a PDF)"),
        (otters_pdf(), ".txt", "the content is a PDF, not what the extension '.txt' says (text)"),
        (docx_bytes(), ".md", "the content is a zip package"),
        (b"plain words", ".docx", "not what the extension '.docx' says"),
        (otters_pdf(), ".docx", "the content is a PDF"),
        (broken_docx(), ".docx", "not a readable DOCX file (XMLSyntaxError: "),
        (pptx_bytes()[:5000], ".pptx", "not a PPTX file (not a readable zip package"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(data, suffix, message):
    with pytest.raises(CorpusError, match="^x" + suffix.replace(".", r"\.") + ": ") as err:
        parse_document(data, suffix, "x" + suffix)
    assert message in str(err.value)
    assert not isinstance(err.value, DocumentTooLargeError)


def test_sniffing_is_strict_for_text_and_lenient_for_pdf():
    text = b"A note on PDF headers: every file starts with %PDF-1.7 or similar."
    assert parse_document(text, ".txt", "note.txt").text == text.decode()
    assert parse_document(b"\n\n" + otters_pdf(), ".pdf", "lead.pdf").title == "Sea otters"


def test_limits():
    with pytest.raises(DocumentTooLargeError, match="3 pages; the limit is 2"):
        parse_document(pdf_bytes([["a."], ["b."], ["c."]]), ".pdf", "x.pdf", options=LoadOptions(max_pages=2))
    with pytest.raises(DocumentTooLargeError, match="characters of text"):
        parse_document(otters_pdf(), ".pdf", "x.pdf", options=LoadOptions(max_chars=50))
    with pytest.raises(DocumentTooLargeError, match="characters of text"):
        parse_document(b"words " * 20, ".txt", "x.txt", options=LoadOptions(max_chars=50))
    with pytest.raises(DocumentTooLargeError, match="the limit is 10"):
        parse_document(b"more than ten bytes", ".txt", "x.txt", options=LoadOptions(max_bytes=10))


def test_zip_bomb_docx_is_refused_before_unpacking():
    with pytest.raises(DocumentTooLargeError, match="possible zip bomb"):
        parse_document(zip_bomb_docx(), ".docx", "bomb.docx")
    # a small package is judged by its declared unpacked size alone
    with pytest.raises(DocumentTooLargeError, match="unpacks to"):
        parse_document(docx_bytes(), ".docx", "x.docx", options=LoadOptions(max_unzipped_bytes=1000))


def test_docx_paragraphs_headings_and_tables():
    doc = parse_document(docx_bytes(), ".docx", "otters.docx")
    assert doc.title == "River otters"
    assert doc.pages == () and doc.page_at(0) is None
    assert doc.text == (
        "River otters\n\nRiver otters live in rivers and lakes.\n\n"
        "Species | Weight\nEurasian otter | 7 to 12 kg\n\nThey eat mostly fish, and sometimes frogs."
    )
    assert all(p.page is None for p in _check_passages(doc))


def test_docx_one_column_table_rows_are_kept_even_when_repeated():
    # a one-column table has no " | " to mark its rows; in a web page such lines would be boilerplate
    import docx

    d = docx.Document()
    d.add_paragraph("Permits granted by the harbour board, one per row:")
    table = d.add_table(rows=4, cols=1)
    for r, value in enumerate(["UNESCO", "N/A", "N/A", "N/A"]):
        table.cell(r, 0).text = value
    buf = io.BytesIO()
    d.save(buf)
    doc = parse_document(buf.getvalue(), ".docx", "permits.docx")
    kept = " ".join(p.text for p in _check_passages(doc))
    assert "UNESCO" in kept and kept.count("N/A") == 3
    # the same text as a plain text file still loses them as debris and repeated lines
    plain = parse_document(doc.text.encode(), ".txt", "permits.txt")
    kept = " ".join(p.text for p in _check_passages(plain))
    assert "UNESCO" not in kept and "N/A" not in kept


def test_pdf_running_headers_are_cut_but_repeated_table_cells_inside_a_page_are_kept():
    page = [
        "HARBOUR BOARD",  # running header: repeated at the top of every page, and debris
        "Quarterly report on permits.",
        "Permits granted by the harbour board, one per row:",
        "UNESCO",
        "N/A",
        "The board meets again in spring.",
        "Printed for the harbour office",  # running footer
    ]
    doc = parse_document(pdf_bytes([page, page, page]), ".pdf", "permits.pdf")
    assert len(doc.pages) == 3
    kept = _sentences(doc)
    assert "HARBOUR BOARD" not in kept and "Printed for the harbour office" not in kept
    assert kept.count("UNESCO") == 3 and kept.count("N/A") == 3
    # without pages (the same text as a plain text file) they are cut as debris and repeated lines
    plain = parse_document(doc.text.encode(), ".txt", "permits.txt")
    kept = _sentences(plain)
    assert "UNESCO" not in kept and "N/A" not in kept


def test_docx_title_is_the_first_heading_wherever_it_stands():
    import docx

    d = docx.Document()
    d.add_paragraph("Draft, not for circulation.")
    d.add_paragraph("")
    d.add_heading("Harbour works", level=2)
    d.add_paragraph("The breakwater was built in 1820.")
    d.add_heading("Later repairs", level=2)
    buf = io.BytesIO()
    d.save(buf)
    doc = parse_document(buf.getvalue(), ".docx", "harbour.docx")
    assert doc.title == "Harbour works"
    _check_passages(doc)


def test_pptx_slides_are_pages():
    doc = parse_document(pptx_bytes(), ".pptx", "survey.pptx")
    assert [doc.text[s:e] for s, e in doc.pages] == [
        "Otter survey 2024\n\nWe counted 212 sea otters in Monterey Bay.",
        "",
        "Counts\n\nSite | Otters\nElkhorn Slough | 98",
    ]
    assert doc.title == "Otter survey 2024"
    assert doc.page_at(doc.text.index("Elkhorn")) == 3
    _check_passages(doc, ChunkParams(max_words=8, overlap_words=0))
    with pytest.raises(DocumentTooLargeError, match="3 slides; the limit is 2"):
        parse_document(pptx_bytes(), ".pptx", "x.pptx", options=LoadOptions(max_pages=2))
    with pytest.raises(CorpusError, match="not a PPTX file"):
        parse_document(docx_bytes(), ".pptx", "x.pptx")


def test_html_main_content_drops_boilerplate_visible_keeps_it():
    main = parse_document(BOILERPLATE_HTML.encode(), ".html", "otters.html")
    assert main.title == "Otter facts"
    assert "Sea otters use rocks to crack open shellfish." in main.text
    for boilerplate in ("About us", "newsletter", "Copyright"):
        assert boilerplate not in main.text
    _check_passages(main)
    visible = parse_document(
        BOILERPLATE_HTML.encode(), ".html", "o.html", options=LoadOptions(html="visible")
    )
    assert "newsletter" in visible.text and "Sea otters use rocks" in visible.text
    # a page without main content falls back to its visible text
    tiny = parse_document(b"<p>Hi there.</p>", ".html", "tiny.html")
    assert tiny.text == "Hi there."


def test_folder_walk_takes_every_type_and_skips_bad_files(tmp_path, caplog):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "otters.pdf").write_bytes(otters_pdf())
    (tmp_path / "sub" / "river.docx").write_bytes(docx_bytes())
    (tmp_path / "sub" / "deeper" / "page.html").write_text(BOILERPLATE_HTML)
    (tmp_path / "notes.md").write_text("# Notes\n\nOtters hold hands while sleeping.")
    (tmp_path / "sub" / "scan.pdf").write_bytes(scanned_pdf())
    (tmp_path / "locked.pdf").write_bytes(encrypted_pdf())
    (tmp_path / "fake.pdf").write_text("not a pdf")
    (tmp_path / "bomb.docx").write_bytes(zip_bomb_docx())
    (tmp_path / "data.csv").write_text("a,b\n")
    with caplog.at_level(logging.WARNING):
        docs = {d.doc_id: d for d in load_corpus(tmp_path)}
    assert set(docs) == {"otters.pdf", "sub/river.docx", "sub/deeper/page.html", "notes.md"}
    assert len(docs["otters.pdf"].pages) == 2
    # only the corpus's own records: a Ray cluster left by another test logs from its threads
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("corpus")]
    assert len(warnings) == 5
    assert warnings[-1] == (
        f"read 4 of 8 documents in {tmp_path}; skipped 4 that cannot be used (see above); "
        "1 files of other types ignored"
    )
    assert any(w.startswith("skipping sub/scan.pdf: ") and "OCR" in w for w in warnings)
    assert any(w.startswith("skipping locked.pdf: ") and "encrypted" in w for w in warnings)
    assert all("\n" not in w for w in warnings)
