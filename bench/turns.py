"""Servers side by side, in turns: ``python -m bench.turns --variant NAME:KEY=VALUE,... (twice or more)``.

This machine's speed drifts, between runs and within one, by as much as the changes worth
measuring (README, Performance), so two settings measured one after the other differ by the
drift as well. Here every variant gets a server of its own, all running at once, each on an
index it built for itself, and 8 clients ask each in turn for ``--turn-s`` seconds, round after
round, the order reversed every other round; after each turn, sequential requests time
concurrency 1. A variant's figures are pooled over all its turns, and what to read are the
ratios to the first variant. Only the server under load works; the others wait, idle.

    python -m bench.turns --kind avx2 --variant sure:CITEQA_READER_SURE=0.5 \\
        --variant all:CITEQA_READER_SURE=0 --tag sure

Writes ``bench/results/turns-<date>[-<tag>].json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    ask_once,
    build_index,
    latency_ms,
    load_clients,
    out_dir_problem,
    seed_questions,
    server_env,
    start_server,
    stop_server,
    write_results,
)
from bench.cpu import AVX2_ENV, KINDS, describe

CLIENTS = 8
_NAME = re.compile(r"[\w.-]+")
_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")


@dataclass
class Variant:
    """A name and the environment its server runs with, and what its turns measured."""

    name: str
    env: dict[str, str]
    turns: list[tuple[int, float]] = field(default_factory=list)  # (requests, seconds) under load
    c8: list[float] = field(default_factory=list)  # seconds per request under load
    c1: list[float] = field(default_factory=list)  # seconds per sequential request


def parse_variant(text: str) -> Variant:
    """``NAME:KEY=VALUE,KEY=VALUE`` (no settings after the colon: the defaults)."""
    name, colon, rest = text.partition(":")
    if not colon or not _NAME.fullmatch(name):
        raise ValueError(
            f"--variant {text!r}: write NAME:KEY=VALUE,... (NAME of letters, digits, '.', '-', '_')"
        )
    env: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise ValueError(
                f"--variant {text!r}: {item!r} is not KEY=VALUE with an upper-case variable name"
            )
        env[key] = value
    return Variant(name, env)


def _latency(seconds: list[float]) -> dict[str, float | None]:
    return dict(latency_ms(seconds)) if seconds else {"p50_ms": None, "p95_ms": None, "p99_ms": None}


def summary(variants: list[Variant]) -> list[dict[str, Any]]:
    """Each variant's pooled figures, and its requests per second as a ratio to the first's."""
    rows: list[dict[str, Any]] = []
    for v in variants:
        requests, seconds = sum(n for n, _ in v.turns), sum(s for _, s in v.turns)
        rows.append({
            "variant": v.name,
            "settings": " ".join(f"{k}={x}" for k, x in v.env.items()) or "(defaults)",
            "c8_requests_per_s": round(requests / seconds, 2) if seconds else None,
            "c8_per_turn": [round(n / s, 2) for n, s in v.turns],
            **{f"c8_{k}": x for k, x in _latency(v.c8).items()},
            **{f"c1_{k}": x for k, x in _latency(v.c1).items()},
            "c8_requests": requests,
            "c1_requests": len(v.c1),
        })  # fmt: skip
    base = rows[0]["c8_requests_per_s"]
    for r in rows:
        r["c8_ratio"] = round(r["c8_requests_per_s"] / base, 3) if base and r["c8_requests_per_s"] else None
    return rows


def run(variants: list[Variant], kind: str, rounds: int, turn_s: float, c1_requests: int) -> dict[str, Any]:
    caps = AVX2_ENV if kind == "avx2" else {}
    work = Path(tempfile.mkdtemp(prefix="citeqa-turns-"))
    servers: list[Any] = []
    try:
        urls = []
        for v in variants:
            env = {**server_env(index_dir=work / v.name), **caps, **v.env}
            print(f"[{v.name}] indexing and starting…", file=sys.stderr, flush=True)
            build_index(env)
            proc, url, _, _ = start_server(env)
            servers.append(proc)
            urls.append(url)
        questions = seed_questions()
        for url in urls:  # warm-up
            for q in questions[:20]:
                ask_once(url, q)
        for r in range(rounds):
            order = list(range(len(variants)))
            for i in order if r % 2 == 0 else order[::-1]:
                v, url = variants[i], urls[i]
                n, seconds, latencies = load_clients(url, questions, turn_s, CLIENTS, stagger=7)
                v.turns.append((n, seconds))
                v.c8 += latencies
                start = (r * c1_requests) % len(questions)
                v.c1 += [ask_once(url, questions[(start + j) % len(questions)]) for j in range(c1_requests)]
                print(
                    f"round {r + 1}/{rounds} {v.name}: {n / seconds:.2f} req/s", file=sys.stderr, flush=True
                )
    finally:
        for proc in servers:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    return {"rows": summary(variants)}


COLUMNS = (
    ("variant", "variant"), ("settings", "settings"), ("c8_requests_per_s", "8 clients: req/s"),
    ("c8_ratio", "ratio"), ("c8_p50_ms", "p50 ms"), ("c8_p99_ms", "p99 ms"),
    ("c1_p50_ms", "concurrency 1: p50 ms"), ("c1_p99_ms", "p99 ms"),
    ("c8_requests", "requests, 8 clients"), ("c1_requests", "requests, 1"),
)  # fmt: skip


def table(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    caps = ", ".join(f"{k}={v}" for k, v in AVX2_ENV.items())
    what = (
        f"{cpu['kind']}: {cpu['model']}, {cpu['cpus']} CPUs; instruction sets: "
        f"{', '.join(cpu['instruction_sets']) or 'none of note'}"
        + (f"; capped at AVX2 by {caps}" if result["kind"] == "avx2" else "")
        + f". {result['rounds']} rounds of {result['turn_s']:g} s under {CLIENTS} clients per variant,"
        f" in turns; concurrency 1: {result['c1_requests']} sequential requests after each turn."
        " Seed questions."
    )
    out = [f"# Variants in turns, {result['date']}", "", f"`{result['command']}`", "", what, ""]
    out.append("| " + " | ".join(title for _, title in COLUMNS) + " |")
    out.append("|---|---|" + "---:|" * (len(COLUMNS) - 2))
    out += ["| " + " | ".join(str(r[key]) for key, _ in COLUMNS) + " |" for r in result["rows"]]
    out += ["", "Requests per second under 8 clients, turn by turn:", ""]
    for r in result["rows"]:
        if r["c8_per_turn"]:
            turns = ", ".join(str(x) for x in r["c8_per_turn"])
            out.append(f"- {r['variant']}: {turns} (median {statistics.median(r['c8_per_turn']):.2f})")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.turns", description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,... (twice or more)")
    ap.add_argument("--kind", default="native", help="CPU kind: native, or avx2 (this CPU capped at AVX2)")
    ap.add_argument("--rounds", type=int, default=8, help="turns per variant")
    ap.add_argument("--turn-s", type=float, default=10.0, help="seconds of 8 clients per turn")
    ap.add_argument("--c1-requests", type=int, default=15, help="sequential requests after each turn")
    ap.add_argument("--tag", default="", help="added to the results' file name: turns-<date>-<tag>")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    args = ap.parse_args(argv)
    try:
        variants = [parse_variant(v) for v in args.variant]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = []
    if len(variants) < 2:
        problems.append("give --variant twice or more: the point is to compare them")
    if len({v.name for v in variants}) < len(variants):
        problems.append("each --variant needs a name of its own")
    if args.kind not in KINDS:
        problems.append(f"--kind {args.kind!r}: choose from {', '.join(KINDS)}")
    if args.rounds < 1 or not 0 < args.turn_s < math.inf or args.c1_requests < 0:
        problems.append("--rounds must be at least 1, --turn-s a number above 0 and --c1-requests at least 0")
    if out := out_dir_problem(args.out_dir):
        problems.append(out.removeprefix("error: "))
    if args.tag and not _NAME.fullmatch(args.tag):
        problems.append(f"--tag {args.tag!r}: use letters, digits, '.', '-' and '_' only")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    if args.kind == "avx2":
        os.environ.update(AVX2_ENV)  # so that describe() says what the servers run as
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m bench.turns " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": describe(),
        "kind": args.kind,
        "rounds": args.rounds,
        "turn_s": args.turn_s,
        "c1_requests": args.c1_requests,
        **run(variants, args.kind, args.rounds, args.turn_s, args.c1_requests),
    }
    name = f"turns-{result['date']}" + (f"-{args.tag}" if args.tag else "")
    write_results(args.out_dir, name, result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
