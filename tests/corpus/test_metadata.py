"""Document metadata: what files give, what uploads may add, and how ``where`` compares."""

import os

import pytest

from corpus import CorpusError, load_corpus, load_document, parse_document
from corpus.metadata import canonical, check_metadata, matches, modified, parse_where

from .samples import otters_pdf


def test_files_give_type_path_and_modified_time(tmp_path):
    (tmp_path / "sub").mkdir()
    note = tmp_path / "sub" / "note.md"
    note.write_text("# Plans\n\nThe bridge opens in May.")
    os.utime(note, (1_700_000_000, 1_700_000_000))
    (tmp_path / "otters.pdf").write_bytes(otters_pdf())
    docs = {d.doc_id: d for d in load_corpus(tmp_path)}
    assert docs["sub/note.md"].metadata == {
        "type": "md",
        "path": "sub/note.md",
        "modified": "2023-11-14T22:13:20Z",
    }
    assert docs["sub/note.md"].fields == {"title": "Plans", **docs["sub/note.md"].metadata}
    pdf = docs["otters.pdf"].fields
    assert pdf["type"] == "pdf" and pdf["pages"] == 2 and pdf["path"] == "otters.pdf"
    one = load_document(note, name=str(note))
    assert one.metadata["path"] == str(note)  # as given on the command line
    assert modified(1e20) == {}  # a time no calendar holds is left out, not an error
    html = parse_document(b"<p>Hello there.</p>", ".htm", "a.htm", metadata={"team": "web"})
    assert html.metadata == {"type": "html", "team": "web"}


def test_upload_metadata_is_checked():
    assert check_metadata({"team": "audit", "year": 2024, "rev": 1.5}) == {
        "team": "audit",
        "year": 2024,
        "rev": 1.5,
    }
    for bad, words in [
        ([1], "JSON object"),
        ({"type": "pdf"}, "reserved"),
        ({"": "x"}, "non-empty"),
        ({"k" * 65: "x"}, "non-empty"),
        ({"a": None}, "strings or numbers"),
        ({"a": True}, "strings or numbers"),
        ({"a": [1]}, "strings or numbers"),
        ({"a": float("nan")}, "finite"),
        ({"a": "x" * 1001}, "1000"),
        ({str(i): i for i in range(65)}, "at most 64"),
        ({"a": 2**60}, "2\\*\\*53"),
        ({"a": "\ud800"}, "surrogate"),
        ({"\ud800": "x"}, "surrogate"),
        ({" a": "x"}, "spaces"),
    ]:
        with pytest.raises(CorpusError, match=words):
            check_metadata(bad)
    assert check_metadata({"type": "pdf"}, allow_reserved=True) == {"type": "pdf"}


def test_where_compares_numbers_by_value_and_text_exactly():
    meta = {"type": "pdf", "year": 2024, "rev": 1.5}
    assert matches(meta, {}) and matches(meta, {"type": "pdf"})
    assert (
        matches(meta, {"year": "2024"}) and matches(meta, {"year": 2024.0}) and matches(meta, {"rev": "1.5"})
    )
    assert (
        not matches(meta, {"type": "PDF"})
        and not matches(meta, {"year": 2023})
        and not matches(meta, {"x": "1"})
    )
    assert not matches({"code": "007"}, {"code": 7})  # text is compared as written
    assert canonical(2**53) == "9007199254740992" and canonical(2.5) == "2.5" and canonical(3.0) == "3"
    assert matches({"n": 9007199254740993}, {"n": "9007199254740993"})  # integers compare exactly
    assert parse_where(["type=pdf", "note=a=b", " k =v"]) == {"type": "pdf", "note": "a=b", "k": "v"}
    for bad in ("type", "=pdf"):
        with pytest.raises(CorpusError, match="key=value"):
            parse_where([bad])
    with pytest.raises(CorpusError, match="given twice"):
        parse_where(["team=audit", "team=legal"])
