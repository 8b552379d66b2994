"""Document metadata and the doc_ids / where filters: HTTP, CLI, MCP and the chat endpoint."""

import io
import json

import anyio
import pytest
from docx import Document as Docx

from service.cli import main

from ..conftest import DEFAULT_CORPUS
from ..corpus.samples import otters_pdf

BUILT = "When was Harlow Mill built?"
JSON = {"content-type": "application/json"}

MEMO = (
    "Audit memo 14\n\nThe audit of the Harlow branch found that the night safe was last serviced in "
    "March 2023. The auditors asked for a new service contract before the end of the year."
)
LETTER = (
    "Letter from the legal team\n\nThe lease of the Harlow branch runs until 2031. The night safe is "
    "the landlord's responsibility under clause 9 of the lease."
)


def _docx(*paragraphs: str) -> bytes:
    doc = Docx()
    for p in paragraphs:
        doc.add_paragraph(p)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_doc_ids_limit_the_documents_before_ranking(scripted_client, scripted_pipeline):
    body = scripted_client.post("/ask", json={"question": BUILT}).json()
    assert body["answers"][0]["text"] == "1850"  # the register's answer wins unfiltered

    only_blog = scripted_client.post("/ask", json={"question": BUILT, "doc_ids": ["mill_blog.txt"]}).json()
    assert [a["text"] for a in only_blog["answers"]] == ["1862"]
    assert {p["doc_id"] for p in only_blog["passages"]} == {"mill_blog.txt"}
    assert only_blog["agreement"] == "single"

    # top_k passages come back from the allowed documents, even if others rank higher
    two = ["mill_blog.txt", "mill_history.txt"]
    found = scripted_client.get("/search", params={"q": "Harlow Mill built 1850", "top_k": 2, "doc_ids": two})
    assert found.status_code == 200
    assert sorted(p["doc_id"] for p in found.json()["passages"]) == sorted(two)
    direct = scripted_pipeline.index.search("Harlow Mill built 1850", 2, only=two)
    assert [h.passage.passage_id for h in direct] == [p["passage_id"] for p in found.json()["passages"]]


def test_metadata_from_files_and_uploads_and_where(make_client):
    with make_client() as client:
        _metadata_and_where(client)


def _metadata_and_where(client):
    docs = {d["doc_id"]: d for d in client.get("/documents").json()}
    shipped = docs["002_4aa47291d7cb64dc.txt"]["metadata"]
    assert shipped["type"] == "txt" and shipped["path"] == "002_4aa47291d7cb64dc.txt"
    assert shipped["title"] == docs["002_4aa47291d7cb64dc.txt"]["title"]
    assert shipped["modified"].endswith("Z") and "pages" not in shipped

    r = client.post(
        "/documents",
        json={"doc_id": "memo.txt", "text": MEMO, "metadata": {"team": "audit", "year": 2024, "rev": 1.5}},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/documents",
        files={"file": ("letter.docx", _docx(*LETTER.split("\n\n")))},
        data={"metadata": json.dumps({"team": "legal", "year": 2024})},
    )
    assert r.status_code == 201, r.text
    r = client.post("/documents", files={"file": ("otters.pdf", otters_pdf())})
    assert r.status_code == 201, r.text

    docs = {d["doc_id"]: d["metadata"] for d in client.get("/documents").json()}
    assert docs["memo.txt"] == {
        "title": "Audit memo 14",
        "type": "txt",
        "team": "audit",
        "year": 2024,
        "rev": 1.5,
    }
    assert docs["letter.docx"]["type"] == "docx" and docs["letter.docx"]["team"] == "legal"
    assert docs["otters.pdf"]["type"] == "pdf" and docs["otters.pdf"]["pages"] == 2
    assert client.get("/documents/memo.txt").json()["metadata"] == docs["memo.txt"]

    question = {"question": "Who is responsible for the night safe?"}
    for where, allowed in [
        ({"team": "legal"}, {"letter.docx"}),
        ({"team": "audit"}, {"memo.txt"}),
        ({"year": "2024"}, {"memo.txt", "letter.docx"}),  # a number matches its text
        ({"type": "docx", "year": 2024.0}, {"letter.docx"}),
        ({"type": "pdf"}, {"otters.pdf"}),
    ]:
        body = client.post("/ask", json={**question, "where": where, "top_k": 5}).json()
        cited = {p["doc_id"] for p in body["passages"]} | {a["doc_id"] for a in body["answers"]}
        assert cited and cited <= allowed, (where, cited)
        for p in body["passages"]:
            text = client.get(f"/documents/{p['doc_id']}").json()["text"]
            assert text[p["start"] : p["end"]] == p["text"]
    legal = client.post("/ask", json={**question, "where": {"team": "legal"}}).json()
    assert "landlord" in legal["answers"][0]["text"]

    found = client.get("/search", params=[("q", "night safe"), ("where", "team=audit"), ("top_k", "5")])
    assert [p["doc_id"] for p in found.json()["passages"]] == ["memo.txt"]
    both = client.post(
        "/ask", json={**question, "doc_ids": ["memo.txt", "otters.pdf"], "where": {"team": "audit"}}
    )
    assert {p["doc_id"] for p in both.json()["passages"]} == {"memo.txt"}


