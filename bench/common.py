"""What the benchmark programs share: a `citeqa serve` subprocess on loopback, percentiles, questions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from eval.metrics import percentile as pct

ROOT = Path(__file__).resolve().parent.parent
CITEQA = [sys.executable, "-m", "service"]


def out_dir_problem(out_dir: Path) -> str | None:
    """Why results could not be written to ``out_dir`` (checked before a run, not after it), or None."""
    if out_dir.exists() and not out_dir.is_dir():
        return f"error: --out-dir {out_dir} is a file"
    existing = next(p for p in (out_dir.resolve(), *out_dir.resolve().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        return f"error: --out-dir {out_dir}: {existing} cannot be written"
    return None


def write_results(out_dir: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """``<stem>.json`` and ``<stem>.md`` in ``out_dir``; prints the table and where it went."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown)
    print(markdown)
    print(f"written to {out_dir / stem}.json and .md")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency_ms(seconds: list[float], digits: int = 1) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of latencies given in seconds."""
    return {f"p{q}_ms": round(pct(seconds, q) * 1000, digits) for q in (50, 95, 99)}


def server_env(
    reader: str | None = None, index_dir: Path | None = None, precision: str | None = None
) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if precision:
        env["CITEQA_PRECISION"] = precision
    if reader:
        env["CITEQA_READER"] = reader
    if index_dir is not None:
        env["CITEQA_INDEX_DIR"] = str(index_dir)
    return env


def _last_line(output: bytes) -> str:
    """A command's last non-blank line of output: citeqa's one-line error, when it failed."""
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def build_index(env: dict[str, str], if_stale: bool = False) -> None:
    flags = ["--if-stale"] if if_stale else []
    done = subprocess.run([*CITEQA, "index", *flags, "--quiet"], env=env, cwd=ROOT, capture_output=True)
    if done.returncode != 0:  # say what citeqa said (a bad CITEQA_* setting, say), not a traceback of ours
        said = _last_line(done.stderr)
        raise SystemExit("citeqa index failed" + (f": {said}" if said else f" (exit {done.returncode})"))


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float, dict[str, Any]]:
    """Start `citeqa serve`; returns (process, url, seconds until /health answered, /health body)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errors:  # what the server says if it does not start
        proc = subprocess.Popen([*CITEQA, "serve", "--port", str(port)], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=errors)  # fmt: skip
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=1).read())
                return proc, url, time.perf_counter() - t0, health
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 120:
                    proc.kill()
                    errors.seek(0)
                    said = _last_line(errors.read())
                    raise SystemExit("the server did not start" + (f": {said}" if said else "")) from None
                time.sleep(0.05)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def seed_questions() -> list[str]:
    lines = (ROOT / "eval" / "gold" / "seed.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def ask_once(url: str, question: str, top_k: int = 3) -> float:
    """Seconds one /ask takes over HTTP."""
    body = json.dumps({"question": question, "top_k": top_k}).encode()
    req = urllib.request.Request(f"{url}/ask", data=body, headers={"content-type": "application/json"})
    t = time.perf_counter()
    urllib.request.urlopen(req, timeout=120).read()
    return time.perf_counter() - t


def load_clients(
    url: str, questions: list[str], seconds: float, clients: int = 8, stagger: int = 1
) -> tuple[int, float, list[float]]:
    """``clients`` threads asking ``url`` the questions in turn for ``seconds``, client ``k``
    starting at question ``stagger * k``: requests answered, wall seconds, each one's latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def client(k: int) -> None:
        i = stagger * k
        while time.perf_counter() < end:
            dt = ask_once(url, questions[i % len(questions)])
            i += 1
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies), time.perf_counter() - t0, latencies
