"""Fixtures of the service tests."""

import pytest
from fastapi.testclient import TestClient

from service import Pipeline
from service.api import create_app
from service.settings import Settings

from ..conftest import DEFAULT_CORPUS


@pytest.fixture()
def make_client(tmp_path, embedder):
    """A client over its own collection (a fresh index folder), with the given settings."""

    def make(**settings):
        index_dir = tmp_path / "index"
        p = Pipeline(DEFAULT_CORPUS, index_dir, embedder=embedder, write_embedder=embedder)
        p.warm_up(build_if_needed=True)
        app = create_app(Settings(corpus_dir=DEFAULT_CORPUS, index_dir=index_dir, **settings), pipeline=p)
        return TestClient(app)

    return make
