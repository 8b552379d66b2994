"""/ask latency over real HTTP: start `citeqa serve`, time start-up, then the seed questions.

    python -m bench.ask_latency [--reader trained] [--requests 200] [--out bench/results/ask-latency.json]

Start-up is measured from process start until /health answers (the saved index is built
first if needed, outside the timing). Requests are sequential (concurrency 1), cycling through
the questions of eval/gold/seed.jsonl after one warm-up pass.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ask_latency")
    ap.add_argument("--reader", default=None, help="reader to serve (default: the service default)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ask-latency.json")
    args = ap.parse_args(argv)

    env = server_env(args.reader)
    build_index(env, if_stale=True)
    proc, url, startup, health = start_server(env)
    try:
        questions = seed_questions()
        for q in questions:  # warm-up: caches, lazy initialisation
            ask_once(url, q, args.top_k)
        lat = [ask_once(url, questions[i % len(questions)], args.top_k) for i in range(args.requests)]
    finally:
        stop_server(proc)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python -m bench.ask_latency " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "reader": health["reader"],
        "startup_s": round(startup, 2),
        "requests": len(lat),
        "concurrency": 1,
        **latency_ms(lat),
        "mean_ms": round(sum(lat) / len(lat) * 1000, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
