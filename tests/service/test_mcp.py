"""The MCP server through the SDK's own client: over stdio (a subprocess) and streamable HTTP."""

import os
import sys
from contextlib import asynccontextmanager

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

from ..conftest import DEFAULT_CORPUS, ROOT

Q = "When did North Korea and North Vietnam establish formal diplomatic relations?"


@asynccontextmanager
async def stdio_session(index_dir):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "service", "mcp", "--index-dir", str(index_dir), "--corpus", str(DEFAULT_CORPUS)],
        cwd=str(ROOT),
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url):
    async with streamablehttp_client(f"{url}/mcp") as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def _exercise(session, texts):
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert {"ask", "search"} <= set(tools)
    assert tools["ask"].outputSchema is not None

    result = await session.call_tool("ask", {"question": Q, "top_k": 5})
    assert not result.isError
    s = result.structuredContent
    assert s["answered"] is True and "1950" in s["answer"]
    assert s["agreement"] in ("single", "agree", "conflict") and s["documents"] >= 1
    assert 0 <= s["score"] <= 1
    assert s["citations"][0]["quote"] == s["answer"]
    for c in s["citations"]:  # every place that states it, maybe in other words ("1950s")
        assert texts[c["doc_id"]][c["start"] : c["end"]] == c["quote"]
    for p in s["passages"]:
        assert texts[p["doc_id"]][p["start"] : p["end"]] == p["text"]

    none = (await session.call_tool("ask", {"question": "What is the capital of Peru?"})).structuredContent
    assert none["answered"] is False and none["answer"] is None and none["passages"]
    assert none["agreement"] == "none"

    found = (await session.call_tool("search", {"query": "Khmer Rouge", "top_k": 3})).structuredContent
    assert len(found["passages"]) == 3

    bad = await session.call_tool("ask", {"question": "  "})
    assert bad.isError and "empty" in bad.content[0].text

    resources = (await session.list_resources()).resources
    assert len(resources) == len(texts)
    first = resources[0]
    body = await session.read_resource(first.uri)
    assert body.contents[0].text == texts[first.name]
    return s


def _texts():
    return {p.name: p.read_text(encoding="utf-8") for p in DEFAULT_CORPUS.iterdir()}


def test_mcp_over_stdio(index_dir, pipeline):
    async def main():
        async with stdio_session(index_dir) as session:
            return await _exercise(session, _texts())

    result = anyio.run(main)
    assert result["citations"][0]["doc_id"] == "002_4aa47291d7cb64dc.txt"
    assert result["citations"][0]["page"] is None  # plain text has no pages


def test_mcp_over_streamable_http(live_server):
    async def main():
        async with http_session(live_server) as session:
            return await _exercise(session, _texts())

    assert anyio.run(main)["answered"] is True


def test_mcp_stdio_refuses_a_missing_index_with_exit_2(tmp_path):
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", "service", "mcp", "--index-dir", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "citeqa index" in r.stderr


def test_mcp_route_is_exact(client):
    # no redirect to /mcp/: clients configured with .../mcp must work as written
    r = client.get("/mcp", follow_redirects=False)
    assert r.status_code not in (307, 404)


def test_mcp_starts_on_first_use_and_a_failed_start_is_a_503(index_dir, pipeline, monkeypatch):
    """The MCP library is imported when /mcp is first asked for, not during start-up; if the
    server cannot start, /mcp says so with a 503 (the rest of the service works)."""
    import subprocess

    from fastapi.testclient import TestClient

    from service.api import create_app

    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from service.api import create_app\n"
        "with TestClient(create_app()) as c:\n"
        "    assert c.get('/health').status_code == 200\n"
        "    assert 'mcp' not in sys.modules, 'mcp imported at start-up'\n"
        "    assert c.get('/mcp').status_code not in (404, 500, 503)\n"
        "    assert 'mcp' in sys.modules\n"
    )
    env = {**os.environ, "CITEQA_INDEX_DIR": str(index_dir), "CITEQA_CORPUS_DIR": str(DEFAULT_CORPUS)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("no MCP here")

    monkeypatch.setattr("service.api.build_mcp", broken)
    with TestClient(create_app(pipeline=pipeline)) as c:
        assert c.get("/health").status_code == 200
        r = c.post("/mcp", json={})
        assert r.status_code == 503 and "no MCP here" in r.json()["detail"]
        assert c.post("/ask", json={"question": "Who?"}).status_code == 200


def test_mcp_ask_carries_the_agreement_and_each_side_of_a_conflict(scripted_pipeline):
    from mcp.shared.memory import create_connected_server_and_client_session

    from service.mcp_server import build_mcp

    async def main():
        async with create_connected_server_and_client_session(
            build_mcp(lambda: scripted_pipeline)
        ) as session:
            built = await session.call_tool("ask", {"question": "When was Harlow Mill built?"})
            carter = await session.call_tool("ask", {"question": "Who built Harlow Mill?"})
            return built.structuredContent, carter.structuredContent

    built, carter = anyio.run(main)
    assert built["agreement"] == "conflict" and built["answer"] == "1850" and built["documents"] == 2
    assert [c["quote"] for c in built["citations"]] == ["1850", "3 May 1850"]
    [side] = built["disagreeing_answers"]
    assert side["answer"] == "1862" and side["documents"] == 1
    assert [(c["doc_id"], c["quote"], c["title"]) for c in side["citations"]] == [
        ("mill_blog.txt", "1862", "Visiting Harlow Mill")
    ]
    assert carter["agreement"] == "agree" and carter["documents"] == 2 and carter["disagreeing_answers"] == []


def test_resources_follow_the_collection(tmp_path, index_dir, embedder):
    """A document added or removed after the server started is listed, or no longer, and read
    (resources registered once at start-up missed both)."""
    import shutil

    from corpus import Document
    from service import Pipeline
    from service.mcp_server import document_uri

    folder = shutil.copytree(index_dir, tmp_path / "index")
    writer = Pipeline(DEFAULT_CORPUS, folder, embedder=embedder, write_embedder=embedder)
    writer.warm_up()

    async def main():
        async with stdio_session(folder) as session:
            before = {r.name for r in (await session.list_resources()).resources}
            removed = sorted(before)[0]
            writer.add_documents([Document("kiln.txt", "Kiln", "The kiln was first fired in 1890.")])
            writer.remove_documents([removed])
            await anyio.sleep(0.6)  # the server looks for another process's commits every 0.5 s
            after = {r.name for r in (await session.list_resources()).resources}
            assert after == (before - {removed}) | {"kiln.txt"}
            body = await session.read_resource(document_uri("kiln.txt"))
            assert body.contents[0].text == "The kiln was first fired in 1890."

    anyio.run(main)
