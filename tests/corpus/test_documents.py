import logging

import pytest

from corpus import CorpusError, load_corpus

from ..conftest import DEFAULT_CORPUS


def test_default_corpus_loads_with_titles():
    docs = load_corpus(DEFAULT_CORPUS)
    assert [d.doc_id for d in docs] == sorted(d.doc_id for d in docs)
    assert len(docs) == 3
    titles = {d.title for d in docs}
    assert "North Korea–Vietnam relations" in titles


def test_formats_titles_and_skips_bad_files(tmp_path, caplog):
    (tmp_path / "a.txt").write_text("First line title\n\nBody text here.")
    (tmp_path / "b.md").write_text("intro\n# The Heading\n\nSome *markdown* text.")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Page T</title><script>var x=1;</script></head>"
        "<body><h1>Head</h1><p>Hello &amp; welcome.</p><p>Second para.</p></body></html>"
    )
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 latin-1")
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "ignored.csv").write_text("a,b\n")
    with caplog.at_level(logging.WARNING):
        docs = {d.doc_id: d for d in load_corpus(tmp_path)}
    assert set(docs) == {"a.txt", "b.md", "c.html"}
    assert docs["a.txt"].title == "First line title"
    assert docs["b.md"].title == "The Heading"
    assert docs["c.html"].title == "Page T"
    html = docs["c.html"].text
    assert "Hello & welcome." in html and "var x" not in html and "<p>" not in html
    assert "bad.txt" in caplog.text and "UTF-8" in caplog.text
    assert "empty.txt" in caplog.text


def test_missing_and_empty_folders_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no usable documents"):
        load_corpus(tmp_path)
