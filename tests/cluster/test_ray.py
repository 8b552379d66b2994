"""Cluster mode on a real two-node Ray cluster on this machine (the ``ray`` extra).

The nodes listen on 127.0.0.3 and 127.0.0.4 (Ray rewrites 127.0.0.1 to the machine's outward
address, and a second node then hangs); the test stops only what it started, by handle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="cluster mode needs the ray extra: pip install -e '.[ray]'")

from cluster import Layout  # noqa: E402
from cluster.build import build_shards  # noqa: E402
from corpus import load_corpus  # noqa: E402
from index import Embedder, Store  # noqa: E402
from service import Pipeline  # noqa: E402
from tests.conftest import DEFAULT_CORPUS, ROOT, _free_port  # noqa: E402

QUESTIONS = ["When did Kim Jong Un first visit Vietnam?", "Who is the leader of North Korea?",
             "What do Vietnam and North Korea have in common?"]  # fmt: skip
MB = 2**20


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.3", "include_dashboard": False,
                        "object_store_memory": 150 * MB},
    )  # fmt: skip
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.4", object_store_memory=150 * MB)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def built(cluster, tmp_path_factory):
    from service.cli import main

    folder = tmp_path_factory.mktemp("ray") / "index"
    args = [
        "index",
        "--ray",
        cluster.address,
        "--shards",
        "2",
        "--index-dir",
        str(folder),
        "--precision",
        "fp32",
    ]
    assert main([*args, "--quiet"]) == 0
    return folder


def _http(base, path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.fixture(scope="module")
def served(cluster, built):
    """`citeqa serve --ray` in its own process, as a user runs it."""
    port = _free_port()
    env = {**os.environ, "CITEQA_PRECISION": "fp32"}
    cmd = [sys.executable, "-m", "service", "serve", "--ray", cluster.address, "--index-dir", str(built),
           "--host", "127.0.0.1", "--port", str(port), "--replicas", "1"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if _http(base, "/health")[2]["status"] == "ok":
                    break
            except (OSError, ValueError):
                pass
            assert time.monotonic() < deadline, "the cluster service did not start in 180 s"
            time.sleep(1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    p = Pipeline(corpus_dir=DEFAULT_CORPUS, index_dir=tmp_path_factory.mktemp("single"), precision="fp32")
    p.build()
    p.warm_up()
    return p


def test_ray_data_builds_the_shards_a_single_process_builds(built, tmp_path):
    docs = load_corpus(DEFAULT_CORPUS)
    here = tmp_path / "here"
    build_shards(docs, here, 2, precision="fp32")
    for a, b in zip(Layout.load(built).folders, Layout.load(here).folders):
        x, y = Store(a).load(Embedder()), Store(b).load(Embedder())
        assert set(x.entries) == set(y.entries) and x.entries  # both shards hold documents
        assert [(p.passage_id, p.start, p.end) for p in x.passages] == [
            (p.passage_id, p.start, p.end) for p in y.passages
        ]
        for p in x.passages:
            assert x.document(p.doc_id).text[p.start : p.end] == p.text
        ids_x, vx = x.dense.vectors()
        ids_y, vy = y.dense.vectors()
        np.testing.assert_allclose(vx[np.argsort(ids_x)], vy[np.argsort(ids_y)], atol=1e-4)


def test_the_cluster_answers_like_one_machine_and_takes_writes(served, single):
    status, _, health = _http(served, "/health")
    assert (
        health["documents"] == len(single.documents) and health["passages"] == single.current().passage_count
    )
    for q in QUESTIONS:
        status, _, body = _http(served, "/ask", {"question": q})
        assert status == 200, body
        one = single.ask(q)
        assert [(a["text"], a["doc_id"], a["start"], a["end"]) for a in body["answers"]] == [
            (m.answer.text, m.answer.doc_id, m.answer.start, m.answer.end) for m in one.answers
        ], q
        assert [p["passage_id"] for p in body["passages"]] == [h.passage.passage_id for h in one.hits]
        for a in body["answers"]:
            doc = _http(served, f"/documents/{a['doc_id']}")[2]
            assert doc["text"][a["start"] : a["end"]] == a["text"]
    text = "The Zorblat bridge over the Quell river was designed by Ada Quill in 1901."
    status, _, added = _http(
        served, "/documents", {"doc_id": "zorblat.txt", "title": "Zorblat", "text": text}
    )
    assert status == 201 and added["status"] == "added", added
    status, _, body = _http(served, "/ask", {"question": "Who designed the Zorblat bridge?"})
    assert body["answers"][0]["text"] == "Ada Quill" and body["answers"][0]["doc_id"] == "zorblat.txt"
    assert _http(served, "/documents", {"doc_id": "zorblat.txt", "text": text})[0] == 409


def _replicas(shard: str) -> set[str]:
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"#{shard}#" in a["name"]}


def test_a_killed_shard_replica_gives_503_or_full_answers_then_recovers(served, cluster):
    """Every question asked while a shard's only replica is dead and restarted is answered in
    full (Ray Serve holds it for the new replica) or refused with 503 and Retry-After."""
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    before = _replicas("shard-001")
    assert len(before) == 1, ray.util.list_named_actors(all_namespaces=True)
    expected = _http(served, "/ask", {"question": QUESTIONS[0]})[2]["answers"]
    ray.kill(ray.get_actor(next(iter(before)), namespace="serve"), no_restart=True)
    t0, codes, slowest, replaced = time.monotonic(), [], 0.0, None
    while time.monotonic() - t0 < 120:
        t = time.monotonic()
        status, headers, body = _http(served, "/ask", {"question": QUESTIONS[0]})
        slowest = max(slowest, time.monotonic() - t)
        codes.append(status)
        if status == 200:
            assert body["answers"] == expected  # complete: never computed without a shard
        else:
            assert status == 503 and headers.get("Retry-After") == "5", (status, body)
        if replaced is None and _replicas("shard-001") - before:
            replaced = time.monotonic() - t0
        if replaced is not None and status == 200:
            break
        time.sleep(0.2)
    assert replaced is not None and codes[-1] == 200, codes
    print(
        f"\nshard replica killed: {len(codes)} questions, {codes.count(503)} answered 503, "
        f"slowest {slowest:.1f}s, new replica after {replaced:.1f}s"
    )
