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

    p = Pipeline(corpus_dir=DEFAULT_CORPUS, index_dir=index_dir)
    p.embedder = embedder  # share the session's loaded model
    p.reader.embedder = embedder
    p.build()
    p.warm_up()
    return p


@pytest.fixture(scope="session")
def client(pipeline):
    from fastapi.testclient import TestClient

    from service.api import create_app

    with TestClient(create_app(pipeline=pipeline)) as c:
        yield c
