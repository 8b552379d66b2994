"""Incremental updates and crash safety of the committed collection."""

import shutil
import subprocess
import sys

import numpy as np

from corpus import Document, load_corpus
from index import Change, Store, build_index
from index.index import vectors_of

from ..conftest import DEFAULT_CORPUS, ROOT

EXTRA = [
    Document(
        "otters.md", "Otters", "# Otters\n\nSea otters use rocks to crack open shellfish in the Pacific."
    ),
    Document("tea.txt", "Tea", "Green tea is grown in Thai Nguyen province, north of Hanoi, since 1922."),
]
QUERIES = [
    "When did North Korea and North Vietnam establish diplomatic relations?",
    "What do sea otters use to open shellfish?",
    "Where is green tea grown?",
    "Khmer Rouge",
]


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, embedder):
        self.inner, self.texts = embedder, 0
        self.name, self.fingerprint, self.dimension = embedder.name, embedder.fingerprint, embedder.dimension

    def encode(self, texts, show_progress=False):
        self.texts += len(texts)
        return self.inner.encode(texts)


def _ranked(index):
    out = []
    for q in QUERIES:
        out.append(
            [(h.passage.passage_id, round(h.score, 6), h.dense_rank, h.bm25_rank) for h in index.search(q, 6)]
        )
    return out


def test_incremental_updates_equal_a_full_rebuild(tmp_path, embedder):
    base = load_corpus(DEFAULT_CORPUS)
    counting = CountingEmbedder(embedder)
    state = build_index(base, counting)
    store = Store(tmp_path / "idx")
    store.commit(state)
    counting.texts = 0
    state = state.updated(Change(add=tuple((d, "added") for d in EXTRA)))
    assert counting.texts == 2  # only the new documents' passages were embedded
    edited = Document(base[0].doc_id, base[0].title, base[0].text + "\n\nA closing line added later.")
    state = state.updated(Change(add=((edited, "corpus"),), remove=(base[1].doc_id,)))
    store.commit(state)
    loaded = store.load(embedder)

    final_docs = [edited, base[2], *EXTRA]
    origins = {d.doc_id: ("added" if d in EXTRA else "corpus") for d in final_docs}
    rebuilt = build_index(final_docs, embedder, origin=origins)
    assert sorted(loaded.entries) == sorted(rebuilt.entries)
    assert sorted(p.passage_id for p in loaded.passages) == sorted(p.passage_id for p in rebuilt.passages)
    assert loaded.manifest["corpus"]["fingerprint"] == rebuilt.manifest["corpus"]["fingerprint"]
    assert _ranked(loaded) == _ranked(rebuilt)
    # the removed document's vectors and BM25 rows are gone, nothing else is
    assert loaded.dense.ntotal == loaded.bm25.size == len(loaded.by_key) == len(rebuilt.by_key)
    assert not any(p.doc_id == base[1].doc_id for p in loaded.passages)
    by_id = {p.passage_id: k for k, p in loaded.by_key.items()}
    re_by_id = {p.passage_id: k for k, p in rebuilt.by_key.items()}
    ours, theirs = vectors_of(loaded), vectors_of(rebuilt)
    order = sorted(by_id)
    a = ours[[sorted(by_id.values()).index(by_id[i]) for i in order]]
    b = theirs[[sorted(re_by_id.values()).index(re_by_id[i]) for i in order]]
    # the same vectors; bfloat16 products vary a little with the batch a passage is embedded in
    np.testing.assert_allclose(a, b, atol=1e-5 if embedder.backend.endswith("fp32") else 5e-3)
    for p in loaded.passages:
        assert loaded.document(p.doc_id).text[p.start : p.end] == p.text


CHILD = r"""
import os, sys
from index.store import Store

work, prepared, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
state = Store(prepared).load(None)
count = 0
WATCHED = ("store.py", "bm25.py", "dense.py")

def lines(frame, event, arg):
    global count
    if event == "line":
        count += 1
        if count == crash_at:
            os._exit(137)  # like kill -9: no cleanup, no flush of Python buffers
    return lines

def calls(frame, event, arg):
    return lines if frame.f_code.co_filename.endswith(WATCHED) else None

sys.settrace(calls)
Store(work).commit(state)
sys.settrace(None)
print(count)
"""


def _child(work, prepared, crash_at):
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(work), str(prepared), str(crash_at)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_crash_at_any_point_of_a_commit_leaves_the_old_or_the_new_state(tmp_path, embedder):
    old = build_index([Document("a.txt", "A", "Hanoi is the capital of Vietnam."), EXTRA[0]], embedder)
    template = tmp_path / "template"
    Store(template).commit(old)
    new = old.updated(Change(add=((EXTRA[1], "added"),), remove=("a.txt",)))
    Store(tmp_path / "prepared").commit(new)
    old_ids, new_ids = sorted(old.entries), sorted(new.entries)

    done = _child(shutil.copytree(template, tmp_path / "probe"), tmp_path / "prepared", 0)
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split()[-1])  # line events in one whole commit
    assert total > 50
    points = sorted({1, 2, total - 2, total - 1, *np.linspace(3, total - 3, 40).astype(int).tolist()})
    seen = set()
    for n in points:
        work = shutil.copytree(template, tmp_path / f"crash-{n}")
        crashed = _child(work, tmp_path / "prepared", n)
        assert crashed.returncode == 137, crashed.stderr
        state = Store(work).load(embedder)
        ids = sorted(state.entries)
        assert ids in (old_ids, new_ids), n
        seen.add(tuple(ids))
        for p in state.passages:
            assert state.document(p.doc_id).text[p.start : p.end] == p.text
        assert state.search("capital of Vietnam", 3) or ids == new_ids
        # the next writer cleans up what the crash left and commits normally
        store = Store(work)
        store.commit(state.updated(Change(add=((Document("z.txt", "Z", "Zebras."), "added"),))))
        assert not [p for p in (work / "versions").iterdir() if not p.name.isdigit()]
        assert "z.txt" in store.load(embedder).entries
    assert seen == {tuple(old_ids), tuple(new_ids)}  # crashes landed both before and after the switch
