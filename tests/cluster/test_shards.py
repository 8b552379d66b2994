"""A sharded collection served in one process (no Ray): it answers exactly like one collection."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from cluster import Layout, is_sharded
from cluster.build import build_shards
from cluster.front import ClusterPipeline, ShardUnavailableError, local_shards
from cluster.shard import Shard
from corpus import Document, load_corpus
from service import Pipeline
from service.api import create_app
from service.errors import ConflictError, NotFoundError
from service.pipeline import Filter
from tests.conftest import DEFAULT_CORPUS, ROOT
from tests.vectors import SameVectors

DOCS = load_corpus(DEFAULT_CORPUS) + load_corpus(ROOT / "eval" / "gold" / "agreement" / "docs")
QUESTIONS = [
    "When did Kim Jong Un first visit Vietnam?",
    "Who designed the bridge?",
    "What do sea otters eat?",
    "When was the lighthouse automated?",
    "the the of",
]


@pytest.fixture(scope="module")
def same(embedder):
    return SameVectors(embedder)


@pytest.fixture(scope="module")
def single(tmp_path_factory, same):
    p = Pipeline(
        corpus_dir=DEFAULT_CORPUS, index_dir=tmp_path_factory.mktemp("one"), documents=DOCS,
        embedder=same, write_embedder=same, reader="baseline",
    )  # fmt: skip
    p.build()
    p.warm_up()
    return p


def _front(folder, embedder, reader="baseline"):
    p = ClusterPipeline(local_shards(folder), index_dir=folder, embedder=embedder, reader=reader)
    for client in p.shards:
        client.shard.embedder = embedder  # writes embed with the same (memoised) vectors
    p.warm_up()
    return p


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, same):
    folder = tmp_path_factory.mktemp("sharded") / "index"
    report = build_shards(DOCS, folder, 3, embedder=same)
    assert report.documents == len(DOCS) and report.workers == 1
    return folder


def test_the_layout_names_every_shard_and_routes_by_the_stable_hash(sharded):
    assert is_sharded(sharded)
    layout = Layout.load(sharded)
    assert layout.names == ("shard-000", "shard-001", "shard-002")
    manifest = json.loads((sharded / "SHARDS.json").read_text())
    assert manifest["model"]["name"] and manifest["chunking"] == {"max_words": 120, "overlap_words": 30}
    seen = set()
    for i, shard in enumerate(local_shards(sharded)):
        entries = shard.shard.catalogue().entries
        assert all(layout.owner(d) == i for d in entries)
        seen |= set(entries)
    assert seen == {d.doc_id for d in DOCS}


def test_the_shards_answer_exactly_like_one_collection(sharded, single, same):
    front = _front(sharded, same)
    whole = single.current()
    assert front.current().passage_count == whole.passage_count
    assert set(front.current().entries) == set(whole.entries)
    only = Filter.of([d.doc_id for d in DOCS[::3]])
    for q in QUESTIONS:
        for flt in (Filter(), only):
            a, b = front.ask(q, 3, retrieve_k=10, only=flt), single.ask(q, 3, retrieve_k=10, only=flt)
            assert [h.passage.passage_id for h in a.retrieved] == [
                h.passage.passage_id for h in b.retrieved
            ], q
            for x, y in zip(a.retrieved, b.retrieved):
                assert (x.score, x.dense_score, x.bm25_score) == (y.score, y.dense_score, y.bm25_score)
            assert [(m.answer.text, m.answer.doc_id, m.answer.start) for m in a.answers] == [
                (m.answer.text, m.answer.doc_id, m.answer.start) for m in b.answers
            ]
            for m in a.answers:  # the invariant, through the front's catalogue
                doc = front.document(m.answer.doc_id)
                assert doc.text[m.answer.start : m.answer.end] == m.answer.text


def test_writes_go_to_the_owning_shard_and_are_served_at_once(tmp_path, same):
    folder = tmp_path / "index"
    build_shards(DOCS[:3], folder, 2, embedder=same)
    front = _front(folder, same)
    layout = Layout.load(folder)
    doc = Document("zorblat.txt", "Zorblat", "The Zorblat bridge was designed by Ada Quill in 1901.")
    before = front.current().version
    update = front.add_documents([doc], replace=False)
    assert update.added == ["zorblat.txt"] and update.version == before + 1
    owner = Shard(layout.folders[layout.owner("zorblat.txt")])
    assert "zorblat.txt" in owner.catalogue().entries
    top = front.ask("Who designed the Zorblat bridge?").answers[0].answer
    assert (top.text, top.doc_id) == ("Ada Quill", "zorblat.txt")
    with pytest.raises(ConflictError):
        front.add_documents([doc], replace=False)
    # a batch that one shard would refuse is refused whole, before any shard writes its part
    other_shard = next(
        f"new-{i}.txt" for i in range(100) if layout.owner(f"new-{i}.txt") != layout.owner("zorblat.txt")
    )
    fresh = Document(other_shard, "New", "A new note.")
    version = front.current().version
    with pytest.raises(ConflictError, match="zorblat.txt"):
        front.add_documents([fresh, doc], replace=False)
    assert other_shard not in front.refresh().entries and front.current().version == version
    assert front.add_documents([doc], replace=True).unchanged == ["zorblat.txt"]
    with pytest.raises(NotFoundError):
        front.remove_documents(["nope.txt"])
    assert front.remove_documents(["zorblat.txt"]).removed == ["zorblat.txt"]
    assert "zorblat.txt" not in front.current().entries

    # a write by another process (here: another front) is served from the next check on
    other = _front(folder, same)
    other.add_documents([doc])
    front.RELOAD_CHECK_S = 0.0
    assert front.ask("Who designed the Zorblat bridge?").answers[0].answer.doc_id == "zorblat.txt"

    # a rebuild keeps the documents added through the API
    build_shards(DOCS[:3], folder, 3, embedder=same)
    assert Layout.load(folder).count == 3 and not (folder / "shard-003").exists()
    assert "zorblat.txt" in _front(folder, same).current().entries


class _Failing:
    """A shard whose replica died: its answer never comes."""

    def __init__(self, inner):
        self.inner, self.dead = inner, False

    def call(self, method, *args):
        if not self.dead:
            return self.inner.call(method, *args)

        class Lost:
            def result(self, timeout_s=None):
                raise RuntimeError("the actor died unexpectedly")

        return Lost()


def test_a_question_that_meets_a_dead_shard_gets_503_with_retry_after(sharded, same):
    shards = [_Failing(s) for s in local_shards(sharded)]
    p = ClusterPipeline(shards, index_dir=sharded, embedder=same, reader="baseline")
    p.warm_up()
    with TestClient(create_app(pipeline=p)) as client:
        assert client.post("/ask", json={"question": QUESTIONS[0]}).status_code == 200
        shards[1].dead = True
        for path, body in (("/ask", {"question": QUESTIONS[0]}), ("/v1/chat/completions", None)):
            if body is None:
                body = {"model": "citeqa", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
            r = client.post(path, json=body)
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            assert "shard 1 of 3 is not available" in r.text
        r = client.post("/documents", json={"doc_id": "x.txt", "text": "Some text here."})
        owner = Layout.load(sharded).owner("x.txt")
        assert r.status_code == (503 if owner == 1 else 201)
        shards[1].dead = False
        assert client.post("/ask", json={"question": QUESTIONS[0]}).status_code == 200
    with pytest.raises(ShardUnavailableError):
        shards[1].dead = True
        p.refresh(force=True)


def test_cli_builds_and_serves_a_sharded_folder(tmp_path, capsys):
    from service.cli import main

    folder = tmp_path / "index"
    assert main(["index", "--shards", "2", "--index-dir", str(folder), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "in 2 shards" in out and "shard-001:" in out
    assert (
        main(["ask", "When did Kim Jong Un first visit Vietnam?", "--index-dir", str(folder), "--json"]) == 0
    )
    body = json.loads(capsys.readouterr().out)
    assert body["answers"] and body["version"] == 2
    assert main(["list", "--index-dir", str(folder), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(load_corpus(DEFAULT_CORPUS))
    assert main(["index", "--index-dir", str(tmp_path / "new"), "--ray", "127.0.0.9:1"]) == 2
    assert "not sharded yet" in capsys.readouterr().err
    assert main(["index", "--shards", "2", "--index-dir", str(tmp_path / "new"), "--ray", "127.0.0.9:1"]) == 2
    err = capsys.readouterr().err  # at once, not after minutes of ray.init retrying
    assert "no Ray cluster answers at 127.0.0.9:1" in err or "needs Ray" in err
    assert main(["index", "--shards", "0", "--index-dir", str(folder)]) == 2
    assert main(["index", "--shards", "2", "--if-stale", "--index-dir", str(folder)]) == 2
    one = tmp_path / "one"
    assert main(["index", "--index-dir", str(one), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["index", "--shards", "2", "--index-dir", str(one), "--quiet"]) == 2
    assert "not sharded" in capsys.readouterr().err
    assert main(["serve", "--ray", "127.0.0.9:1", "--index-dir", str(one)]) == 2
    err = capsys.readouterr().err
    assert "not sharded" in err or "needs Ray" in err
