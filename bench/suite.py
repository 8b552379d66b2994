"""The benchmark suite: ``make bench`` (``python -m bench.suite``).

Measures on this machine, in one run so that variants can be compared as ratios:

- indexing: total time and passages/s (and embedding alone) for the default corpus, and for the SQuAD
  paragraphs under ``../shared/data/squad/`` when that file exists (skipped otherwise);
- the server: start-up with a saved index until /health answers, /ask latency p50/p95/p99 over real
  HTTP on loopback at concurrency 1 and 8 with requests/s, and the server's peak RSS;
- retrieval only, on a synthetic collection (``--synthetic N`` vectors, default 1,000,000, 384-d,
  clustered Gaussian data standing in for embeddings; no text), for exact search (1 and 2 threads)
  and the IVF index the service switches to above 100,000 passages, at its own ``nprobe`` and others:
  latency per query, recall@10 against exact search, and index memory.

Indexing and the server run once per model precision (``--precisions``, default ``fp32`` and
``auto``), so the speed-up of bfloat16 reads as a ratio measured in the same run.

Writes ``bench/results/<date>.json`` and ``bench/results/<date>.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    ROOT,
    ask_once,
    build_index,
    latency_ms,
    load_clients,
    seed_questions,
    server_env,
    start_server,
    stop_server,
    write_results,
)
from bench.cpu import describe

SQUAD = ROOT.parent / "shared" / "data" / "squad" / "squad-v1.1-dev-36articles.json"


def bench_indexing(label: str, documents: list[Any], embedder: Any, precision: str) -> dict[str, Any]:
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
        "precision": f"{precision} ({embedder.backend})",
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


def bench_server(
    requests: int,
    seconds_c8: float,
    reader: str | None,
    precision: str,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="citeqa-bench-"))
    env = {**server_env(reader, work / "index", precision), **(extra_env or {})}
    build_index(env)
    proc, url, startup, health = start_server(env)
    try:
        questions = seed_questions()
        for q in questions:  # warm-up
            ask_once(url, q)
        c1 = [ask_once(url, questions[i % len(questions)]) for i in range(requests)]
        _, wall8, c8 = load_clients(url, questions, seconds_c8)
        rss = _peak_rss_mb(proc.pid)
    finally:
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "precision": precision,
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
    """``n`` unit vectors around 1,000 random centres (embeddings cluster; uniform noise would not),
    and 200 queries drawn afresh from the same mixture (not copies of stored vectors, which would
    make every nearest neighbour trivially close)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, d)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        v = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, d)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    x = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 100_000):
        x[lo : min(n, lo + 100_000)] = draw(min(n, lo + 100_000) - lo)
    return x, draw(200)


def bench_synthetic(n: int, d: int = 384) -> list[dict[str, Any]]:
    import faiss

    from index.dense import FaissIndex, ivf_lists, ivf_probes

    x, queries = synthetic_vectors(n, d)
    rows = []

    def timed_search(search: Any, k: int = 10) -> tuple[list[float], np.ndarray]:
        lat, ids = [], []
        for q in queries:
            t = time.perf_counter()
            _, i = search(q[None, :], k)
            lat.append(time.perf_counter() - t)
            ids.append(i[0])
        return lat, np.array(ids)

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    build = time.perf_counter() - t0
    truth = np.zeros((0, 10), dtype=np.int64)
    for threads in (1, os.cpu_count() or 1):
        faiss.omp_set_num_threads(threads)
        lat, found = timed_search(flat.search)
        truth = found if not len(truth) else truth
        name = f"IndexFlatIP (exact), {threads} thread(s)"
        rows.append({"index": name, "vectors": n, "build_s": round(build, 1),
                     **latency_ms(lat), "recall@10": 1.0, "memory_mb": round(n * d * 4 / 2**20)})  # fmt: skip
    del flat
    nlist = ivf_lists(n)
    t0 = time.perf_counter()
    ivf = FaissIndex.ivf(np.arange(n, dtype=np.int64), x)  # what the service builds above 100k passages
    build = time.perf_counter() - t0
    inner: Any = ivf._index
    own = ivf_probes(nlist)
    for nprobe in sorted({8, 32, own, 128}):
        inner.nprobe = nprobe
        lat, found = timed_search(ivf.search)  # one thread, as when serving
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        name = f"IndexIVFFlat nlist={nlist} nprobe={nprobe}" + (" (service default)" if nprobe == own else "")
        memory = round((n * d * 4 + n * 8 + nlist * d * 4) / 2**20)
        rows.append({"index": name, "vectors": n, "build_s": round(build, 1), **latency_ms(lat),
                     "recall@10": round(float(recall), 3), "memory_mb": memory})  # fmt: skip
    return rows


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [f"# Benchmarks {r['date']}", "", f"`{r['command']}` on {m['cpus']} CPUs ({m['model']}; "
           f"{', '.join(m['instruction_sets'])}), Python {m['python']}.", "", "## Indexing", "",
           "| corpus | precision | documents | passages | index s | passages/s | embedding passages/s |",
           "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for i in r["indexing"]:
        out.append(f"| {i['corpus']} | {i['precision']} | {i['documents']} | {i['passages']} | "
                   f"{i['index_s']} | {i['passages_per_s']} | {i['embedding_passages_per_s']} |")  # fmt: skip
    out += ["", f"## Server (reader: {r['server'][0]['reader']}, seed corpus, /ask over HTTP)", "",
            "| precision | start-up s | peak RSS MB | concurrency | requests | p50 ms | p95 ms | p99 ms "
            "| requests/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for s in r["server"]:
        for c in ("concurrency_1", "concurrency_8"):
            x = s[c]
            out.append(f"| {s['precision']} | {s['startup_s']} | {s['peak_rss_mb']} | {c.split('_')[1]} | "
                       f"{x['requests']} | {x['p50_ms']} | {x['p95_ms']} | {x['p99_ms']} | "
                       f"{x['requests_per_s']} |")  # fmt: skip
    out += ["", "## Retrieval only, synthetic vectors (clustered Gaussian, 384-d, no text)", "",
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
    ap.add_argument("--precisions", default="fp32,auto", help="model precisions to compare, comma-separated")
    ap.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD JSON for the larger indexing run")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from corpus import load_corpus
    from index import Embedder

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    corpora = [("default (corpus/docs)", load_corpus(ROOT / "corpus" / "docs"))]
    if args.squad.exists():
        from eval.gold import load_squad
        from eval.runner import squad_documents

        corpora.append((f"SQuAD paragraphs ({args.squad.name})", squad_documents(load_squad(args.squad))))
    else:
        print(f"skipping the larger indexing run: {args.squad} not found", file=sys.stderr)
    indexing = []
    for precision in precisions:
        embedder = Embedder(precision=precision)
        embedder.warm_up()
        indexing += [bench_indexing(label, docs, embedder, precision) for label, docs in corpora]
    print("indexing done; measuring the server…", file=sys.stderr)
    server = [bench_server(args.requests, args.seconds_c8, args.reader, p) for p in precisions]
    print("server done; measuring retrieval on synthetic vectors…", file=sys.stderr)
    synthetic = bench_synthetic(args.synthetic) if args.synthetic else []
    date = time.strftime("%Y-%m-%d")
    result = {
        "date": date,
        "command": "python -m bench.suite " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": describe(),
        "indexing": indexing,
        "server": server,
        "synthetic": synthetic,
    }
    write_results(args.out_dir, date, result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