def test_a_metadata_change_alone_keeps_the_passages(make_client):
    with make_client() as client:
        _metadata_change(client)


def _metadata_change(client):
    client.post("/documents", json={"doc_id": "memo.txt", "text": MEMO, "metadata": {"team": "audit"}})
    before = client.get("/search", params={"q": "night safe", "doc_ids": "memo.txt"}).json()["passages"]
    r = client.put("/documents/memo.txt", json={"text": MEMO, "metadata": {"team": "finance"}})
    assert r.status_code == 200 and r.json()["status"] == "replaced"
    docs = {d["doc_id"]: d["metadata"] for d in client.get("/documents").json()}
    assert docs["memo.txt"]["team"] == "finance"
    after = client.get("/search", params={"q": "night safe", "where": "team=finance"}).json()["passages"]
    assert [p["passage_id"] for p in after] == [p["passage_id"] for p in before]
    same = client.put("/documents/memo.txt", json={"text": MEMO, "metadata": {"team": "finance"}})
    assert same.json()["status"] == "unchanged"


def test_metadata_survives_a_restart(tmp_path, embedder):
    from service import Pipeline
    from service.pipeline import Filter

    p = Pipeline(
        DEFAULT_CORPUS, tmp_path / "i", embedder=embedder, write_embedder=embedder, reader="baseline"
    )
    p.warm_up(build_if_needed=True)
    from corpus import parse_document

    p.add_documents([parse_document(MEMO.encode(), ".txt", "memo.txt", metadata={"team": "audit"})])
    update = p.add_documents([parse_document(MEMO.encode(), ".txt", "memo.txt", metadata={"team": "legal"})])
    assert update.replaced == ["memo.txt"]
    again = Pipeline(
        DEFAULT_CORPUS, tmp_path / "i", embedder=embedder, write_embedder=embedder, reader="baseline"
    )
    again.warm_up()
    assert again.document("memo.txt").metadata == {"type": "txt", "team": "legal"}
    hits = again.search("night safe", 3, only=Filter.of(where={"team": "legal"})).hits
    assert [h.passage.doc_id for h in hits] == ["memo.txt"]


