"""The benchmark suite: ``make bench`` (``python -m bench.suite``).

Measures on this machine, in one run so that variants can be compared as ratios:

- indexing: total time and passages/s (and embedding alone) for the default corpus, and for the SQuAD
  paragraphs under ``../shared/data/squad/`` when that file exists (skipped otherwise);
- the server: start-up with a saved index until /health answers, /ask latency p50/p95/p99 over real
  HTTP on loopback at concurrency 1 and 8 with requests/s, and the server's peak RSS;
- retrieval only, on a synthetic collection (``--synthetic N`` vectors, default 1,000,000, 384-d,
  clustered Gaussian data standing in for embeddings; no text), for exact search and IVF at several
  ``nprobe``: latency per query with one thread, recall@10 against exact search, and index memory.

Writes ``bench/results/<date>.json`` and ``bench/results/<date>.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    ROOT,
    ask_once,
    build_index,
    latency_ms,
    seed_questions,
    server_env,
    start_server,
    stop_server,
)

SQUAD = ROOT.parent / "shared" / "data" / "squad" / "squad-v1.1-dev-36articles.json"


def bench_indexing(label: str, documents: list[Any], embedder: Any) -> dict[str, Any]:
    from corpus import chunk_corpus
    from index import build_index

    t0 = time.perf_counter()
    index = build_index(documents, embedder)
    total = time.perf_counter() - t0
    texts = [p.search_text for p in chunk_corpus(documents)]
    t0 = time.perf_counter()
    embedder.encode(texts)
    embed = time.perf_counter() - t0
    n = len(index.by_key)
    return {
        "corpus": label,
        "documents": len(documents),
        "passages": n,
        "index_s": round(total, 2),
        "passages_per_s": round(n / total, 1),
        "embedding_passages_per_s": round(len(texts) / embed, 1),
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def bench_server(requests: int, seconds_c8: float, reader: str | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="citeqa-bench-"))
    env = server_env(reader, work / "index")
    build_index(env)
    proc, url, startup, health = start_server(env)
    try:
        questions = seed_questions()
        for q in questions:  # warm-up
            ask_once(url, q)
        c1 = [ask_once(url, questions[i % len(questions)]) for i in range(requests)]
        c8: list[float] = []
        lock = threading.Lock()
        end = time.perf_counter() + seconds_c8

        def client(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                dt = ask_once(url, questions[i % len(questions)])
                i += 1
                with lock:
                    c8.append(dt)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        t8 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall8 = time.perf_counter() - t8
        rss = _peak_rss_mb(proc.pid)
    finally:
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "reader": health["reader"],
        "startup_s": round(startup, 2),
        "concurrency_1": {
            "requests": len(c1),
            **latency_ms(c1),
            "requests_per_s": round(len(c1) / sum(c1), 1),
        },
        "concurrency_8": {
            "requests": len(c8),
            **latency_ms(c8),
            "requests_per_s": round(len(c8) / wall8, 1),
        },
        "peak_rss_mb": rss,
    }


def synthetic_vectors(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around 4,096 random centres (embeddings cluster; uniform noise would not),
    and 200 queries made by perturbing stored vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4096, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x[lo:hi] = centres[rng.integers(0, len(centres), hi - lo)]
        x[lo:hi] += 0.6 * rng.standard_normal((hi - lo, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(n, 200, replace=False)] + 0.3 * rng.standard_normal((200, d)).astype(
        np.float32
    ) / np.sqrt(d)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q


def bench_synthetic(n: int, d: int = 384) -> list[dict[str, Any]]:
    import faiss

    faiss.omp_set_num_threads(1)  # one thread per request, as when serving
    x, queries = synthetic_vectors(n, d)
    rows = []

    def timed_search(index: Any, k: int = 10) -> tuple[list[float], np.ndarray]:
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter()
            _, i = index.search(q[None, :], k)
            lat.append(time.perf_counter() - t)
            ids.append(i[0])
        return lat, np.array(ids)

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    build = time.perf_counter() - t0
    lat, truth = timed_search(flat)
    rows.append({"index": "IndexFlatIP (exact)", "vectors": n, "build_s": round(build, 1), **latency_ms(lat),
                 "recall@10": 1.0, "memory_mb": round(n * d * 4 / 2**20)})  # fmt: skip
    del flat
    nlist = 4096 if n >= 200_000 else max(16, n // 64)
    t0 = time.perf_counter()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building may use every core
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = x[np.random.default_rng(1).choice(n, min(n, 64 * nlist), replace=False)]
    ivf.train(sample)
    ivf.add(x)
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    for nprobe in (8, 32, 64):
        ivf.nprobe = nprobe
        lat, found = timed_search(ivf)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        name = f"IndexIVFFlat nlist={nlist} nprobe={nprobe}"
        memory = round((n * d * 4 + n * 8 + nlist * d * 4) / 2**20)
        rows.append({"index": name, "vectors": n, "build_s": round(build, 1), **latency_ms(lat),
                     "recall@10": round(float(recall), 3), "memory_mb": memory})  # fmt: skip
    return rows


def table(r: dict[str, Any]) -> str:
    out = [f"# Benchmarks {r['date']}", "", f"`{r['command']}` on {r['machine']['cpus']} CPUs "
           f"({r['machine']['processor']}), Python {r['machine']['python']}.", "", "## Indexing", "",
           "| corpus | documents | passages | index s | passages/s | embedding passages/s |",
           "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for i in r["indexing"]:
        out.append(f"| {i['corpus']} | {i['documents']} | {i['passages']} | {i['index_s']} | "
                   f"{i['passages_per_s']} | {i['embedding_passages_per_s']} |")  # fmt: skip
    s = r["server"]
    out += ["", f"## Server (reader: {s['reader']}, seed corpus)", "",
            f"Start-up with a saved index until /health answers: **{s['startup_s']} s**. "
            f"Peak RSS: **{s['peak_rss_mb']} MB**.", "",
            "| /ask over HTTP | requests | p50 ms | p95 ms | p99 ms | requests/s |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for c in ("concurrency_1", "concurrency_8"):
        x = s[c]
        out.append(f"| {c.replace('_', ' ')} | {x['requests']} | {x['p50_ms']} | {x['p95_ms']} | "
                   f"{x['p99_ms']} | {x['requests_per_s']} |")  # fmt: skip
    out += ["", "## Retrieval only, synthetic vectors (clustered Gaussian, 384-d, no text; 1 thread)", "",
            "| index | vectors | build s | p50 ms | p95 ms | p99 ms | recall@10 | memory MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for x in r["synthetic"]:
        out.append(f"| {x['index']} | {x['vectors']:,} | {x['build_s']} | {x['p50_ms']} | {x['p95_ms']} | "
                   f"{x['p99_ms']} | {x['recall@10']} | {x['memory_mb']} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200, help="sequential /ask requests (concurrency 1)")
    ap.add_argument("--seconds-c8", type=float, default=30.0, help="how long 8 clients ask")
    ap.add_argument(
        "--synthetic", type=int, default=1_000_000, help="vectors in the synthetic index (0: skip)"
    )
    ap.add_argument("--reader", default=None, help="reader to serve (default: the service default)")
    ap.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD JSON for the larger indexing run")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from corpus import load_corpus
    from index import Embedder

    embedder = Embedder()
    embedder.warm_up()
    indexing = [bench_indexing("default (corpus/docs)", load_corpus(ROOT / "corpus" / "docs"), embedder)]
    if args.squad.exists():
        from eval.gold import load_squad
        from eval.runner import squad_documents

        docs = squad_documents(load_squad(args.squad))
        indexing.append(bench_indexing(f"SQuAD paragraphs ({args.squad.name})", docs, embedder))
    else:
        print(f"skipping the larger indexing run: {args.squad} not found", file=sys.stderr)
    print("indexing done; measuring the server…", file=sys.stderr)
    server = bench_server(args.requests, args.seconds_c8, args.reader)
    print("server done; measuring retrieval on synthetic vectors…", file=sys.stderr)
    synthetic = bench_synthetic(args.synthetic) if args.synthetic else []
    date = time.strftime("%Y-%m-%d")
    result = {
        "date": date,
        "command": "python -m bench.suite " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },  # fmt: skip
        "indexing": indexing,
        "server": server,
        "synthetic": synthetic,
    }
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{date}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = table(result)
    (out / f"{date}.md").write_text(md)
    print(md)
    print(f"written to {out / (date + '.json')} and {out / (date + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
