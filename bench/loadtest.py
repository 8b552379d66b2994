"""Load test: concurrent clients ask questions while another client adds and removes documents.

    python -m bench.loadtest [--clients 8] [--seconds 60] [--max-requests 20000] [--reader NAME]

Everything runs on loopback against a real `citeqa serve` over a fresh copy of the default
collection (built in a temporary folder, never the project's own index). Each answer is checked
against the offset invariant, and at the end the collection must hold exactly the documents
the writer's successful calls say it should. Writes `bench/results/loadtest-<date>.json` and
prints a Markdown table. Exits 1 on any error or lost document.
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

from bench.common import ROOT, build_index, latency_ms, seed_questions, server_env, start_server, stop_server


def _doc(n: int) -> str:
    return (
        f"# Field note {n}\n\nField note {n} records that the heron colony at Lake {n} had "
        f"{n % 50 + 3} nests this spring. The warden of Lake {n} is called Warden{n}."
    )


def _summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {
        **latency_ms(latencies),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    work = Path(tempfile.mkdtemp(prefix="citeqa-loadtest-"))
    env = server_env(args.reader, work / "index")
    print("building a fresh index of the default corpus…", file=sys.stderr)
    build_index(env)
    proc, url, _, _ = start_server(env)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            texts = {
                d["doc_id"]: c.get(f"/documents/{d['doc_id']}").json()["text"]
                for d in c.get("/documents").json()
            }
        expected = set(texts)
        questions = seed_questions()
        lock = threading.Lock()
        errors: list[str] = []
        asks: list[float] = []
        writes: list[float] = []
        counts = {"added": 0, "removed": 0, "requests": 0}
        stop = threading.Event()
        started = time.monotonic()
        end = started + args.seconds

        def over() -> bool:
            return stop.is_set() or time.monotonic() >= end or counts["requests"] >= args.max_requests

        def client(k: int) -> None:
            i = k
            with httpx.Client(base_url=url, timeout=60) as c:
                while not over():
                    q = questions[i % len(questions)]
                    i += 1
                    t0 = time.perf_counter()
                    try:
                        r = c.post("/ask", json={"question": q})
                    except httpx.HTTPError as exc:
                        errors.append(f"ask: {exc!r}")
                        continue
                    dt = time.perf_counter() - t0
                    with lock:
                        counts["requests"] += 1
                        asks.append(dt)
                        if r.status_code != 200:
                            errors.append(f"ask {r.status_code}: {r.text[:200]}")
                            continue
                        body = r.json()
                        for item in body["answers"] + body["passages"]:
                            text = texts.get(item["doc_id"])
                            if text is None or text[item["start"] : item["end"]] != item["text"]:
                                errors.append(f"offset invariant broken for {item['doc_id']}")

        def writer() -> None:
            n = 0
            with httpx.Client(base_url=url, timeout=120) as c:
                while not over():
                    n += 1
                    doc_id = f"notes/{n}.md"
                    with lock:
                        texts[doc_id] = _doc(n)
                    t0 = time.perf_counter()
                    r = c.post("/documents", json={"doc_id": doc_id, "text": _doc(n)})
                    writes.append(time.perf_counter() - t0)
                    if r.status_code != 201:
                        errors.append(f"add {r.status_code}: {r.text[:200]}")
                        continue
                    with lock:
                        expected.add(doc_id)
                        counts["added"] += 1
                    if n % 3 == 0:  # remove every third note again, two notes later
                        old = f"notes/{n - 2}.md"
                        t0 = time.perf_counter()
                        r = c.delete(f"/documents/{old}")
                        writes.append(time.perf_counter() - t0)
                        if r.status_code != 200:
                            errors.append(f"remove {r.status_code}: {r.text[:200]}")
                            continue
                        with lock:
                            expected.discard(old)
                            counts["removed"] += 1
                    time.sleep(args.write_pause)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        threads.append(threading.Thread(target=writer))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started

        with httpx.Client(base_url=url, timeout=60) as c:
            actual = {d["doc_id"] for d in c.get("/documents").json()}
            lost = sorted(expected - actual)
            extra = sorted(actual - expected)
            # every surviving note can still be found by a question about it
            notes = sorted((d for d in expected if d.startswith("notes/")), key=lambda d: int(d[6:-3]))
            unfound = []
            for doc_id in notes[-5:]:
                n = int(doc_id[6:-3])
                body = c.post("/ask", json={"question": f"Who is the warden of Lake {n}?"}).json()
                if not any(a["doc_id"] == doc_id for a in body["answers"]):
                    unfound.append(doc_id)
        return {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": "python -m bench.loadtest " + " ".join(sys.argv[1:]),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "system": platform.platform(),
            },
            "clients": args.clients,
            "seconds": round(elapsed, 1),
            "ask": {"requests": len(asks), "requests_per_s": round(len(asks) / elapsed, 1), **_summary(asks)},
            "writes": {
                "count": len(writes),
                **_summary(writes),
                "added": counts["added"],
                "removed": counts["removed"],
            },
            "errors": len(errors),
            "error_samples": errors[:10],
            "lost_documents": lost,
            "unexpected_documents": extra,
            "notes_not_found_by_a_question": unfound,
        }
    finally:
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)


def table(r: dict[str, Any]) -> str:
    a, w = r["ask"], r["writes"]
    return "\n".join([
        f"Load test: {r['clients']} clients asking for {r['seconds']} s, one adding and removing documents",
        "",
        "| what | count | per s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| /ask | {a['requests']} | {a['requests_per_s']} | {a.get('p50_ms')} | {a.get('p95_ms')} | "
        f"{a.get('p99_ms')} | {a.get('max_ms')} |",
        f"| add/remove | {w['count']} ({w['added']} added, {w['removed']} removed) | | {w.get('p50_ms')} | "
        f"{w.get('p95_ms')} | {w.get('p99_ms')} | {w.get('max_ms')} |",
        "",
        f"errors: {r['errors']} · lost documents: {len(r['lost_documents'])} · "
        f"unexpected documents: {len(r['unexpected_documents'])} · "
        f"notes not found: {len(r['notes_not_found_by_a_question'])}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients asking questions")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    ap.add_argument("--max-requests", type=int, default=20_000, help="stop after this many questions")
    ap.add_argument("--write-pause", type=float, default=0.5, help="seconds between the writer's changes")
    ap.add_argument("--reader", default=None, help="reader to serve (default: the service default)")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/loadtest-<date>.json")
    args = ap.parse_args(argv)
    result = run(args)
    out = args.out or ROOT / "bench" / "results" / f"loadtest-{time.strftime('%Y-%m-%d')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten to {out}")
    bad = result["errors"] or result["lost_documents"] or result["unexpected_documents"]
    return 1 if bad or result["notes_not_found_by_a_question"] else 0


if __name__ == "__main__":
    sys.exit(main())
