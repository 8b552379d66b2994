import shutil

import numpy as np
import pytest

from corpus import ChunkParams, Document, load_corpus
from index import (
    Change,
    Embedder,
    ExactIndex,
    FaissIndex,
    Store,
    build_index,
    incompatibilities,
    rrf_fuse,
)
from index.bm25 import BM25Index
from index.index import IndexError_
from tests.vectors import SameVectors

from ..conftest import DEFAULT_CORPUS


def test_faiss_matches_the_exact_twin():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(500, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = vecs[:20] + 0.1 * rng.normal(size=(20, 32)).astype(np.float32)
    f, e = FaissIndex(32), ExactIndex(32)
    f.add(vecs)
    e.add(vecs)
    fs, fi = f.search(queries, 10)
    es, ei = e.search(queries, 10)
    np.testing.assert_array_equal(fi, ei)
    np.testing.assert_allclose(fs, es, rtol=1e-5, atol=1e-5)
    # asking for more than exist pads with -1, in both
    assert (f.search(queries[:1], 600)[1][0, 500:] == -1).all()
    assert (e.search(queries[:1], 600)[1][0, 500:] == -1).all()


def test_faiss_ids_survive_removal_like_the_exact_twin():
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(200, 16)).astype(np.float32)
    ids = np.arange(1000, 1200)
    f, e = FaissIndex(16), ExactIndex(16)
    f.add(vecs, ids)
    e.add(vecs, ids)
    g = f.copy()
    g.remove(ids[::3])
    e.remove(ids[::3])
    assert f.ntotal == 200 and g.ntotal == e.ntotal == 200 - len(ids[::3])  # the copy is independent
    gs, gi = g.search(vecs[:10], 5)
    es, ei = e.search(vecs[:10], 5)
    np.testing.assert_array_equal(gi, ei)
    assert not set(gi.ravel()) & set(ids[::3])
    np.testing.assert_allclose(gs, es, rtol=1e-5, atol=1e-5)


def test_bm25_built_incrementally_scores_like_one_built_at_once():
    texts = [
        "Hanoi is the capital of Vietnam.",
        "Pyongyang is the capital of North Korea.",
        "Kim Il Sung visited Hanoi in 1958 and 1964.",
        "The capital hosted a summit.",
        "Rice and fish sauce.",
    ]
    whole = BM25Index()
    whole.fit([texts[0], texts[2], texts[3]])
    grown = BM25Index()
    grown.add([0, 1], texts[:2])
    grown = grown.copy()
    grown.add([2, 3, 4], texts[2:])
    grown.remove([1, 4])
    for q in ["capital Hanoi", "visited", "summit capital", "nothing here"]:
        ws, wk = whole.search(q, 5)
        gs, gk = grown.search(q, 5)
        assert [int(k) for k in gk] == [[0, 2, 3][int(k)] for k in wk]
        np.testing.assert_allclose(gs, ws, rtol=1e-6)
    assert whole.search("zzz", 3)[1].size == 0


def test_rrf_fuse_rewards_agreement():
    fused = rrf_fuse([[1, 2, 3], [3, 1, 4]], k=60)
    order = [i for i, _ in fused]
    assert order[0] == 1  # ranks 1 and 2 beat 3's ranks 3 and 1
    assert set(order) == {1, 2, 3, 4}
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert rrf_fuse([]) == []


def _ranked(index, queries, k=8):
    return [
        [(h.passage.passage_id, round(h.score, 9), h.dense_rank, h.bm25_rank) for h in index.search(q, k)]
        for q in queries
    ]


QUERIES = ["diplomatic relations 1950", "Why did Trump and Kim meet in Hanoi?", "Khmer Rouge support", "zzz"]


