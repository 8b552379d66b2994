"""Adding, replacing and removing documents over HTTP; limits, ids, the API key and CORS."""

import hashlib
import json

import pytest

from service import Pipeline

from ..conftest import DEFAULT_CORPUS

JSON = {"content-type": "application/json"}
OTTERS = "# Otters\n\nSea otters use rocks to crack open shellfish. They live along the North Pacific coast."
TEA = "Green tea has been grown in Thai Nguyen province since 1922. The province lies north of Hanoi."


def _folder_digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _check_invariant(client, body):
    texts = {}
    for item in body["answers"] + body["passages"]:
        if item["doc_id"] not in texts:
            texts[item["doc_id"]] = client.get(f"/documents/{item['doc_id']}").json()["text"]
        assert texts[item["doc_id"]][item["start"] : item["end"]] == item["text"]
    for p in body["passages"]:  # the clean sentences lie inside their passage, in order
        assert all(p["start"] <= s < e <= p["end"] for s, e in p["sentences"])
        assert p["sentences"] == sorted(p["sentences"])
    assert any(p["sentences"] for p in body["passages"])


def test_add_ask_replace_remove_through_the_api(make_client):
    before = _folder_digest(DEFAULT_CORPUS)
    with make_client() as c:
        v0 = c.get("/health").json()["version"]
        r = c.post("/documents", json={"doc_id": "otters.md", "text": OTTERS})
        assert r.status_code == 201, r.text
        added = r.json()
        assert added["status"] == "added" and added["passages"] == 1 and added["version"] == v0 + 1
        assert added["title"] == "# Otters"  # JSON text is plain text: its first line is the title
        listed = {d["doc_id"]: d for d in c.get("/documents").json()}
        assert listed["otters.md"]["origin"] == "added" and len(listed) == 4
        assert c.get("/documents/otters.md").json()["text"] == OTTERS

        body = c.post("/ask", json={"question": "What do sea otters use to crack open shellfish?"}).json()
        assert body["version"] == v0 + 1
        assert body["answers"] and body["answers"][0]["doc_id"] == "otters.md"
        assert "rocks" in body["answers"][0]["text"]
        _check_invariant(c, body)

        # adding the same id again is refused; PUT replaces
        r = c.post("/documents", json={"doc_id": "otters.md", "text": TEA})
        assert r.status_code == 409 and "PUT" in r.json()["detail"]
        r = c.put("/documents/otters.md", json={"title": "Tea", "text": TEA})
        assert r.status_code == 200 and r.json()["status"] == "replaced" and r.json()["title"] == "Tea"
        r = c.put("/documents/otters.md", json={"title": "Tea", "text": TEA})
        assert r.status_code == 200 and r.json()["status"] == "unchanged"
        body = c.post("/ask", json={"question": "Since when has green tea been grown in Thai Nguyen?"}).json()
        assert body["answers"][0]["doc_id"] == "otters.md" and "1922" in body["answers"][0]["text"]
        _check_invariant(c, body)
        assert not any(
            "otters" in p["text"].lower() for p in c.get("/search?q=sea otters rocks").json()["passages"]
        )
        r = c.put("/documents/new/tea.txt", json={"text": TEA})
        assert r.status_code == 201 and r.json()["status"] == "added"

        # a document of the shipped corpus can be removed from the collection; its file stays
        corpus_doc = next(d for d in listed.values() if d["origin"] == "corpus")["doc_id"]
        for doc_id in ("otters.md", "new/tea.txt", corpus_doc):
            r = c.delete(f"/documents/{doc_id}")
            assert r.status_code == 200 and r.json()["status"] == "removed"
            assert c.get(f"/documents/{doc_id}").status_code == 404
        assert c.delete("/documents/otters.md").status_code == 404
        ids = {p["doc_id"] for p in c.get("/search?q=Vietnam North Korea&top_k=20").json()["passages"]}
        assert corpus_doc not in ids and "otters.md" not in ids
    assert _folder_digest(DEFAULT_CORPUS) == before


