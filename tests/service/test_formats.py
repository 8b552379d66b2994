"""PDF and DOCX through the API: pages in answers, citations, passages and documents; bad files."""

import json

import pytest

from service import Pipeline

from ..conftest import DEFAULT_CORPUS
from ..corpus import samples
from .test_documents import _check_invariant

PDF_TYPE = "application/pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX_TYPE = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
QUESTION = "What do sea otters use to crack open shellfish?"


def test_pdf_upload_then_ask_cites_the_page(make_client, tmp_path, embedder):
    with make_client() as c:
        r = c.post("/documents", files={"file": ("otters.pdf", samples.otters_pdf(), PDF_TYPE)})
        assert r.status_code == 201, r.text
        assert r.json()["title"] == "Sea otters"
        doc = c.get("/documents/otters.pdf").json()
        assert [p["page"] for p in doc["pages"]] == [1, 2]
        second = doc["pages"][1]
        assert doc["text"][second["start"] : second["end"]].startswith("Sea otters use rocks")
        assert "pages" not in c.get("/documents/002_4aa47291d7cb64dc.txt").json()

        body = c.post("/ask", json={"question": QUESTION}).json()
        _check_invariant(c, body)
        answer = body["answers"][0]
        assert answer["doc_id"] == "otters.pdf" and "rocks" in answer["text"]
        assert answer["page"] == 2 and answer["citations"][0]["page"] == 2
        chat = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]})
        reply = chat.json()["choices"][0]["message"]
        assert "otters.pdf:" in reply["content"] and ", p. 2\n" in reply["content"]  # Sources
        assert reply["annotations"][0]["url_citation"]["page"] == 2
        assert second["start"] <= answer["start"] < second["end"]
        pdf_passages = [p for p in body["passages"] if p["doc_id"] == "otters.pdf"]
        assert pdf_passages and all(p["page"] == 1 for p in pdf_passages)  # one passage, from page 1
        assert all(p["page"] is None for p in body["passages"] if p["doc_id"] != "otters.pdf")
        found = c.get("/search", params={"q": "sea otters shellfish"}).json()["passages"]
        assert any(p["doc_id"] == "otters.pdf" and p["page"] == 1 for p in found)

        r = c.post("/documents", files={"file": ("otters.docx", samples.docx_bytes(), DOCX_TYPE)})
        assert r.status_code == 201 and r.json()["title"] == "River otters"
        assert "pages" not in c.get("/documents/otters.docx").json()
        body = c.post("/ask", json={"question": "How much does a Eurasian otter weigh?", "top_k": 5}).json()
        _check_invariant(c, body)
        assert body["answers"][0]["doc_id"] == "otters.docx" and body["answers"][0]["page"] is None

    # the pages are stored: a restart serves them
    index_dir = tmp_path / "index"
    p = Pipeline(DEFAULT_CORPUS, index_dir, embedder=embedder, write_embedder=embedder)
    p.warm_up(build_if_needed=True, load_reader=False)
    assert p.document("otters.pdf").pages == tuple((d["start"], d["end"]) for d in doc["pages"])
    assert {ps.page for ps in p.index.passages if ps.doc_id == "otters.pdf"} == {1}

    # a version written before pages existed still loads, without pages
    version = index_dir / "versions" / f"{p.index.version:08d}"
    table = json.loads((version / "documents.json").read_text())
    for row in table["documents"]:
        row.pop("pages", None)
    (version / "documents.json").write_text(json.dumps(table))
    rows = [json.loads(line) for line in (version / "passages.jsonl").read_text().splitlines()]
    (version / "passages.jsonl").write_text("".join(json.dumps({**r, "page": None}) + "\n" for r in rows))
    old = Pipeline(DEFAULT_CORPUS, index_dir, embedder=embedder, write_embedder=embedder)
    old.warm_up(load_reader=False)
    assert old.document("otters.pdf").pages == ()


@pytest.mark.parametrize(
    "name, data, content_type, status, words",
    [
        (
            "scan.pdf",
            samples.scanned_pdf(),
            PDF_TYPE,
            422,
            "has no text layer (scanned or image-only pages); it needs OCR",
        ),
        ("locked.pdf", samples.encrypted_pdf(), PDF_TYPE, 422, "the PDF is encrypted (password-protected)"),
        ("broken.pdf", samples.corrupt_pdf(), PDF_TYPE, 422, "broken.pdf: not a readable PDF"),
        (
            "fake.pdf",
            b"hello there",
            PDF_TYPE,
            422,
            "the content is text, not what the extension '.pdf' says",
        ),
        ("paper.txt", samples.otters_pdf(), "text/plain", 422, "the content is a PDF"),
        ("bomb.docx", samples.zip_bomb_docx(), DOCX_TYPE, 413, "refused as a possible zip bomb"),
        ("notes.docx", b"plain words", DOCX_TYPE, 422, "not what the extension '.docx' says"),
        ("sheet.xlsx", b"PK\x03\x04", "application/zip", 415, "accepted are .txt, .md, .markdown, .html"),
        ("long.pdf", samples.pdf_bytes([["a."], ["b."], ["c."]]), PDF_TYPE, 413, "3 pages; the limit is 2"),
    ],
)
def test_bad_files_get_a_clear_4xx_and_change_nothing(make_client, name, data, content_type, status, words):
    with make_client(max_pages=2) as c:
        before = c.get("/health").json()
        r = c.post("/documents", files={"file": (name, data, content_type)})
        assert r.status_code == status, r.text
        assert words in r.json()["detail"]
        assert c.get("/health").json() == before


def test_pdf_and_pptx_by_content_type_slides_are_pages(make_client):
    with make_client() as c:
        r = c.post("/documents", files={"file": ("otters", samples.otters_pdf(), PDF_TYPE)})
        assert r.status_code == 201, r.text
        assert len(c.get("/documents/otters").json()["pages"]) == 2
        r = c.post("/documents", files={"file": ("survey", samples.pptx_bytes(), PPTX_TYPE)})
        assert r.status_code == 201, r.text
        assert [p["page"] for p in c.get("/documents/survey").json()["pages"]] == [1, 2, 3]
        body = c.post("/ask", json={"question": "How many otters were counted at Elkhorn Slough?"}).json()
        _check_invariant(c, body)
        pages = {a["text"]: a["page"] for a in body["answers"] if a["doc_id"] == "survey"}
        assert pages.get("98") == 3 and pages.get("212") == 1, body["answers"]  # slides 3 and 1


def test_openapi_names_the_new_types(make_client):
    with make_client() as c:
        spec = c.get("/openapi.json").json()
        body = spec["paths"]["/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert ".pdf" in body["schema"]["properties"]["file"]["description"]
        assert "page" in spec["components"]["schemas"]["AnswerOut"]["properties"]
        assert "pages" in spec["components"]["schemas"]["DocumentOut"]["properties"]
