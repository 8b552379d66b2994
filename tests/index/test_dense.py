"""FAISS kinds by collection size, memory-mapped loading, and ids that survive both."""

from __future__ import annotations

import numpy as np

from index.dense import ExactIndex, FaissIndex, ivf_lists, ivf_probes


def _vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, d))
    x = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_grows_into_ivf_and_shrinks_back_keeping_ids():
    x, ids = _vectors(6000), np.arange(100, 6100)
    flat = FaissIndex(32)
    flat.add(x, ids)
    assert flat.fit(exact_max=10_000) is flat  # small: stays exact
    ivf = flat.fit(exact_max=2000)
    assert not ivf.exact and "IVFFlat" in ivf.kind and ivf.ntotal == 6000
    got_ids, got = ivf.vectors()
    assert np.array_equal(got_ids, ids) and np.allclose(got, x)
    # IVF finds what exact search finds, for most queries (recall@10 against the exact twin)
    exact = ExactIndex(32)
    exact.add(x, ids)
    q = _vectors(50, seed=1)
    _, truth = exact.search(q, 10)
    _, found = ivf.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
    assert recall >= 0.9
    ivf.remove(ids[:5000])
    back = ivf.fit(exact_max=4000)  # 1,000 left, under half of 4,000
    assert back.exact and back.ntotal == 1000
    assert np.array_equal(back.vectors()[0], ids[5000:])


def test_ivf_sizes():
    assert ivf_lists(100_000) == 1264 and ivf_probes(1264) == 19
    assert ivf_lists(1_000_000) == 4000 and ivf_probes(4000) == 62
    assert ivf_lists(10) == 64


def test_memory_mapped_load_searches_the_same_and_copies_for_changes(tmp_path):
    x = _vectors(3000)
    for index in (FaissIndex(32), FaissIndex.ivf(np.arange(3000), x, nlist=32)):
        if index.exact:
            index.add(x)
        path = tmp_path / "dense.faiss"
        index.save(path)
        mapped = FaissIndex.load(path, mmap_min_bytes=0)
        assert mapped.mapped and not FaissIndex.load(path).mapped
        q = x[:5]
        assert np.array_equal(mapped.search(q, 5)[1], index.search(q, 5)[1])
        changed = mapped.copy()  # a change never touches the mapped file
        changed.add(x[:2], np.array([10_001, 10_002]))
        changed.remove(np.array([0]))
        assert changed.ntotal == 3001 and mapped.ntotal == 3000
        assert np.array_equal(FaissIndex.load(path).search(q, 5)[1], index.search(q, 5)[1])


def test_a_filtered_search_is_exact_among_the_allowed_ids_in_every_kind(monkeypatch):
    import index.dense as dense

    x, ids = _vectors(6000), np.arange(100, 6100)
    flat = FaissIndex(32)
    flat.add(x, ids)
    ivf = FaissIndex.ivf(ids, x)
    q = _vectors(5, seed=2)
    for allowed in (
        np.array([150, 3000, 6099]),
        np.sort(np.random.default_rng(3).choice(ids, 400, replace=False)),
    ):
        inside = np.isin(ids, allowed)
        truth_scores = q @ x[inside].T
        truth = ids[inside][np.argsort(-truth_scores, axis=1, kind="stable")[:, :10]]
        for index in (flat, ivf):
            scores, found = index.search(q, 10, allowed)
            k = min(10, len(allowed))
            assert np.array_equal(found[:, :k], truth[:, :k]), index.kind
            assert np.all(found[:, k:] == -1)
            assert np.allclose(
                scores[:, :k],
                np.take_along_axis(truth_scores, np.argsort(-truth_scores, 1)[:, :k], 1),
                atol=1e-5,
            )
    # many allowed ids: the IVF probes more lists instead, and still finds the allowed ones
    monkeypatch.setattr(dense, "FILTER_EXACT_MAX", 100)
    allowed = np.sort(np.random.default_rng(4).choice(ids, 600, replace=False))
    _, found = ivf.search(q, 10, allowed)
    _, truth = flat.search(q, 10, allowed)
    assert np.isin(found[found >= 0], allowed).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
    assert recall >= 0.9, recall
