"""Speed and accuracy of each way to run the models, per kind of CPU: ``python -m bench.variants``.

For each CPU kind (``native``, and ``avx2``: this CPU capped at AVX2 by ``bench.cpu.AVX2_ENV``)
and each variant (model precision, and whether the reader reads whole passages or focuses on the
sentences that match the question, ``CITEQA_READER_FOCUS``; with ``--sure``, also how sure a
document's first passage must be for its further ones to go unread, ``CITEQA_READER_SURE``),
measured in one run:

- indexing: passages/s for the default corpus, per precision;
- where one /ask goes, in process over the seed questions (medians): query embedding, search
  (the embedding included), the reader, and the tokens it read;
- the server over real HTTP on loopback: start-up with a saved index, /ask p50/p99 at
  concurrency 1, requests/s and p99 with 8 clients;
- accuracy, so that no speed-up hides a loss: ``citeqa eval`` in reader mode on the validation
  articles (skipped without the SQuAD file) and on the seed gold set, run under the same CPU kind.

Each CPU kind runs in its own process (the instruction-set caps must be set before torch loads).
Writes ``bench/results/variants-<date>.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, out_dir_problem, seed_questions, write_results
from bench.cpu import AVX2_ENV, KINDS, describe, run_per_kind, unknown_kind

SQUAD = ROOT.parent / "shared" / "data" / "squad" / "squad-v1.1-dev-36articles.json"
FOCUS = 300  # characters per passage when reading focused (the value measured on the tuning articles)


def variants(native_bf16: bool, auto_row: bool = False) -> list[tuple[str, int]]:
    """(precision, focus) pairs worth measuring on this CPU: bf16 only where it is native, and
    ``auto`` where it runs a reader no other row does (the 4-layer student: ``shipped_reader``)."""
    precisions = ["auto"] * auto_row + ["fp32", "int8"] + (["bf16"] if native_bf16 else [])
    return [(p, f) for p in precisions for f in (0, FOCUS)]


def _eval(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        subprocess.run([sys.executable, "-m", "service", "eval", *args, "--quiet", "--json", str(out)],
                       check=True, env=env, cwd=ROOT, capture_output=True)  # fmt: skip
        return dict(json.loads(out.read_text())["metrics"])


def accuracy(precision: str, focus: int, index_dir: Path, squad: Path | None) -> dict[str, Any]:
    env = {**os.environ, "CITEQA_PRECISION": precision, "CITEQA_READER_FOCUS": str(focus),
           "CITEQA_INDEX_DIR": str(index_dir)}  # fmt: skip
    seed = _eval(["eval/gold/seed.jsonl"], env)
    row: dict[str, Any] = {
        "seed_em": seed["em"],
        "seed_f1": seed["f1"],
        "seed_answerable_f1": seed["answerable"]["f1"],
        "seed_abstained": seed["unanswerable"]["abstention_accuracy"],
    }
    if squad is not None:
        m = _eval([str(squad), "--mode", "reader", "--split", "validation"], env)
        row.update(validation_em=m["em"], validation_f1=m["f1"])
    return row


def fresh(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a new process (the CPU caps carry over): what ran before in this one, such
    as the other variants' models, skewed in-process timings (reader ms 47.5 after them, 38.6 alone).
    Indexing speed and each variant's stages are measured this way."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _tokens_read(reader: Any, question: str, passages: list[Any]) -> float:
    """Tokens the trained reader's passes read for ``question`` (padding left out), read again
    untimed with its ``encode`` watched."""
    counted: list[float] = []
    encode = reader.encode

    def watched(q: str, views: Any) -> Any:
        enc = encode(q, views)
        counted.append(float(enc.attention_mask.sum()))
        return enc

    reader.encode = watched
    try:
        reader.read(question, passages, ranked=True)
    finally:
        del reader.encode  # the method again
    return sum(counted)


def stages(precision: str, focus: int, index_dir: Path) -> dict[str, Any]:
    """Medians over the seed questions of each part of one /ask, in this process."""
    from service.api import pipeline_from_settings
    from service.settings import Settings

    pipe = pipeline_from_settings(Settings(precision=precision, reader_focus=focus, index_dir=index_dir))
    pipe.warm_up(build_if_needed=True)
    questions = seed_questions()
    for q in questions[:5]:
        pipe.ask(q)
    t: dict[str, list[float]] = {"embed_ms": [], "search_ms": [], "read_ms": [], "tokens": []}
    for q in questions:
        t0 = time.perf_counter()
        pipe.embedder.encode([q])
        t1 = time.perf_counter()
        hits = pipe.search(q, 3).hits
        t2 = time.perf_counter()
        pipe.reader.read(q, [h.passage for h in hits], ranked=True)  # as /ask reads them
        t3 = time.perf_counter()
        if hasattr(pipe.reader, "encode"):  # the trained reader: count the tokens of its passes
            t["tokens"].append(_tokens_read(pipe.reader, q, [h.passage for h in hits]))
        t["embed_ms"].append((t1 - t0) * 1000)
        t["search_ms"].append((t2 - t1) * 1000)
        t["read_ms"].append((t3 - t2) * 1000)
    return {k: round(statistics.median(v), 1) for k, v in t.items() if v}


def indexing(precision: str) -> float:
    from corpus import load_corpus
    from index import Embedder, build_index

    docs = load_corpus(ROOT / "corpus" / "docs")
    embedder = Embedder(precision=precision)
    embedder.warm_up()
    build_index(docs[:1], embedder)  # warm-up
    t0 = time.perf_counter()
    index = build_index(docs, embedder)
    return round(len(index.by_key) / (time.perf_counter() - t0), 1)


def _reader_name(reader_dir: Path) -> str:
    """How the table names a reader folder: relative to the repository where it lies inside."""
    path = reader_dir.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(reader_dir)


def _without_reader_dirs(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--reader-dir":
            skip = True
        elif not a.startswith("--reader-dir="):
            out.append(a)
    return out


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Every variant on the CPU kind this process runs as."""
    from bench.suite import bench_server
    from models.bert import int8_engine, reader_precision, resolve_precision
    from reader import shipped_reader
    from reader.qa_model import MODEL_DIR

    cpu = describe()
    auto_dir = shipped_reader("auto")
    auto = reader_precision("auto", auto_dir)
    if auto_dir != MODEL_DIR:
        auto += f" with {_reader_name(auto_dir)}"
    squad = args.squad if args.squad and args.squad.exists() else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="citeqa-variants-") as tmp:
        work = Path(tmp)
        # each reader in turn, every variant with it: their rows compare within one run
        readers: list[Path | None] = list(args.reader_dir or [None])
        todo = [(r, p, f, sure) for r in readers
                for p, f in variants(cpu["native_bf16"], r is None and auto_dir != MODEL_DIR)
                if not args.only or f"{p}/{f}" in args.only.split(",")
                for sure in args.sure or [None]]  # fmt: skip
        # the embedder's speed per precision it runs in (auto's is fp32's or bf16's: not measured twice)
        speed = {p: fresh(indexing, p) for p in dict.fromkeys(resolve_precision(p) for _, p, _, _ in todo)}
        for reader_dir, precision, focus, sure in todo:
            if reader_dir is None:
                os.environ.pop("CITEQA_READER_DIR", None)
            else:  # every child (stages, the server, the eval runs) inherits it
                os.environ["CITEQA_READER_DIR"] = str(reader_dir.resolve())
            if sure is None:
                os.environ.pop("CITEQA_READER_SURE", None)
            else:  # inherited the same way
                os.environ["CITEQA_READER_SURE"] = str(sure)
            name = "" if reader_dir is None else _reader_name(reader_dir)
            print(f"[{cpu['kind']}] {name + ', ' if name else ''}{precision}, focus {focus}"
                  + ("" if sure is None else f", sure {sure}") + "…",
                  file=sys.stderr, flush=True)  # fmt: skip
            index_dir = work / f"index-{precision}"
            row: dict[str, Any] = {"precision": precision, "focus": focus,
                                   "index_passages_per_s": speed[resolve_precision(precision)]}  # fmt: skip
            if sure is not None:
                row["sure"] = sure
            if name:
                row = {"reader": name, **row}
            row.update(fresh(stages, precision, focus, index_dir))
            server = bench_server(args.requests, args.seconds_c8, None, precision,
                                  {"CITEQA_READER_FOCUS": str(focus)})  # fmt: skip
            row.update(
                startup_s=server["startup_s"],
                c1_p50_ms=server["concurrency_1"]["p50_ms"],
                c1_p99_ms=server["concurrency_1"]["p99_ms"],
                c8_requests_per_s=server["concurrency_8"]["requests_per_s"],
                c8_p99_ms=server["concurrency_8"]["p99_ms"],
                peak_rss_mb=server["peak_rss_mb"],
            )
            if not args.no_accuracy:
                row.update(accuracy(precision, focus, index_dir, squad))
            rows.append(row)
    return {"cpu": cpu, "auto": auto, "int8_engine": int8_engine(), "rows": rows}


