"""The reader's forward pass alone, two ways of running it side by side: ``python -m
bench.forward`` (the query/key/value maps fused or not, per precision) or ``--compare engines``
(int8 on FBGEMM's kernels or oneDNN's).

Over the seed questions, each with three passages of the default corpus (one /ask's worth of
windows), the two ways run in turns within one process (``--rounds`` of each, each going first
in turn), so drift of the machine hits both alike; the median ms per forward of each round is
kept. Runs natively and, in a second process, capped at AVX2 (``bench.cpu.AVX2_ENV``). Also
gives how far apart the two ways' logits are (largest and mean difference). Writes
``bench/results/forward-<date>[-engines].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, out_dir_problem, seed_questions, write_results
from bench.cpu import KINDS, describe, run_per_kind, unknown_kind


def _median_ms(forward: Any, batches: list[tuple[Any, Any, Any]]) -> float:
    times = []
    for b in batches:
        t = time.perf_counter()
        forward(*b)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


COMPARE = ("fuse", "engines")


def ways(compare: str, native_bf16: bool) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """(precision, [(name, load_qa options)]) for each row: fused or separate query/key/value maps
    in every precision, or int8 on FBGEMM's kernels or oneDNN's (``models.bert.int8_engine``)."""
    if compare == "engines":
        return [("int8", [("onednn", {"engine": "onednn"}), ("fbgemm", {"engine": "fbgemm"})])]
    precisions = ["fp32", "int8"] + (["bf16"] if native_bf16 else [])
    return [(p, [("separate", {"fuse": False}), ("fused", {"fuse": True})]) for p in precisions]


def worker(rounds: int, compare: str, reader_dir: Path | None) -> dict[str, Any]:
    import numpy as np

    from corpus import ChunkParams, chunk_corpus, load_corpus
    from models.bert import _MODEL_THREAD, load_qa
    from reader import TrainedReader
    from reader.qa_model import MODEL_DIR, base_model_dir

    cpu = describe()
    folder = reader_dir or MODEL_DIR
    reader = TrainedReader(folder)
    passages = chunk_corpus(load_corpus(ROOT / "corpus" / "docs"), ChunkParams())
    n = len(passages) - 3
    batches = []
    for i, q in enumerate(seed_questions()):
        enc = reader.windows(q, passages[(3 * i) % n : (3 * i) % n + 3])[1]
        batches.append((enc.input_ids, enc.attention_mask, enc.token_type_ids))
    rows = []
    for precision, options in ways(compare, cpu["native_bf16"]):
        runners = {name: load_qa(folder, base_model_dir(), precision, **o) for name, o in options}
        (a, first), (b, second) = runners.items()
        diffs = [np.abs(first(*x).numpy() - second(*x).numpy()) for x in batches[:10]]

        def median_ms(name: str, runners: dict[str, Any] = runners) -> float:
            # on the model thread, where the service runs every forward (one OpenMP pool)
            return float(_MODEL_THREAD.call(_median_ms, runners[name]._forward, batches))

        median_ms(a), median_ms(b)  # warm-up
        ms: dict[str, list[float]] = {a: [], b: []}
        for r in range(rounds):
            for name in (a, b) if r % 2 == 0 else (b, a):  # each goes first in turn
                ms[name].append(median_ms(name))
        ma, mb = statistics.median(ms[a]), statistics.median(ms[b])
        largest = max(float(d.max()) for d in diffs)
        rows.append({"precision": precision, "ways": [a, b], "ms": {a: round(ma, 1), b: round(mb, 1)},
                     "ratio": round(mb / ma, 3), "max_logit_diff": round(largest, 5),
                     "mean_logit_diff": round(float(np.mean([d.mean() for d in diffs])), 5),
                     "rounds": {k: [round(x, 1) for x in v] for k, v in ms.items()}})  # fmt: skip
        print(rows[-1], file=sys.stderr)
    tokens = statistics.median(float(b[1].sum()) for b in batches)
    return {"cpu": cpu, "reader": str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder),
            "tokens_per_forward": tokens, "rows": rows}  # fmt: skip


def table(result: dict[str, Any]) -> str:
    what = "int8 kernels" if result.get("compare") == "engines" else "query/key/value fused or not"
    out = [f"# The reader's forward pass, {what}, {result['date']}", "",
           f"`{result['command']}`", ""]  # fmt: skip
    for kind in result["kinds"]:
        cpu = kind["cpu"]
        out += [f"## {cpu['kind']}: {cpu['model']}, {cpu['cpus']} CPUs", "",
                f"Reader: {kind.get('reader', 'reader/model')}. Median tokens per forward: "
                f"{kind['tokens_per_forward']:.0f} (3 passages).", ""]  # fmt: skip
        for r in kind["rows"]:
            a, b = r["ways"]
            if r is kind["rows"][0]:
                out += [f"| precision | {a} ms | {b} ms | {b} / {a} | largest logit difference | "
                        "mean logit difference |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
            out.append(f"| {r['precision']} | {r['ms'][a]} | {r['ms'][b]} | {r['ratio']} | "
                       f"{r['max_logit_diff']} | {r['mean_logit_diff']} |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS), help="CPU kinds: native, avx2 (comma-separated)")
    ap.add_argument("--rounds", type=int, default=5, help="turns of each way")
    ap.add_argument("--compare", choices=COMPARE, default="fuse",
                    help="fuse: query/key/value fused or not; engines: int8 on FBGEMM or oneDNN")  # fmt: skip
    ap.add_argument("--reader-dir", type=Path, default=None, help="the reader to run (default: reader/model)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker is not None:
        args.worker.write_text(json.dumps(worker(args.rounds, args.compare, args.reader_dir)))
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    error = unknown_kind(kinds) or out_dir_problem(args.out_dir)
    if error is None and args.rounds < 1:
        error = f"error: --rounds must be at least 1 (got {args.rounds})"
    if error is None and args.reader_dir is not None and not (args.reader_dir / "reader.json").is_file():
        error = f"error: --reader-dir {args.reader_dir}: no trained reader there (reader.json)"
    if error:
        print(error, file=sys.stderr)
        return 2
    own = argv if argv is not None else sys.argv[1:]
    results = run_per_kind("bench.forward", own, kinds, ROOT)
    date = time.strftime("%Y-%m-%d")
    result = {"date": date, "command": "python -m bench.forward " + " ".join(own), "compare": args.compare,
              "kinds": results}  # fmt: skip
    name = f"forward-{date}" + ("-engines" if args.compare == "engines" else "")
    write_results(args.out_dir, name, result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
