"""The OpenAI-compatible endpoint, through the official openai client against a real server."""

import httpx
import openai
import pytest

from service.agreement import compatible

Q = "When did North Korea and North Vietnam establish formal diplomatic relations?"


@pytest.fixture(scope="module")
def oai(live_server):
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key="unused", max_retries=0)


def _annotations(obj):
    """The message's (or delta's) annotations as plain dicts, whatever the client parsed them into."""
    raw = getattr(obj, "annotations", None) or obj.model_extra.get("annotations") or []
    items = [a if isinstance(a, dict) else a.to_dict() for a in raw]
    assert all(a["type"] == "url_citation" for a in items)
    return [a["url_citation"] for a in items]


def _texts(live_server):
    docs = httpx.get(f"{live_server}/documents").json()
    return {d["doc_id"]: httpx.get(f"{live_server}/documents/{d['doc_id']}").json()["text"] for d in docs}


def test_models(oai):
    assert [m.id for m in oai.models.list().data] == ["citeqa"]


def test_answer_with_citations(oai, live_server):
    r = oai.chat.completions.create(model="citeqa", messages=[{"role": "user", "content": Q}])
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "stop" and msg.role == "assistant"
    assert msg.content.startswith("January 31, 1950 [1]")
    assert "Sources:" in msg.content and "002_4aa47291d7cb64dc.txt:335-351" in msg.content
    annotations = _annotations(msg)
    texts = _texts(live_server)
    assert annotations
    assert any(
        a["text"] == "January 31, 1950" and a["doc_id"] == "002_4aa47291d7cb64dc.txt" for a in annotations
    )
    for a in annotations:
        # each citation marks the answer in the reply and quotes its document in that document's
        # own words, which may state the same fact differently ("1950s")
        assert msg.content[a["start_index"] : a["end_index"]] == "January 31, 1950"
        assert texts[a["doc_id"]][a["start"] : a["end"]] == a["text"]
        assert compatible(a["text"], "January 31, 1950")
        assert a["url"].endswith(f"/documents/{a['doc_id']}") and a["kind"] == "answer"


def test_abstention_lists_closest_passages(oai, live_server):
    r = oai.chat.completions.create(
        model="citeqa", messages=[{"role": "user", "content": "What is the capital of Peru?"}]
    )
    msg = r.choices[0].message
    assert msg.content.startswith("The documents do not answer this question.")
    annotations = _annotations(msg)
    assert len(annotations) == 3
    texts = _texts(live_server)
    for a in annotations:
        assert a["kind"] == "passage"
        quoted = msg.content[a["start_index"] : a["end_index"]]
        # the quote is the passage's clean text (noise lines left out), so compare its opening words
        passage = " ".join(texts[a["doc_id"]][a["start"] : a["end"]].split())
        assert " ".join(quoted.split()[:3]) in passage


def test_streaming(oai):
    stream = oai.chat.completions.create(
        model="citeqa", messages=[{"role": "user", "content": Q}], stream=True
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content.startswith("January 31, 1950 [1]") and "Sources:" in content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert _annotations(chunks[-1].choices[0].delta)[0]["doc_id"] == "002_4aa47291d7cb64dc.txt"


def test_stream_ends_with_done(live_server):
    body = {"model": "citeqa", "messages": [{"role": "user", "content": Q}], "stream": True}
    with httpx.stream("POST", f"{live_server}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_follow_up_turn_refines_but_does_not_break(oai):
    messages = [
        {"role": "system", "content": "Answer from the documents."},
        {"role": "user", "content": "Tell me about Kim Jong Un's train ride to Vietnam."},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": [{"type": "text", "text": "How long was it?"}]},
    ]
    r = oai.chat.completions.create(model="citeqa", messages=messages, extra_body={"top_k": 3})
    assert r.choices[0].message.content  # answered or abstained, never an error


@pytest.mark.parametrize(
    ("body", "param_words"),
    [
        ({"model": "citeqa", "messages": []}, "messages"),
        ({"model": "citeqa", "messages": [{"role": "system", "content": "hi"}]}, "user message"),
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, "unknown model"),
        ({"model": "citeqa", "messages": [{"role": "user", "content": "hi"}], "top_k": 99}, "top_k"),
        ({"model": "citeqa", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
        ({"model": "citeqa", "messages": [{"role": "user", "content": "  "}]}, "user message"),
    ],
)
def test_errors_use_the_openai_shape(oai, live_server, body, param_words):
    r = httpx.post(f"{live_server}/v1/chat/completions", json=body)
    assert 400 <= r.status_code < 500
    err = r.json()["error"]
    assert param_words in err["message"] and err["type"] == "invalid_request_error"
    extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
    with pytest.raises(openai.BadRequestError if r.status_code == 400 else openai.APIStatusError):
        oai.chat.completions.create(model=body["model"], messages=body["messages"], extra_body=extra)


def test_a_lone_surrogate_in_the_question_is_an_openai_400(live_server):
    body = b'{"model": "citeqa", "messages": [{"role": "user", "content": "\\ud800 when?"}]}'
    r = httpx.post(
        f"{live_server}/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    err = r.json()["error"]
    assert "lone surrogate" in err["message"] and err["type"] == "invalid_request_error"


def test_unknown_v1_route_is_an_openai_404(live_server):
    r = httpx.get(f"{live_server}/v1/nope")
    assert r.status_code == 404 and "error" in r.json()


def test_reply_says_when_sources_disagree_and_cites_each(scripted_pipeline, scripted_client):
    from service.chat import compose

    result = scripted_pipeline.ask("When was Harlow Mill built?")
    content, annotations = compose(result)
    assert content.startswith("The sources disagree:\n1. 1850 [1] [2]\n2. 1862 [3]\n")
    assert "(confidence 0.96 and 0.80)" in content
    assert "[3] Visiting Harlow Mill — mill_blog.txt:" in content
    cited = [
        (a["url_citation"]["kind"], a["url_citation"]["doc_id"], a["url_citation"]["text"])
        for a in annotations
    ]
    assert cited == [
        ("conflict", "mill_register.txt", "1850"),
        ("conflict", "mill_history.txt", "3 May 1850"),
        ("conflict", "mill_blog.txt", "1862"),
    ]
    for a in (x["url_citation"] for x in annotations):
        # each marker's annotation spans the answer it supports in the content
        assert content[a["start_index"] : a["end_index"]] == (
            "1862" if a["doc_id"] == "mill_blog.txt" else "1850"
        )
        assert scripted_pipeline.document(a["doc_id"]).text[a["start"] : a["end"]] == a["text"]

    agree, _ = compose(scripted_pipeline.ask("Who built Harlow Mill?"))
    assert agree.startswith("John Carter [1] [2]\n\n(confidence 0.97; 2 documents agree)")

    body = {"model": "citeqa", "messages": [{"role": "user", "content": "When was Harlow Mill built?"}]}
    message = scripted_client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["content"] == content and len(message["annotations"]) == 3


def test_citation_links_encode_the_document_id():
    """An id with a space, "?", "#" or "%" links to that document, not to a cut-off path."""
    from service.chat import _source

    class Result:
        def title(self, doc_id):
            return "Notes"

    source = _source(Result(), "http://127.0.0.1:8000", "notes/q?x#y%z .txt", 0, 1, "p#0")
    assert source["url"] == "http://127.0.0.1:8000/documents/notes/q%3Fx%23y%25z%20.txt"
    assert source["doc_id"] == "notes/q?x#y%z .txt"