LABELS = ("reader", "precision", "focus", "sure")  # the table's columns that name a row, left-aligned


def table(result: dict[str, Any]) -> str:
    out = [f"# Variants by CPU kind, {result['date']}", "", f"`{result['command']}`", ""]
    if result.get("note"):
        out += [result["note"], ""]
    cols = [("reader", "reader")] if any("reader" in r for k in result["kinds"] for r in k["rows"]) else []
    cols += [("precision", "precision"), ("focus", "focus")]
    if any("sure" in r for k in result["kinds"] for r in k["rows"]):
        cols.append(("sure", "sure"))
    cols += [("tokens", "tokens read"),
            ("embed_ms", "embed ms"), ("search_ms", "search ms"), ("read_ms", "read ms"),
            ("c1_p50_ms", "/ask p50 ms"), ("c1_p99_ms", "p99 ms"), ("c8_requests_per_s", "c8 req/s"),
            ("c8_p99_ms", "c8 p99 ms"), ("startup_s", "start-up s"), ("peak_rss_mb", "RSS MB"),
            ("index_passages_per_s", "index p/s"), ("validation_f1", "val F1"), ("validation_em", "val EM"),
            ("seed_f1", "seed F1"), ("seed_answerable_f1", "seed ans. F1"),
            ("seed_abstained", "seed abstained %")]  # fmt: skip
    for kind in result["kinds"]:
        cpu = kind["cpu"]
        out += [f"## {cpu['kind']}: {cpu['model']}, {cpu['cpus']} CPUs",
                "", f"Instruction sets: {', '.join(cpu['instruction_sets']) or 'none of note'}"
                + (f"; capped at AVX2 by {', '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}"
                   if cpu["kind"] != "native" else "") + f". `auto` chooses {kind['auto']}."
                + (f" int8 runs on {kind['int8_engine']}'s kernels." if kind.get("int8_engine") else ""), "",
                "| " + " | ".join(c[1] for c in cols) + " |",
                "|" + "".join("---|" if c[0] in LABELS else "---:|" for c in cols)]  # fmt: skip
        for r in kind["rows"]:
            out.append("| " + " | ".join(str(r.get(c[0], "—")) for c in cols) + " |")
        out.append("")
    return "\n".join(out)


