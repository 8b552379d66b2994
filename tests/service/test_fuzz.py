"""Fuzz the HTTP API from its own OpenAPI schema: no 5xx, and every response matches the schema."""

import contextlib
import importlib
import pkgutil

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from service import Pipeline
from service.api import create_app
from service.settings import Settings

from ..conftest import DEFAULT_CORPUS

# Every schemathesis module is imported here, at collection, while single-threaded (see api_schema):
# it imports some lazily, and naming them one by one missed body_overrides. About 1.4 s.
for _module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
    with contextlib.suppress(ImportError):  # optional extras (allure)
        importlib.import_module(_module.name)

MAX_EXAMPLES = 25  # per operation; bounded so `make test` stays quick


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, embedder):
    index_dir = tmp_path_factory.mktemp("fuzz") / "index"
    p = Pipeline(DEFAULT_CORPUS, index_dir, embedder=embedder, write_embedder=embedder)
    p.warm_up(build_if_needed=True)
    app = create_app(Settings(corpus_dir=DEFAULT_CORPUS, index_dir=index_dir), pipeline=p)
    # Python 3.11.7 can fail with "AST constructor recursion depth mismatch" (CPython gh-106905)
    # when pytest's rewriting of an imported module overlaps AST work in another thread. The
    # lazily imported schemathesis modules are imported above, at collection, and the schema is
    # loaded before the lifespan starts its threads.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with TestClient(app):  # runs the app's lifespan while the fuzzer calls it
        yield schema


def test_api_conforms_to_its_schema(api_schema):
    """Every operation, MAX_EXAMPLES generated requests each (positive and negative data)."""
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {"POST /ask", "POST /documents", "PUT /documents/{doc_id}", "DELETE /documents/{doc_id}"} <= {
        f"{op.method.upper()} {op.path}" for op in operations
    }
    calls: dict[str, int] = {}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call_and_validate(checks=checks)
            key = f"{case.method} {case.path} {response.status_code}"
            calls[key] = calls.get(key, 0) + 1

        run()
    print(sorted(calls.items()))
    # the writes were really exercised, with both accepted and refused bodies
    assert any(k.startswith("POST /documents 201") for k in calls)
    assert any(k.startswith("POST /documents 4") for k in calls)
    assert sum(calls.values()) >= MAX_EXAMPLES * 5
