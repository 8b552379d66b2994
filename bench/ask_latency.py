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
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ask_latency")
    ap.add_argument("--reader", default=None, help="reader to serve (default: the service default)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ask-latency.json")
    args = ap.parse_args(argv)

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if args.reader:
        env["CITEQA_READER"] = args.reader
    citeqa = [sys.executable, "-m", "service"]
    subprocess.run(
        [*citeqa, "index", "--if-stale", "--quiet"], check=True, env=env, cwd=ROOT, capture_output=True
    )
    port = _port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*citeqa, "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=1).read())
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 120:
                    raise SystemExit("server did not start") from None
                time.sleep(0.05)
        startup = time.perf_counter() - t0
        seed = (ROOT / "eval" / "gold" / "seed.jsonl").read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line)["question"] for line in seed if line.strip()]

        def ask(q: str) -> float:
            body = json.dumps({"question": q, "top_k": args.top_k}).encode()
            req = urllib.request.Request(
                f"{url}/ask", data=body, headers={"content-type": "application/json"}
            )
            t = time.perf_counter()
            urllib.request.urlopen(req, timeout=60).read()
            return (time.perf_counter() - t) * 1000

        for q in questions:  # warm-up: caches, lazy initialisation
            ask(q)
        lat = [ask(questions[i % len(questions)]) for i in range(args.requests)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python -m bench.ask_latency " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "reader": health["reader"],
        "startup_s": round(startup, 2),
        "requests": len(lat),
        "concurrency": 1,
        "p50_ms": round(_pct(lat, 50), 1),
        "p95_ms": round(_pct(lat, 95), 1),
        "p99_ms": round(_pct(lat, 99), 1),
        "mean_ms": round(sum(lat) / len(lat), 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