def _sure_values(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers between 0 and 1, comma-separated") from None
    if not values or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: numbers between 0 and 1, comma-separated")
    return values


def _only_problem(only: str) -> str | None:
    """Why ``--only`` names no variant this command knows, or None: a run of none would write an
    empty table over the day's results."""
    from models.bert import PRECISIONS

    names = [n.strip() for n in only.split(",") if n.strip()]
    if only and not names:
        return f"error: --only {only!r} names no variant (e.g. fp32/0,int8/300)"
    for name in names:
        precision, _, focus = name.partition("/")
        if precision not in PRECISIONS or not focus.isdigit():
            known = ", ".join(PRECISIONS)
            return (
                f"error: --only {name!r}: a variant is PRECISION/FOCUS, e.g. int8/300 (precisions: {known})"
            )
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.variants", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS), help="CPU kinds: native, avx2 (comma-separated)")
    ap.add_argument("--only", default="", help="only these variants, e.g. fp32/0,int8/300")
    ap.add_argument("--requests", type=int, default=100, help="sequential /ask requests (concurrency 1)")
    ap.add_argument("--seconds-c8", type=float, default=10.0, help="how long 8 clients ask")
    ap.add_argument("--no-accuracy", action="store_true", help="speed only (skip the citeqa eval runs)")
    ap.add_argument(
        "--reader-dir",
        type=Path,
        action="append",
        default=None,
        help="measure this trained reader instead of the shipped one; repeat it to measure several, "
        "each with every variant, in one run (reader/model is the shipped one)",
    )
    ap.add_argument(
        "--sure",
        type=_sure_values,
        default=None,
        help="CITEQA_READER_SURE values to measure each variant at, e.g. 0.5,0 (default: the setting's)",
    )
    ap.add_argument("--tag", default="", help="added to the results' file name: variants-<date>-<tag>")
    ap.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD JSON for reader-mode accuracy")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker is not None:  # the parent checked the arguments and made the readers' paths absolute
        args.worker.write_text(json.dumps(worker(args)))
        return 0
    if args.tag and not re.fullmatch(r"[\w.-]+", args.tag):
        print(f"error: --tag {args.tag!r}: use letters, digits, '.', '-' and '_' only", file=sys.stderr)
        return 2
    for reader_dir in args.reader_dir or []:
        if not (reader_dir / "reader.json").is_file():
            print(f"error: {reader_dir} is not a trained reader folder (no reader.json)", file=sys.stderr)
            return 2
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    error = unknown_kind(kinds) or out_dir_problem(args.out_dir) or _only_problem(args.only)
    if error is None and (args.requests < 1 or not 0 < args.seconds_c8 < math.inf):
        error = "error: --requests must be at least 1 and --seconds-c8 a number above 0"
    if error:
        print(error, file=sys.stderr)
        return 2
    if not args.squad.exists() and not args.no_accuracy:
        print(f"note: {args.squad} not found: reader-mode accuracy is skipped", file=sys.stderr)
    own = argv if argv is not None else sys.argv[1:]
    # the workers run in the repository root: give them the readers' folders as absolute paths
    absolute = _without_reader_dirs(own)
    absolute += [x for r in args.reader_dir or [] for x in ("--reader-dir", str(r.resolve()))]
    results = run_per_kind("bench.variants", absolute, kinds, ROOT)
    if not any(kind["rows"] for kind in results):  # e.g. --only bf16/0 where bf16 is not native
        print(
            "error: no variant of --only runs on this CPU: nothing measured, nothing written", file=sys.stderr
        )
        return 2
    date = time.strftime("%Y-%m-%d")
    note = (
        "tokens read, embed, search and read ms: medians per /ask over the seed questions, in "
        "process; search includes the query embedding. val: `citeqa eval <SQuAD> --mode reader --split "
        "validation`; seed: `citeqa eval eval/gold/seed.jsonl`; both under the same CPU kind."
    )
    if args.reader_dir:
        note += " Readers: " + ", ".join(_reader_name(r) for r in args.reader_dir) + "."
    result = {"date": date, "command": "python -m bench.variants " + " ".join(own), "note": note,
              "kinds": results}  # fmt: skip
    name = f"variants-{date}" + (f"-{args.tag}" if args.tag else "")
    write_results(args.out_dir, name, result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
