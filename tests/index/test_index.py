import shutil

import numpy as np
import pytest

from corpus import ChunkParams, Document, load_corpus
from index import (
    Embedder,
    ExactIndex,
    FaissIndex,
    StaleIndexError,
    build_index,
    expected_manifest,
    load_index,
    rrf_fuse,
    save_index,
)
from index.store import IndexError_

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


def test_rrf_fuse_rewards_agreement():
    fused = rrf_fuse([[1, 2, 3], [3, 1, 4]], k=60)
    order = [i for i, _ in fused]
    assert order[0] == 1  # ranks 1 and 2 beat 3's ranks 3 and 1
    assert set(order) == {1, 2, 3, 4}
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert rrf_fuse([]) == []


def _docs(tmp_path, texts):
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    return folder


def test_save_load_gives_identical_results(tmp_path, embedder):
    docs = load_corpus(DEFAULT_CORPUS)
    built = build_index(docs, embedder)
    save_index(built, tmp_path / "idx")
    loaded = load_index(tmp_path / "idx", embedder, expected_manifest(docs, embedder, ChunkParams()))
    assert loaded.passages == built.passages
    assert loaded.fingerprint == built.fingerprint
    for q in [
        "diplomatic relations 1950",
        "Why did Trump and Kim meet in Hanoi?",
        "Khmer Rouge support",
        "zzz",
    ]:
        a = [(h.passage.passage_id, round(h.score, 9), h.dense_rank, h.bm25_rank) for h in built.search(q, 8)]
        b = [
            (h.passage.passage_id, round(h.score, 9), h.dense_rank, h.bm25_rank) for h in loaded.search(q, 8)
        ]
        assert a == b
    # saving again replaces the folder whole, leaving no temporary folders behind
    save_index(built, tmp_path / "idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_changed_corpus_or_model_makes_the_index_stale(tmp_path, embedder):
    folder = _docs(tmp_path, {"a.txt": "Hanoi is the capital of Vietnam.", "b.txt": "Pyongyang is in Korea."})
    docs = load_corpus(folder)
    save_index(build_index(docs, embedder), tmp_path / "idx")
    load_index(tmp_path / "idx", embedder, expected_manifest(docs, embedder, ChunkParams()))

    (folder / "a.txt").write_text("Hanoi is the capital of Vietnam. It has many mopeds.")
    changed = load_corpus(folder)
    with pytest.raises(StaleIndexError, match="documents changed.*citeqa index"):
        load_index(tmp_path / "idx", embedder, expected_manifest(changed, embedder, ChunkParams()))
    with pytest.raises(StaleIndexError, match="chunking"):
        load_index(tmp_path / "idx", embedder, expected_manifest(docs, embedder, ChunkParams(60, 10)))

    other_model = tmp_path / "other-model"
    shutil.copytree(embedder.model_path, other_model)
    (other_model / "extra.json").write_text("{}")
    other = Embedder(other_model)
    with pytest.raises(StaleIndexError, match="model"):
        load_index(tmp_path / "idx", other, expected_manifest(docs, other, ChunkParams()))


def test_missing_or_damaged_index_is_refused(tmp_path, embedder):
    with pytest.raises(IndexError_, match="no index"):
        load_index(tmp_path / "none", embedder)
    docs = [Document("a.txt", "a", "Hanoi is the capital of Vietnam.")]
    save_index(build_index(docs, embedder), tmp_path / "idx")
    (tmp_path / "idx" / "dense.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexError_, match="citeqa index"):
        load_index(tmp_path / "idx", embedder)


def test_embeddings_are_normalised(embedder):
    v = embedder.encode(["hello world", "North Korea"])
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