@pytest.mark.parametrize(
    ("call", "status", "words"),
    [
        (
            ("post", "/ask", {"json": {"question": "who?", "doc_ids": ["nope.txt"]}}),
            404,
            "unknown document id",
        ),
        (
            ("post", "/ask", {"json": {"question": "who?", "where": {"team": "nobody"}}}),
            422,
            "no document matches",
        ),
        (
            ("post", "/ask", {"json": {"question": "who?", "where": {"team": ["a"]}}}),
            422,
            "strings or numbers",
        ),
        (
            ("post", "/ask", {"json": {"question": "who?", "where": {"team": True}}}),
            422,
            "strings or numbers",
        ),
        (("post", "/ask", {"json": {"question": "who?", "doc_ids": "memo.txt"}}), 422, "doc_ids"),
        (("post", "/ask", {"json": {"question": "who?", "doc_ids": []}}), 422, "doc_ids is empty"),
        (("post", "/ask", {"json": {"question": "who?", "where": {"n": 10**400}}}), 422, "2**53"),
        (
            ("post", "/ask", {"content": '{"question": "who?", "where": {"t": "\\ud800"}}', "headers": JSON}),
            422,
            "surrogate",
        ),
        (("get", "/search", {"params": [("q", "x"), ("where", "a=1"), ("where", "a=2")]}), 422, "twice"),
        (
            (
                "post",
                "/documents",
                {"content": '{"text": "x y", "metadata": {"t": "\\ud800"}}', "headers": JSON},
            ),
            422,
            "surrogate",
        ),
        (("get", "/search", {"params": {"q": "x", "where": "team"}}), 422, "key=value"),
        (("get", "/search", {"params": {"q": "x", "doc_ids": "nope.txt"}}), 404, "unknown document id"),
        (("post", "/documents", {"json": {"text": "x y", "metadata": {"type": "pdf"}}}), 422, "reserved"),
        (("post", "/documents", {"json": {"text": "x y", "metadata": ["a"]}}), 422, "metadata"),
        (
            ("post", "/documents", {"json": {"text": "x y", "metadata": {"a": {"b": 1}}}}),
            422,
            "strings or numbers",
        ),
        (
            ("post", "/documents", {"files": {"file": ("a.txt", b"x y")}, "data": {"metadata": "{no"}}),
            422,
            "JSON",
        ),
        (
            ("post", "/documents", {"files": {"file": ("a.txt", b"x y")}, "data": {"metadata": "[1]"}}),
            422,
            "object",
        ),
    ],
)
def test_bad_filters_and_metadata_get_a_clear_4xx(client, call, status, words):
    method, url, kwargs = call
    before = client.get("/health").json()
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get("/health").json() == before  # nothing was written


def test_the_filter_applies_before_ranking_not_to_the_candidates(pipeline):
    """Only the 3 best candidates are fused: a filter applied after ranking would find none of the
    allowed document's passages among them; applied before, all 3 come from it."""
    index = pipeline.index
    q = "When did North Korea and North Vietnam establish formal diplomatic relations?"
    best = {h.passage.doc_id for h in index.search(q, 3, candidates=3)}
    other = next(d for d in index.entries if d not in best)
    hits = index.search(q, 3, candidates=3, only=[other, other])
    assert len(hits) == 3 and {h.passage.doc_id for h in hits} == {other}
    assert len({h.passage.passage_id for h in hits}) == 3  # a repeated id is one document


def test_an_index_written_before_metadata_gets_it_on_the_next_sync(tmp_path, embedder):
    from service import Pipeline
    from service.errors import NotReadyError

    def pipeline():
        return Pipeline(
            DEFAULT_CORPUS, tmp_path / "i", embedder=embedder, write_embedder=embedder, reader="baseline"
        )

    pipeline().warm_up(build_if_needed=True)
    (version,) = (tmp_path / "i" / "versions").iterdir()
    table = json.loads((version / "documents.json").read_text())
    for row in table["documents"]:
        del row["metadata"]  # as an older citeqa wrote it
    (version / "documents.json").write_text(json.dumps(table))
    old = pipeline()
    with pytest.raises(NotReadyError, match="citeqa index"):
        old.warm_up()
    old.warm_up(build_if_needed=True)  # what citeqa index --if-stale (make run) does
    assert old.document("002_4aa47291d7cb64dc.txt").metadata["type"] == "txt"
    pipeline().warm_up()  # up to date now: a new modification time alone is no change


