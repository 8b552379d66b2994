import pytest

from ..conftest import DEFAULT_CORPUS

QUESTIONS = [
    "When did North Korea and North Vietnam establish formal diplomatic relations?",
    "How many pilots did North Korea send to Vietnam?",
    "Who visited North Korea in July 1957?",
    "Why did North Korean-Vietnamese relations decline in the 1990s?",
    "Where did Kim Jong Un and Donald Trump hold their second summit?",
    "What did North Korea think of the Paris Peace Accords?",
    "How long was Kim Jong Un's train ride to Vietnam?",
    "Which university did the former Vietnamese ambassador to South Korea attend?",
    "What model of development does North Korea see in Vietnam?",
    "Who is Ri Yong Ho?",
    "When did Vietnam reunify?",
    "What is the capital of Peru?",
    "How do I bake bread?",
    "Khmer Rouge",
    "Vietnam",
    "?",
    "ÄÖÜ 漢字 ✓ emoji 🙂 question?",
    "a " * 900,
]


def _texts_of(client):
    return {
        d["doc_id"]: client.get(f"/documents/{d['doc_id']}").json()["text"]
        for d in client.get("/documents").json()
    }


def test_answers_the_diplomatic_relations_question_from_the_wikipedia_article(client):
    r = client.post("/ask", json={"question": QUESTIONS[0]})
    assert r.status_code == 200
    body = r.json()
    assert body["question"] == QUESTIONS[0]
    best = body["answers"][0]
    assert "1950" in best["text"]
    assert best["doc_id"] == "002_4aa47291d7cb64dc.txt"
    assert 0 <= best["score"] <= 1
    assert best["passage_id"] in {p["passage_id"] for p in body["passages"]}
    assert best["citations"][0]["doc_id"] == best["doc_id"]


def test_unanswerable_question_gets_no_answer_but_passages(client):
    body = client.post("/ask", json={"question": "What is the capital of Peru?"}).json()
    assert body["answers"] == []
    assert len(body["passages"]) == 3  # the default top_k


@pytest.mark.parametrize("top_k", [1, 3, 10, 50])
def test_offset_invariant_for_every_answer_and_passage(client, top_k):
    texts = _texts_of(client)
    for q in QUESTIONS:
        body = client.post("/ask", json={"question": q, "top_k": top_k}).json()
        assert len(body["passages"]) <= top_k
        for p in body["passages"]:
            assert texts[p["doc_id"]][p["start"] : p["end"]] == p["text"]
        assert body["agreement"] in ("none", "single", "agree", "conflict")
        assert (body["agreement"] == "none") == (body["answers"] == [])
        for a in body["answers"]:
            assert texts[a["doc_id"]][a["start"] : a["end"]] == a["text"]
            for c in a["citations"]:  # each place states the answer, maybe in other words
                assert texts[c["doc_id"]][c["start"] : c["end"]] == c["text"]
            assert a["documents"] == len({c["doc_id"] for c in a["citations"]})


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {"question": ""}}, 422, "empty"),
        ({"json": {"question": "   \n\t"}}, 422, "empty"),
        ({"json": {"question": "x" * 2001}}, 422, "2000"),
        ({"json": {"question": "ok?", "top_k": 0}}, 422, "top_k"),
        ({"json": {"question": "ok?", "top_k": 51}}, 422, "top_k"),
        ({"json": {"question": "ok?", "top_k": "many"}}, 422, "top_k"),
        ({"json": {"question": "ok?", "top_k": "3"}}, 422, "top_k"),  # a wrong type, not converted
        ({"json": {"question": "ok?", "top_k": 3.0}}, 422, "top_k"),
        ({"json": {"question": "ok?", "doc_ids": "a.txt"}}, 422, "doc_ids"),
        ({"json": {"question": 5}}, 422, "question"),
        ({"json": {}}, 422, "question"),
        (
            {"content": b'{"question": "unterminated', "headers": {"content-type": "application/json"}},
            422,
            "json",
        ),
        ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 422, ""),
        (  # a lone surrogate: valid JSON, not valid Unicode
            {"content": b'{"question": "\\ud800 when?"}', "headers": {"content-type": "application/json"}},
            422,
            "lone surrogate",
        ),
    ],
)
def test_bad_ask_input_is_a_clear_4xx(client, kwargs, status, words):
    r = client.post("/ask", **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail
    assert words.lower() in detail.lower()


def test_exactly_2000_characters_is_accepted(client):
    assert client.post("/ask", json={"question": "Vietnam " * 250}).status_code == 200


def test_search(client):
    body = client.get("/search", params={"q": "Khmer Rouge", "top_k": 3}).json()
    assert body["query"] == "Khmer Rouge" and len(body["passages"]) == 3
    assert any("Khmer Rouge" in p["text"] for p in body["passages"])
    empty = client.get("/search", params={"q": " "})
    assert empty.status_code == 422 and empty.json()["detail"] == "the search query must not be empty"
    assert client.get("/search", params={"q": "x", "top_k": 0}).status_code == 422
    assert client.get("/search").status_code == 422


def test_documents_and_health(client):
    docs = client.get("/documents").json()
    assert len(docs) == 3
    files = sorted(p.name for p in DEFAULT_CORPUS.iterdir())
    assert [d["doc_id"] for d in docs] == files
    one = client.get(f"/documents/{docs[0]['doc_id']}").json()
    assert len(one["text"]) == docs[0]["length"]
    missing = client.get("/documents/no-such-doc.txt")
    assert missing.status_code == 404 and "no-such-doc.txt" in missing.json()["detail"]
    assert client.head("/health").status_code == 200 and client.head("/").status_code == 200
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["documents"] == 3 and health["passages"] > 3
    assert health["model"] and health["index_fingerprint"]


def test_openapi_docs_are_served(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI's files come from this server, not a CDN: the docs work offline
    assert "cdn." not in docs.text and "/docs-static/swagger-ui-bundle.js" in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/docs-static/{asset}").status_code == 200
    assert "security" not in client.get("/openapi.json").json()["paths"]["/ask"]["post"]  # no key set
    spec = client.get("/openapi.json").json()
    assert {"/ask", "/search", "/documents", "/health"} <= set(spec["paths"])


def test_ask_reports_agreement_and_each_side_of_a_conflict(scripted_client):
    body = scripted_client.post("/ask", json={"question": "When was Harlow Mill built?"}).json()
    assert body["agreement"] == "conflict"
    sides = [(a["text"], a["documents"], [c["doc_id"] for c in a["citations"]]) for a in body["answers"]]
    assert sides == [("1850", 2, ["mill_register.txt", "mill_history.txt"]), ("1862", 1, ["mill_blog.txt"])]
    assert all(a["conflict"] for a in body["answers"])
    assert body["answers"][0]["citations"][1]["text"] == "3 May 1850"
    agree = scripted_client.post("/ask", json={"question": "Who built Harlow Mill?"}).json()
    assert agree["agreement"] == "agree" and agree["answers"][0]["documents"] == 2
    assert not agree["answers"][0]["conflict"]
    schema = scripted_client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["AskResponse"]["properties"]["agreement"]["enum"] == ["none", "single", "agree", "conflict"]