def test_upload_files_as_multipart(make_client):
    html = (
        b"<html><head><title>Moped city</title></head><body>"
        b"<p>Hanoi has about six million motorbikes.</p><script>alert(1)</script></body></html>"
    )
    with make_client() as c:
        r = c.post("/documents", files={"file": ("hanoi.html", html, "text/html")})
        assert r.status_code == 201, r.text
        assert r.json()["doc_id"] == "hanoi.html" and r.json()["title"] == "Moped city"
        text = c.get("/documents/hanoi.html").json()["text"]
        assert "six million motorbikes" in text and "alert" not in text
        r = c.post(
            "/documents",
            files={"file": ("x.md", OTTERS.encode(), "text/markdown")},
            data={"doc_id": "animals/otters.md"},
        )
        assert (
            r.status_code == 201
            and r.json()["doc_id"] == "animals/otters.md"
            and r.json()["title"] == "Otters"
        )
        body = c.post("/ask", json={"question": "How many motorbikes does Hanoi have?"}).json()
        _check_invariant(c, body)
        assert any(a["doc_id"] == "hanoi.html" for a in body["answers"])


@pytest.mark.parametrize(
    "kwargs, status, words",
    [
        ({"json": {"doc_id": "../etc/passwd", "text": "x y"}}, 422, "'..'"),
        ({"json": {"doc_id": "a\x00b", "text": "x y"}}, 422, "control characters"),
        (
            {"data": {"doc_id": "caf\ufffd.txt"}, "files": {"file": ("a.txt", b"x y", "text/plain")}},
            422,
            "U+FFFD",
        ),
        ({"json": {"doc_id": "/abs.txt", "text": "x y"}}, 422, "start or end"),
        ({"json": {"doc_id": "a" * 300, "text": "x y"}}, 422, "longer than 200"),
        ({"json": {"text": "   "}}, 422, "empty"),
        ({"json": {"title": "no text"}}, 422, "text"),
        ({"json": {"text": 5}}, 422, "text"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        (  # an integer of over 4,300 digits, which Python's JSON parser refuses
            {"content": b'{"text": "x y", "metadata": {"a": ' + b"9" * 5000 + b"}}", "headers": JSON},
            422,
            "not valid JSON",
        ),
        (
            {"content": b'{"text": "x y", "metadata": ' + b"[" * 100_000, "headers": JSON},
            422,
            "nested too deeply",
        ),
        (
            {"files": {"file": ("a.txt", b"x y", "text/plain")}, "data": {"metadata": "[" * 100_000}},
            422,
            "nested too deeply",
        ),
        ({"content": b"plain", "headers": {"content-type": "text/csv"}}, 415, "unsupported content type"),
        ({"files": {"file": ("table.xlsx", b"PK\x03\x04", "application/zip")}}, 415, "unsupported file type"),
        (
            {"files": {"file": ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), "text/plain")}},
            422,
            "UTF-8",
        ),
        ({"files": {"file": ("empty.txt", b"", "text/plain")}}, 422, "empty"),
        ({"files": {"file": ("..", b"dots", "text/plain")}}, 422, "'..'"),
        ({"data": {"doc_id": "x.txt"}}, 415, "unsupported content type"),
        (  # Starlette's own refusal, a 400 outside the API's contract until mapped
            {"files": {"file": ("a.txt", b"x y", "text/plain")}, "data": {f"f{i}": "x" for i in range(12)}},
            422,
            "Too many fields",
        ),
    ],
)
def test_bad_uploads_get_a_clear_4xx(make_client, kwargs, status, words):
    with make_client() as c:
        before = c.get("/health").json()
        r = c.post("/documents", **kwargs)
        assert r.status_code == status, r.text
        assert words in r.json()["detail"]
        assert c.get("/health").json() == before  # nothing was written


def test_a_line_break_after_an_id_names_no_document(make_client):
    """Starlette's route patterns end in "$", which matches before a final line break."""
    with make_client() as c:
        assert c.put("/documents/otters.md", json={"text": OTTERS}).status_code == 201
        for method in ("DELETE", "GET", "PUT"):
            r = c.request(method, "/documents/otters.md%0A", json={"text": TEA})
            assert r.status_code == 404 and "control character" in r.json()["detail"], (method, r.text)
        assert c.get("/documents/otters.md").json()["text"] == OTTERS


