"""Cluster mode: indexing on 1 vs 2 Ray nodes, the cost of the fan-out per query, and a shard
replica killed under load.

    python -m bench.cluster [--copies 20] [--requests 100] [--load-seconds 30]

Every node runs on this machine (127.0.0.3, 127.0.0.4, one CPU each), so the figures compare
layouts within one run; they are not a measurement of a real multi-machine cluster. Needs the
ray extra (make install-ray); without it, says so and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    free_port,
    latency_ms,
    seed_questions,
    server_env,
    start_server,
    stop_server,
    write_results,
)
from bench.cpu import describe

MB = 2**20


def _corpus(copies: int) -> list[Any]:
    from corpus import load_corpus

    docs = load_corpus(ROOT / "corpus" / "docs")
    return [replace(d, doc_id=f"copy{i:02d}/{d.doc_id}") for i in range(copies) for d in docs]


def _cluster(nodes: int) -> Any:
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.3", "include_dashboard": False,
                        "object_store_memory": 200 * MB},
    )  # fmt: skip
    for n in range(1, nodes):
        c.add_node(num_cpus=1, node_ip_address=f"127.0.0.{3 + n}", object_store_memory=200 * MB)
    c.wait_for_nodes()
    return c


def _http(url: str, body: Any = None, timeout: float = 60) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, {}, str(exc)


def _latency(url: str, questions: list[str], requests: int) -> dict[str, Any]:
    """p50/p95 of /search (retrieval only: the fan-out) and /ask (retrieval and reading)."""

    def search(q: str) -> int:
        return _http(f"{url}/search?q={urllib.parse.quote(q)}&top_k=5")[0]

    def ask(q: str) -> int:
        return _http(f"{url}/ask", {"question": q})[0]

    out = {}
    for path, call in (("/search", search), ("/ask", ask)):
        for q in questions[:3]:  # warm-up
            call(q)
        times = []
        for i in range(requests):
            t = time.perf_counter()
            status = call(questions[i % len(questions)])
            times.append(time.perf_counter() - t)
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
        out[path] = latency_ms(times)
    return out


def _kill_under_load(
    url: str, address: str, questions: list[str], seconds: float, kill_at: float
) -> dict[str, Any]:
    import ray

    from cluster.serve import APP

    log: list[tuple[float, int, float]] = []
    acknowledged: list[str] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def asker(k: int) -> None:
        i = k
        while not stop.is_set():
            t = time.monotonic()
            status, _, _ = _http(url + "/ask", {"question": questions[i % len(questions)]})
            log.append((t - t0, status, time.monotonic() - t))
            i += 4

    def writer() -> None:
        n = 0
        while not stop.is_set():
            doc_id = f"load/{n:04d}.txt"
            status, _, _ = _http(
                url + "/documents",
                {"doc_id": doc_id, "text": f"Load test note {n}: the gauge read {n} units."},
            )
            if status == 201:
                acknowledged.append(doc_id)
            n += 1
            time.sleep(0.3)

    threads = [threading.Thread(target=asker, args=(k,)) for k in range(4)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    time.sleep(kill_at)
    victims = [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"{APP}#shard-000#" in a["name"]
    ]
    killed_at = time.monotonic() - t0
    ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)
    replaced = None
    while time.monotonic() - t0 < seconds:
        names = {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if f"{APP}#shard-000#" in a["name"]
        }
        if replaced is None and names - set(victims):
            replaced = time.monotonic() - t0
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    status, _, listing = _http(url + "/documents")
    present = {d["doc_id"] for d in listing} if status == 200 else set()
    lost = [d for d in acknowledged if d not in present]
    after = [(t, s, lat) for t, s, lat in log if t >= killed_at]
    first_ok = next(
        (t for t, s, _ in sorted(after) if s == 200 and (replaced is None or t >= replaced)), None
    )
    codes: dict[str, int] = {}
    for _, s, _ in log:
        codes[str(s)] = codes.get(str(s), 0) + 1
    return {
        "seconds": seconds,
        "killed_at_s": round(killed_at, 1),
        "questions": len(log),
        "status_codes": codes,
        "errors_other_than_503": sum(v for k, v in codes.items() if k not in ("200", "503")),
        "slowest_question_s": round(max(lat for _, _, lat in log), 2),
        "new_replica_after_s": round(replaced - killed_at, 1) if replaced else None,
        "first_full_answer_after_kill_s": round(first_ok - killed_at, 1) if first_ok else None,
        "documents_acknowledged": len(acknowledged),
        "documents_lost": len(lost),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cluster")
    ap.add_argument(
        "--copies", type=int, default=20, help="copies of the default corpus to index (default 20)"
    )
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per latency figure")
    ap.add_argument("--load-seconds", type=float, default=30.0)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    if importlib.util.find_spec("ray") is None:
        print("bench.cluster skipped: cluster mode needs the ray extra (make install-ray)")
        return 0
    import ray

    from cluster import serve as cluster_serve
    from cluster.build import build_shards
    from service.settings import Settings

    docs = _corpus(args.copies)
    work = Path(tempfile.mkdtemp(prefix="citeqa-bench-cluster-"))
    result: dict[str, Any] = {
        "cpu": describe(),
        "documents": len(docs),
        "indexing": {},
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        corpus_dir = work / "docs"
        for d in docs:
            (corpus_dir / d.doc_id).parent.mkdir(parents=True, exist_ok=True)
            (corpus_dir / d.doc_id).write_text(d.text, encoding="utf-8")
        report = build_shards(docs, work / "here", 2)
        result["passages"] = report.passages
        result["indexing"]["one process, no Ray"] = {"seconds": round(report.seconds, 1), "workers": 1}
        c = None
        for nodes in (1, 2):
            c = _cluster(nodes)
            report = build_shards(docs, work / f"ray{nodes}", 2, ray_address=c.address)
            result["indexing"][f"Ray, {nodes} node{'s' if nodes > 1 else ''}"] = {
                "seconds": round(report.seconds, 1), "workers": report.workers,
            }  # fmt: skip
            if nodes == 1:
                c.shutdown()
        for row in result["indexing"].values():
            row["passages_per_s"] = round(result["passages"] / row["seconds"], 1)
        assert c is not None
        questions = seed_questions()
        latency: dict[str, Any] = {}
        # one process, one collection; then one process, two shards (no Ray)
        single = work / "single"
        for name, index_dir in (
            ("one process, one collection", single),
            ("one process, 2 shards", work / "here"),
        ):
            env = {**server_env(index_dir=index_dir), "CITEQA_CORPUS_DIR": str(corpus_dir)}
            if index_dir == single:
                import subprocess

                subprocess.run(
                    [sys.executable, "-m", "service", "index", "--quiet"], env=env, cwd=ROOT, check=True
                )
            proc, url, _, _ = start_server(env)
            try:
                latency[name] = _latency(url, questions, args.requests)
            finally:
                stop_server(proc)
        port = free_port()
        settings = Settings(index_dir=work / "ray2", corpus_dir=corpus_dir)
        cluster_serve.start(settings, c.address, replicas=1, port=port)
        url = f"http://127.0.0.1:{port}"
        try:
            latency["Ray Serve, 2 nodes, 2 shards"] = _latency(url, questions, args.requests)
            result["kill_under_load"] = _kill_under_load(url, c.address, questions, args.load_seconds, 10.0)
        finally:
            cluster_serve.stop()
            c.shutdown()
        result["latency"] = latency
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    write_results(args.out_dir, f"cluster-{result['date']}", result, _markdown(result))
    return 0


def _markdown(r: dict[str, Any]) -> str:
    cpu = r["cpu"]
    lines = [
        f"# Cluster mode ({r['date']})",
        "",
        f"CPU: {cpu['model']}, {cpu['cpus']} cores, {' '.join(cpu['instruction_sets'])}. Every node runs on "
        "this machine with one CPU; compare rows with each other, not with a real cluster.",
        "",
        f"## Indexing {r['documents']} documents ({r['passages']} passages) into 2 shards",
        "",
        "| how | embedding workers | seconds | passages/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in r["indexing"].items():
        lines.append(f"| {name} | {row['workers']} | {row['seconds']} | {row['passages_per_s']} |")
    lines += [
        "",
        "## Latency per query (sequential, over HTTP)",
        "",
        "| layout | /search p50 | /search p95 | /ask p50 | /ask p95 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in r["latency"].items():
        s, a = row["/search"], row["/ask"]
        lines.append(
            f"| {name} | {s['p50_ms']} ms | {s['p95_ms']} ms | {a['p50_ms']} ms | {a['p95_ms']} ms |"
        )
    k = r["kill_under_load"]
    lines += [
        "",
        f"## A shard replica killed under load ({k['seconds']:.0f} s: 4 clients asking, "
        "1 adding a document every 0.3 s)",
        "",
        f"- questions: {k['questions']}, status codes {k['status_codes']}; "
        f"errors other than 503: {k['errors_other_than_503']}",
        f"- slowest question: {k['slowest_question_s']} s; new replica {k['new_replica_after_s']} s "
        f"after the kill; first full answer after it: {k['first_full_answer_after_kill_s']} s",
        f"- documents acknowledged: {k['documents_acknowledged']}, lost: {k['documents_lost']}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