def test_save_load_gives_identical_results(tmp_path, embedder):
    docs = load_corpus(DEFAULT_CORPUS)
    built = build_index(docs, embedder)
    store = Store(tmp_path / "idx")
    store.commit(built)
    loaded = store.load(embedder)
    assert loaded.passages == built.passages
    assert loaded.fingerprint == built.fingerprint
    assert loaded.version == built.version == 1
    assert _ranked(built, QUERIES) == _ranked(loaded, QUERIES)
    # committing again makes version 2; only the last two versions are kept, and no leftovers
    store.commit(built.updated(Change()))
    store.commit(built.updated(Change()))
    assert store.current() == 3
    assert sorted(p.name for p in (tmp_path / "idx" / "versions").iterdir()) == ["00000002", "00000003"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["CURRENT", "blobs", "versions"]


def test_incompatible_model_or_chunking_is_reported(tmp_path, embedder):
    docs = [Document("a.txt", "a", "Hanoi is the capital of Vietnam."), Document("b.txt", "b", "Pyongyang.")]
    index = build_index(docs, embedder)
    assert incompatibilities(index.manifest, embedder, ChunkParams()) == []
    assert "chunking" in incompatibilities(index.manifest, embedder, ChunkParams(60, 10))[0]
    other_model = tmp_path / "other-model"
    shutil.copytree(embedder.model_path, other_model)
    (other_model / "extra.json").write_text("{}")
    assert "model" in incompatibilities(index.manifest, Embedder(other_model), ChunkParams())[0]


def test_missing_damaged_or_old_index_is_refused(tmp_path, embedder):
    with pytest.raises(IndexError_, match="no index"):
        Store(tmp_path / "none").load(embedder)
    docs = [Document("a.txt", "a", "Hanoi is the capital of Vietnam.")]
    store = Store(tmp_path / "idx")
    store.commit(build_index(docs, embedder))
    (tmp_path / "idx" / "versions" / "00000001" / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexError_, match="damaged.*citeqa index"):
        store.load(embedder)
    blob = next((tmp_path / "idx" / "blobs").glob("*/*.txt"))
    blob.write_text("Hanoi is the capital of Laos.")
    with pytest.raises(IndexError_, match="checksum|damaged"):
        store.load(embedder)
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    with pytest.raises(IndexError_, match="older citeqa.*citeqa index"):
        Store(old).load(embedder)


def test_line_endings_survive_a_commit_and_a_load(tmp_path, embedder):
    """Stored texts are read back byte for byte: "\r\n" and a lone "\r" stay as they were (read
    in text mode they became "\n", and the index no longer loaded)."""
    text = "Bridge notes\r\nThe Millau Viaduct was designed by Norman Foster.\r\rIt opened in 2004.\n"
    docs = [Document("crlf.txt", "Bridge notes", text), Document("a.txt", "a", "Hanoi is in Vietnam.")]
    store = Store(tmp_path / "idx")
    store.commit(build_index(docs, embedder))
    loaded = store.load(embedder)
    assert loaded.documents["crlf.txt"].text == text
    for p in loaded.passages:
        assert loaded.documents[p.doc_id].text[p.start : p.end] == p.text


def test_salvage_keeps_the_documents_whose_texts_are_intact(tmp_path, embedder):
    docs = [Document("a.txt", "a", "Hanoi is the capital of Vietnam."), Document("b.txt", "b", "Pyongyang.")]
    state = build_index(
        docs, embedder, origin={"a.txt": "added", "b.txt": "corpus"}, corpus_seen={"b.txt": "x"}
    )
    store = Store(tmp_path / "idx")
    store.commit(state)
    assert Store(tmp_path / "none").salvage() is None
    (tmp_path / "idx" / "versions" / "00000001" / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexError_, match="damaged"):
        store.load(embedder)
    entries, seen, lost = store.salvage()
    assert {d: (e.origin, e.document.text) for d, e in entries.items()} == {
        "a.txt": ("added", docs[0].text), "b.txt": ("corpus", docs[1].text)
    }  # fmt: skip
    assert seen == {"b.txt": "x"} and lost == []
    store._blob(state.entries["a.txt"].sha256).write_text("Hanoi is the capital of Laos.")
    entries, _, lost = store.salvage()
    assert set(entries) == {"b.txt"} and lost == ["a.txt"]


def test_embeddings_are_normalised(embedder):
    v = embedder.encode(["hello world", "North Korea"])
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)


def test_bm25_keeps_only_the_allowed_keys():
    bm25 = BM25Index()
    bm25.add([1, 2, 3, 4], ["the mill by the river", "a mill", "the river", "nothing here"])
    scores, keys = bm25.search("mill river", 10)
    assert set(keys) == {1, 2, 3}
    scores, keys = bm25.search("mill river", 10, allowed=np.array([2, 3, 4]))
    assert list(keys) == [k for k in bm25.search("mill river", 10)[1] if k in (2, 3)]


def test_shards_rank_exactly_like_one_collection(embedder):
    """A collection split by shard_of into shards, searched by search_shards (one embedding,
    BM25 with the statistics of all shards, merged candidates), ranks like one Index of it."""
    from index import search_shards, shard_of

    embedder = SameVectors(embedder)

    docs = load_corpus(DEFAULT_CORPUS) + load_corpus(
        DEFAULT_CORPUS.parent.parent / "eval" / "gold" / "agreement" / "docs"
    )
    whole = build_index(docs, embedder)
    assert {shard_of(d.doc_id, 2) for d in docs} == {0, 1}
    assert [shard_of("a.txt", 7), shard_of("report.pdf", 7)] == [
        2,
        3,
    ]  # sha256-based: the same in every process and on every machine
    shards = [build_index([d for d in docs if shard_of(d.doc_id, 2) == s], embedder) for s in range(2)]
    assert sum(len(s.by_key) for s in shards) == len(whole.by_key)
    only = [d.doc_id for d in docs[::3]]
    for q in ["When did Kim Jong Un first visit Vietnam?", "Who designed the bridge?", "lighthouse automated",
              "What do sea otters eat?", "the the of"]:  # fmt: skip
        for kwargs in ({}, {"only": only}, {"candidates": 5}):
            one = whole.search(q, 10, **kwargs)
            split = search_shards(shards, q, 10, **kwargs)
            assert [h.passage.passage_id for h in split] == [h.passage.passage_id for h in one], (q, kwargs)
            for a, b in zip(split, one):
                assert (a.score, a.dense_rank, a.bm25_rank) == (b.score, b.dense_rank, b.bm25_rank)
                assert (a.bm25_score, a.dense_score) == (b.bm25_score, b.dense_score)


def test_bm25_shards_with_summed_statistics_score_like_the_whole():
    from index.bm25 import BM25Index

    texts = ["the mill by the river", "a mill", "the river runs", "nothing here", "river river mill"]
    whole = BM25Index()
    whole.add(range(5), texts)
    parts = [BM25Index(), BM25Index()]
    parts[0].add([0, 2, 4], [texts[i] for i in (0, 2, 4)])
    parts[1].add([1, 3], [texts[i] for i in (1, 3)])
    stats = parts[0].stats("mill river") + parts[1].stats("mill river")
    assert stats == whole.stats("mill river")
    merged = {int(k): float(s) for p in parts for s, k in zip(*p.search("mill river", 5, stats=stats))}
    assert merged == {int(k): float(s) for s, k in zip(*whole.search("mill river", 5))}
    assert merged != {int(k): float(s) for p in parts for s, k in zip(*p.search("mill river", 5))}
