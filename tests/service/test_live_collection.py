"""A real server under concurrent queries and writes, and killed with SIGKILL in mid-upload."""

import shutil
import signal
import threading
import time

import httpx
import pytest

from ..conftest import spawn_server, stop_server

QUESTIONS = [
    "When did North Korea and North Vietnam establish formal diplomatic relations?",
    "How many pilots did North Korea send to Vietnam?",
    "Where did Kim Jong Un and Donald Trump hold their second summit?",
    "What do river otters eat in winter?",
]


def _otter_doc(n: int) -> str:
    return (
        f"# Otter colony {n}\n\nThe otter colony number {n} lives on the river Lune. "
        f"In winter colony {n} eats {n * 3} kilograms of crayfish every week. "
        f"Its oldest otter is {n + 7} years old."
    )


def _big_text(words: int) -> str:
    rivers = ["Lune", "Eden", "Tees", "Wear", "Tyne", "Ribble", "Kent", "Duddon"]
    out: list[str] = []
    n = 0
    while n < words:
        i = len(out)
        out.append(
            f"Survey {i} counted {i % 17 + 2} otters on the {rivers[i % 8]} at mile {i % 41}, "
            f"most of them feeding on eels and crayfish near the weir."
        )
        n += 20
    return " ".join(out)


@pytest.fixture()
def server_dir(tmp_path, pipeline, index_dir):
    """A copy of the session's built index, for a server of its own."""
    return shutil.copytree(index_dir, tmp_path / "index")


def _texts(client: httpx.Client) -> dict[str, str]:
    return {
        d["doc_id"]: client.get(f"/documents/{d['doc_id']}").json()["text"]
        for d in client.get("/documents").json()
    }


def _check(body: dict, texts: dict[str, str]) -> None:
    for item in body["answers"] + body["passages"]:
        assert texts[item["doc_id"]][item["start"] : item["end"]] == item["text"]


def test_queries_during_writes_each_see_one_consistent_state(server_dir):
    proc, url = spawn_server(server_dir)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            texts = _texts(c)
            start_version = c.get("/health").json()["version"]
        base_ids = frozenset(texts)
        lock = threading.Lock()
        errors: list[str] = []
        answered: list[dict] = []
        stop = threading.Event()

        def writer(first: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as c:
                for n in range(first, first + 6):
                    doc_id = f"otters/{n}.md"
                    with lock:
                        texts[doc_id] = _otter_doc(n)
                    r = c.post("/documents", json={"doc_id": doc_id, "text": _otter_doc(n)})
                    if r.status_code != 201:
                        errors.append(f"add {doc_id}: {r.status_code} {r.text}")
                        continue
                    with lock:
                        log.append((r.json()["version"], "add", doc_id))
                    time.sleep(0.3)  # let queries run against this version
                    if n % 2:
                        r = c.delete(f"/documents/{doc_id}")
                        if r.status_code != 200:
                            errors.append(f"remove {doc_id}: {r.status_code} {r.text}")
                            continue
                        with lock:
                            log.append((r.json()["version"], "remove", doc_id))

        def reader(k: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as c:
                i = k
                while not stop.is_set():
                    q = QUESTIONS[i % len(QUESTIONS)]
                    i += 1
                    r = c.post("/ask", json={"question": q, "top_k": 8})
                    if r.status_code != 200:
                        errors.append(f"ask: {r.status_code} {r.text}")
                        continue
                    answered.append(r.json())

        log: list[tuple[int, str, str]] = []
        readers = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
        writers = [threading.Thread(target=writer, args=(first,)) for first in (100, 200)]
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join()
        time.sleep(1.0)
        stop.set()
        for t in readers:
            t.join()
        assert not errors, errors[:5]

        # writes were serialised: every change got its own version, one after the other
        versions = sorted(v for v, _, _ in log)
        assert versions == list(range(start_version + 1, start_version + 1 + len(log)))
        current = set(base_ids)
        docs_at = {start_version: frozenset(current)}
        for version, op, doc_id in sorted(log):
            (current.add if op == "add" else current.discard)(doc_id)
            docs_at[version] = frozenset(current)

        # each answer came from one state: every cited document belongs to the version it reports
        seen_versions = set()
        assert len(answered) >= 6
        for body in answered:
            held = docs_at[body["version"]]
            seen_versions.add(body["version"])
            for item in body["answers"] + body["passages"]:
                assert item["doc_id"] in held, (body["version"], item["doc_id"])
            _check(body, texts)
        assert len(seen_versions) >= 3  # queries really ran while the collection changed

        with httpx.Client(base_url=url, timeout=60) as c:
            final = {d["doc_id"] for d in c.get("/documents").json()}
            assert final == set(docs_at[max(docs_at)])  # nothing lost, nothing left behind
            hits = c.get("/search", params={"q": "otter colony number 104 crayfish", "top_k": 3}).json()
            assert "otters/104.md" in [p["doc_id"] for p in hits["passages"]]
    finally:
        stop_server(proc)


def test_sigkill_during_a_large_upload_keeps_the_last_committed_state(server_dir):
    proc, url = spawn_server(server_dir)
    with httpx.Client(base_url=url, timeout=60) as c:
        before = _texts(c)
        version = c.get("/health").json()["version"]
    big = _big_text(60_000)  # about 400 KB: several seconds of embedding on 2 cores
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            with httpx.Client(base_url=url, timeout=120) as c:
                c.post("/documents", json={"doc_id": "surveys.txt", "text": big})
        except httpx.HTTPError as exc:  # the server dies under it
            failure.append(exc)

    t = threading.Thread(target=upload)
    t.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    t.join(timeout=30)
    assert failure, "the upload finished before the kill; make the document larger"

    proc, url = spawn_server(server_dir)
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            after = _texts(c)
            assert after == before  # the old state, whole
            assert c.get("/health").json()["version"] == version
            for q in QUESTIONS:
                body = c.post("/ask", json={"question": q}).json()
                _check(body, after)
            # the store is not wedged: no stale lock, leftovers cleaned by the next write
            r = c.post("/documents", json={"doc_id": "small.txt", "text": _otter_doc(1)})
            assert r.status_code == 201 and r.json()["version"] == version + 1
            tmp_left = [p.name for p in (server_dir / "versions").iterdir() if not p.name.isdigit()]
            assert tmp_left == []
            # and a big upload that is not interrupted commits whole
            r = c.post("/documents", json={"doc_id": "surveys.txt", "text": big[:60_000]})
            assert r.status_code == 201 and r.json()["passages"] > 10
            body = c.get("/search", params={"q": "otters on the Tees at mile 3", "top_k": 5}).json()
            _check(body | {"answers": []}, _texts(c))
    finally:
        stop_server(proc)
