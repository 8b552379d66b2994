"""The ingestion benchmark: every format is read and chunked, offsets hold, results are written."""

import json

from bench.ingest import main, make_html, make_pdf


def test_every_format_is_read_and_chunked_and_written(tmp_path, capsys):
    assert main(["--pdf-pages", "3", "--mb", "0.02", "--repeats", "1", "--out-dir", str(tmp_path)]) == 0
    (written,) = tmp_path.glob("ingest-*.json")
    result = json.loads(written.read_text())
    rows = {r["format"]: r for r in result["formats"]}
    assert set(rows) == {"PDF", "DOCX", "HTML, main content", "HTML, visible text", "Markdown", "plain text"}
    assert rows["PDF"]["pages"] == 3 and rows["PDF"]["pages_per_s"] > 0
    for r in rows.values():
        assert r["text_mb"] > 0 and r["passages"] > 0 and r["read_mb_per_s"] > 0 and r["chunk_mb_per_s"] > 0
    assert result["machine"]["model"] and "| PDF |" in capsys.readouterr().out


def test_the_made_documents_read_back_as_their_text():
    from corpus import parse_document

    paras = ["First paragraph of the benchmark text, long enough to wrap.", "Second one, with more words."]
    pdf = parse_document(make_pdf(paras, 1), ".pdf", "b.pdf")
    assert "First paragraph" in pdf.text and len(pdf.pages) == 1
    html = parse_document(make_html(paras), ".html", "b.html")
    assert "Second one, with more words." in html.text and "Section 3" not in html.text  # navigation dropped