def test_cli_doc_where_and_meta(tmp_path, capsys):
    where = ["--index-dir", str(tmp_path / "i"), "--corpus", str(DEFAULT_CORPUS)]
    memo = tmp_path / "memo.txt"
    memo.write_text(MEMO)
    assert main(["add", str(memo), "--meta", "team=audit", "--meta", "year=2024", "--quiet", *where]) == 0
    assert main(["add", str(memo), "--meta", "type=pdf", "--quiet", *where]) == 2
    assert "reserved" in capsys.readouterr().err
    assert main(["list", "--json", *where]) == 0
    rows = {r["doc_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["memo.txt"]["metadata"]["team"] == "audit" and rows["memo.txt"]["metadata"]["year"] == "2024"
    assert main(["list", *where]) == 0
    memo_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("memo.txt"))
    assert memo_row.split() == ["memo.txt", "added", "txt", "1", "Audit", "memo", "14"]

    q = "When was the night safe last serviced?"
    assert main(["ask", q, "--json", "--where", "team=audit", "--where", "year=2024", *where]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["answers"][0]["text"] == "March 2023" and {p["doc_id"] for p in body["passages"]} == {
        "memo.txt"
    }
    assert main(["ask", q, "--json", "--doc", "002_4aa47291d7cb64dc.txt", *where]) == 0
    body = json.loads(capsys.readouterr().out)
    assert {p["doc_id"] for p in body["passages"]} == {"002_4aa47291d7cb64dc.txt"}
    for bad, message in [
        (["--where", "team"], "--where 'team': expected key=value"),
        (["--where", "team=legal"], "no document matches where team=legal"),
        (["--doc", "nope.txt"], "unknown document id"),
    ]:
        assert main(["ask", q, *bad, *where]) == 2
        err = capsys.readouterr().err
        assert err.startswith("citeqa: error:") and message in err and len(err.splitlines()) == 1


def test_mcp_tools_take_the_filters_and_list_the_metadata(scripted_pipeline):
    from mcp.shared.memory import create_connected_server_and_client_session

    from service.mcp_server import build_mcp

    async def run():
        async with create_connected_server_and_client_session(
            build_mcp(lambda: scripted_pipeline)
        ) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert {"doc_ids", "where"} <= set(tools["ask"].inputSchema["properties"])
            blog = await session.call_tool("ask", {"question": BUILT, "doc_ids": ["mill_blog.txt"]})
            found = await session.call_tool("search", {"query": "Harlow", "doc_ids": ["mill_history.txt"]})
            listed = await session.call_tool("documents", {})
            bad = await session.call_tool("ask", {"question": BUILT, "where": {"team": "x"}})
            return blog.structuredContent, found.structuredContent, listed.structuredContent, bad

    blog, found, listed, bad = anyio.run(run)
    assert blog["answer"] == "1862" and blog["citations"][0]["doc_id"] == "mill_blog.txt"
    assert {p["doc_id"] for p in found["passages"]} == {"mill_history.txt"}
    assert {d["doc_id"] for d in listed["result"]} == set(scripted_pipeline.documents)
    assert bad.isError and "no document matches" in bad.content[0].text


def test_chat_endpoint_takes_the_filters_as_extra_body_fields(scripted_client):
    body = {"model": "citeqa", "messages": [{"role": "user", "content": BUILT}], "doc_ids": ["mill_blog.txt"]}
    r = scripted_client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    assert message["content"].startswith("1862 [1]")
    assert {a["url_citation"]["doc_id"] for a in message["annotations"]} == {"mill_blog.txt"}
    bad = scripted_client.post("/v1/chat/completions", json={**body, "doc_ids": ["nope.txt"]})
    assert bad.status_code == 404 and "unknown document id" in bad.json()["error"]["message"]