def test_an_id_that_was_not_utf8_in_the_url_is_refused(make_client):
    with make_client() as c:
        r = c.put("/documents/caf%E9.txt", json={"text": "x y"})  # Latin-1, not UTF-8
        assert r.status_code == 422 and "U+FFFD" in r.json()["detail"]


def test_upload_size_limit(make_client):
    with make_client(max_upload_bytes=1000) as c:
        r = c.post("/documents", json={"text": "word " * 400})
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        r = c.post("/documents", files={"file": ("big.txt", b"word " * 400, "text/plain")})
        assert r.status_code == 413
        assert c.post("/documents", json={"text": "small enough"}).status_code == 201


def test_api_key(make_client):
    key = "s3cret-key"
    with make_client(api_key=key) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200  # the page loads, then asks for the key
        assert c.get("/static/app.js").status_code == 200
        for method, path, body in [
            ("POST", "/ask", {"question": "Who is Ri Yong Ho?"}),
            ("GET", "/documents", None),
            ("POST", "/documents", {"text": "sneaky"}),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 401 and "API key" in r.json()["detail"]
            assert r.headers["www-authenticate"] == "Bearer"
            r = c.request(method, path, json=body, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
        r = c.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["message"].startswith("missing or wrong API key")
        ok = {"Authorization": f"Bearer {key}"}
        assert c.post("/ask", json={"question": "Who is Ri Yong Ho?"}, headers=ok).status_code == 200
        assert c.get("/v1/models", headers=ok).status_code == 200
        assert len(c.get("/documents", headers=ok).json()) == 3  # the refused POST added nothing
        # the API's docs hold no data: open, and their schema says which routes take the key
        assert c.get("/docs").status_code == 200 and c.get("/docs-static/swagger-ui.css").status_code == 200
        spec = c.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        assert spec["paths"]["/ask"]["post"]["security"] == [{"apiKey": []}]
        assert "security" not in spec["paths"]["/health"]["get"]


def test_cors_is_off_by_default_and_configurable(make_client):
    origin = {"Origin": "https://example.org"}
    with make_client() as c:
        assert "access-control-allow-origin" not in c.get("/health", headers=origin).headers
    with make_client(cors_origins=["https://example.org"]) as c:
        assert (
            c.get("/health", headers=origin).headers["access-control-allow-origin"] == "https://example.org"
        )
        pre = c.options(
            "/ask", headers={**origin, "Access-Control-Request-Method": "POST",
                             "Access-Control-Request-Headers": "authorization,content-type"}
        )  # fmt: skip
        assert pre.status_code == 200


def test_a_restart_keeps_added_documents_and_syncs_the_corpus_folder(tmp_path, embedder):
    import shutil

    folder = shutil.copytree(DEFAULT_CORPUS, tmp_path / "docs")
    index_dir = tmp_path / "index"

    def pipeline():
        return Pipeline(folder, index_dir, embedder=embedder, write_embedder=embedder)

    p = pipeline()
    p.warm_up(build_if_needed=True)
    from corpus import Document

    p.add_documents([Document("otters.md", "Otters", OTTERS)])
    removed = sorted(p.documents)[0]
    p.remove_documents([removed])

    p = pipeline()
    p.warm_up()  # nothing changed in the folder: loads as is
    assert "otters.md" in p.documents and removed not in p.documents
    (folder / "new.txt").write_text(TEA)
    p = pipeline()
    from service.errors import NotReadyError

    with pytest.raises(NotReadyError, match="changed since it was built.*citeqa index"):
        p.warm_up()
    p.warm_up(build_if_needed=True)  # applies the folder's change only
    assert {"otters.md", "new.txt"} <= set(p.documents) and removed not in p.documents
    assert p.index.entries["new.txt"].origin == "corpus"
    # a full rebuild gives the same collection
    before = sorted((d, e.sha256) for d, e in p.index.entries.items())
    p.build()
    assert sorted((d, e.sha256) for d, e in p.index.entries.items()) == before
    json.dumps(p.index.manifest)  # stays serialisable


def test_a_document_with_crlf_line_endings_keeps_the_collection_loadable(tmp_path, embedder):
    """Added texts with "\r\n" (or a lone "\r") load again as they were, and the documents added
    before them stay: a reader that translated line endings once made the index "damaged", and
    the rebuild that followed kept only the corpus folder's documents."""
    from corpus import Document

    def pipeline():
        return Pipeline(DEFAULT_CORPUS, tmp_path / "index", embedder=embedder, write_embedder=embedder)

    p = pipeline()
    p.warm_up(build_if_needed=True)
    crlf = "Bridge notes\r\nThe Millau Viaduct was designed by Norman Foster.\r\n"
    p.add_documents([Document("otters.md", "Otters", OTTERS)])
    p.add_documents([Document("crlf.txt", "Bridge notes", crlf)])
    p = pipeline()
    p.warm_up()  # loads as committed: nothing to rebuild
    assert {"otters.md", "crlf.txt"} <= set(p.documents) and p.documents["crlf.txt"].text == crlf
    answer = p.ask("Who designed the Millau Viaduct?").answers[0].answer
    assert answer.doc_id == "crlf.txt" and crlf[answer.start : answer.end] == answer.text == "Norman Foster"


def test_a_rebuild_of_a_damaged_index_keeps_the_added_documents(tmp_path, embedder, caplog):
    from corpus import Document
    from service.errors import NotReadyError

    index_dir = tmp_path / "index"
    p = Pipeline(DEFAULT_CORPUS, index_dir, embedder=embedder, write_embedder=embedder)
    p.warm_up(build_if_needed=True)
    p.add_documents([Document("otters.md", "Otters", OTTERS), Document("tea.txt", "Tea", TEA)])
    before = set(p.documents)
    version = index_dir / "versions" / f"{p.index.manifest['version']:08d}"
    (version / "dense.faiss").write_bytes(b"garbage")
    lost = p.index.entries["tea.txt"].sha256
    (index_dir / "blobs" / lost[:2] / f"{lost}.txt").write_text("Tea is grown on the Moon.")
    p = Pipeline(DEFAULT_CORPUS, index_dir, embedder=embedder, write_embedder=embedder)
    with pytest.raises(NotReadyError, match="damaged.*citeqa index"):
        p.warm_up()
    with caplog.at_level("WARNING"):
        p.warm_up(build_if_needed=True)  # what `citeqa index` and `make run` do
    assert set(p.documents) == before - {"tea.txt"} and p.index.entries["otters.md"].origin == "added"
    assert "texts lost: tea.txt" in caplog.text
    assert p.ask("What do sea otters use to crack open shellfish?").answers[0].answer.doc_id == "otters.md"


def test_a_change_committed_by_another_process_is_served(tmp_path, embedder):
    """`citeqa add` next to a running server: the server serves the new state on its next request."""
    from corpus import Document

    server = Pipeline(DEFAULT_CORPUS, tmp_path / "index", embedder=embedder, write_embedder=embedder)
    server.warm_up(build_if_needed=True)
    server.RELOAD_CHECK_S = 0.0
    cli = Pipeline(DEFAULT_CORPUS, tmp_path / "index", embedder=embedder, write_embedder=embedder)
    cli.warm_up()
    cli.RELOAD_CHECK_S = 0.0
    update = cli.add_documents([Document("otters.md", "Otters", OTTERS)])
    assert "otters.md" in server.documents
    result = server.ask("What do sea otters use to crack open shellfish?")
    assert result.version == update.version and result.answers[0].answer.doc_id == "otters.md"
    # and the server's own next write builds on the other process's change, losing nothing
    server.add_documents([Document("tea.txt", "Tea", TEA)])
    assert {"otters.md", "tea.txt"} <= set(cli.documents) and {"otters.md", "tea.txt"} <= set(
        server.documents
    )


def test_one_id_given_twice_is_refused_by_name(pipeline):
    """`citeqa add a/x.txt b/x.txt`: two files, one id."""
    from corpus import Document
    from service.errors import BadInputError
    from service.pipeline import plan_add

    docs = [Document("x.txt", "x", "Otters float."), Document("x.txt", "x", "Tea grows.")]
    with pytest.raises(BadInputError, match="document id 'x.txt' appears twice"):
        plan_add(pipeline.index, docs, replace=True)
