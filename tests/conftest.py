"""Shared fixtures: the real bundled model and an index of the default corpus, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT / "corpus" / "docs"


@pytest.fixture(scope="session")
def embedder():
    from index import Embedder

    e = Embedder()
    e.warm_up()
    return e


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("citeqa") / "index"


@pytest.fixture(scope="session")
def pipeline(index_dir, embedder):
    from service import Pipeline

    # share the session's loaded model
    p = Pipeline(corpus_dir=DEFAULT_CORPUS, index_dir=index_dir, embedder=embedder, write_embedder=embedder)
    p.build()
    p.warm_up()
    return p


@pytest.fixture(scope="session")
def built_index(pipeline, index_dir) -> Path:
    """``index_dir`` with the default corpus indexed in it (by ``pipeline``), for tests that only
    read it, so that each also runs alone."""
    return index_dir


@pytest.fixture(scope="session")
def client(pipeline):
    from fastapi.testclient import TestClient

    from service.api import create_app

    with TestClient(create_app(pipeline=pipeline)) as c:
        yield c


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(index_dir, corpus_dir=DEFAULT_CORPUS, **env_extra):
    """Start `citeqa serve` (uvicorn) on a free loopback port; returns (process, base url)."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = {
        **os.environ,
        "CITEQA_INDEX_DIR": str(index_dir),
        "CITEQA_CORPUS_DIR": str(corpus_dir),
        **env_extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.2)


def stop_server(proc):
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def live_server(pipeline, index_dir):
    """A real `citeqa serve` (uvicorn) on loopback, over the session's saved index."""
    proc, url = spawn_server(index_dir)
    yield url
    stop_server(proc)


# Three short documents on one invented subject: two agree on the year (in other words), a
# third disagrees. Answers come from a scripted reader, so scores are fixed, not the model's.
SCRIPTED_DOCS = {
    "mill_register.txt": "Harlow Mill\n\nHarlow Mill was built in 1850 by the engineer John Carter. "
    "It ground corn for the village until 1931.",
    "mill_history.txt": "The story of Harlow Mill\n\nHarlow Mill opened on 3 May 1850. Its builder, "
    "John Carter, also built the village church.",
    "mill_blog.txt": "Visiting Harlow Mill\n\nLocals say Harlow Mill dates from 1862, when its "
    "first stones were turned.",
}
SCRIPT = {  # question -> [(doc_id, answer text, score)]
    "When was Harlow Mill built?": [
        ("mill_register.txt", "1850", 0.9),
        ("mill_blog.txt", "1862", 0.8),
        ("mill_history.txt", "3 May 1850", 0.6),
    ],
    "Who built Harlow Mill?": [
        ("mill_register.txt", "John Carter", 0.9),
        ("mill_history.txt", "John Carter", 0.7),
    ],
    "Until when did Harlow Mill grind corn?": [("mill_register.txt", "1931", 0.8)],
    "What colour is Harlow Mill?": [],
}


class ScriptedReader:
    """Finds the scripted answers of a question in the passages it is given, with set scores."""

    name = "scripted"
    conflict_share = None

    def warm_up(self) -> None:
        pass

    def read(self, question, passages, top_n=3, ranked=False):
        from reader import Answer

        out = []
        for doc_id, text, score in SCRIPT.get(question, []):
            for p in passages:
                if p.doc_id == doc_id and text in p.text:
                    start = p.start + p.text.index(text)
                    out.append(Answer(text, score, doc_id, start, start + len(text), p.passage_id))
                    break
        return sorted(out, key=lambda a: -a.score)[:top_n]


@pytest.fixture(scope="session")
def scripted_pipeline(tmp_path_factory, embedder):
    """A pipeline over SCRIPTED_DOCS whose reader answers from SCRIPT."""
    from corpus import Document
    from service import Pipeline

    docs = [Document(d, text.split("\n")[0], text) for d, text in SCRIPTED_DOCS.items()]
    folder = tmp_path_factory.mktemp("scripted")
    p = Pipeline(
        corpus_dir=folder, index_dir=folder / "index", documents=docs, embedder=embedder,
        write_embedder=embedder, reader="baseline",
    )  # fmt: skip
    p.reader = ScriptedReader()
    p.warm_up(build_if_needed=True)
    return p


@pytest.fixture(scope="session")
def scripted_client(scripted_pipeline):
    from fastapi.testclient import TestClient

    from service.api import create_app

    with TestClient(create_app(pipeline=scripted_pipeline)) as c:
        yield c
