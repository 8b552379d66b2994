"""The reader's forward pass alone, per precision, with the query/key/value maps fused or not:
``python -m bench.forward``.

Over the seed questions, each with three passages of the default corpus (one /ask's worth of
windows), the two ways run in turns within one process (``--rounds`` of each), so drift of the
machine hits both alike; the median ms per forward of each round is kept. Runs natively and,
in a second process, capped at AVX2 (``bench.cpu.AVX2_ENV``). Also checks that fusing leaves
the outputs as they were (the largest logit difference). Writes ``bench/results/forward-<date>.json``
and ``.md``.
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

from bench.common import ROOT, seed_questions, write_results
from bench.cpu import KINDS, describe, run_per_kind, unknown_kind


def _median_ms(forward: Any, batches: list[tuple[Any, Any, Any]]) -> float:
    times = []
    for b in batches:
        t = time.perf_counter()
        forward(*b)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def worker(rounds: int) -> dict[str, Any]:
    import numpy as np

    from corpus import ChunkParams, chunk_corpus, load_corpus
    from models.bert import _MODEL_THREAD, load_qa
    from reader import TrainedReader
    from reader.qa_model import MODEL_DIR, base_model_dir

    cpu = describe()
    reader = TrainedReader()
    passages = chunk_corpus(load_corpus(ROOT / "corpus" / "docs"), ChunkParams())
    n = len(passages) - 3
    batches = []
    for i, q in enumerate(seed_questions()):
        enc = reader.windows(q, passages[(3 * i) % n : (3 * i) % n + 3])[1]
        batches.append((enc.input_ids, enc.attention_mask, enc.token_type_ids))
    rows = []
    for precision in ["fp32", "int8"] + (["bf16"] if cpu["native_bf16"] else []):
        runners = {fuse: load_qa(MODEL_DIR, base_model_dir(), precision, fuse) for fuse in (False, True)}
        diff = max(
            float(np.abs(runners[True](*b).numpy() - runners[False](*b).numpy()).max()) for b in batches[:10]
        )

        def median_ms(fuse: bool, runners: dict[bool, Any] = runners) -> float:
            # on the model thread, where the service runs every forward (one OpenMP pool)
            return float(_MODEL_THREAD.call(_median_ms, runners[fuse]._forward, batches))

        median_ms(False), median_ms(True)  # warm-up
        ms: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for fuse in (False, True):
                ms[fuse].append(median_ms(fuse))
        separate, fused = statistics.median(ms[False]), statistics.median(ms[True])
        rows.append({"precision": precision, "separate_ms": round(separate, 1), "fused_ms": round(fused, 1),
                     "ratio": round(fused / separate, 3), "max_logit_diff": round(diff, 5),
                     "rounds_separate": [round(x, 1) for x in ms[False]],
                     "rounds_fused": [round(x, 1) for x in ms[True]]})  # fmt: skip
        print(rows[-1], file=sys.stderr)
    tokens = statistics.median(float(b[1].sum()) for b in batches)
    return {"cpu": cpu, "tokens_per_forward": tokens, "rows": rows}


def table(result: dict[str, Any]) -> str:
    out = [f"# The reader's forward pass, query/key/value fused or not, {result['date']}", "",
           f"`{result['command']}`", ""]  # fmt: skip
    for kind in result["kinds"]:
        cpu = kind["cpu"]
        out += [f"## {cpu['kind']}: {cpu['model']}, {cpu['cpus']} CPUs", "",
                f"Median tokens per forward: {kind['tokens_per_forward']:.0f} (3 passages).", "",
                "| precision | separate ms | fused ms | fused / separate | largest logit difference |",
                "|---|---:|---:|---:|---:|"]  # fmt: skip
        for r in kind["rows"]:
            out.append(f"| {r['precision']} | {r['separate_ms']} | {r['fused_ms']} | {r['ratio']} | "
                       f"{r['max_logit_diff']} |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS), help="CPU kinds: native, avx2 (comma-separated)")
    ap.add_argument("--rounds", type=int, default=5, help="turns of each way")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker is not None:
        args.worker.write_text(json.dumps(worker(args.rounds)))
        return 0
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    error = unknown_kind(kinds)
    if error:
        print(error, file=sys.stderr)
        return 2
    own = argv if argv is not None else sys.argv[1:]
    results = run_per_kind("bench.forward", own, kinds, ROOT)
    date = time.strftime("%Y-%m-%d")
    result = {"date": date, "command": "python -m bench.forward " + " ".join(own), "kinds": results}
    write_results(args.out_dir, f"forward-{date}", result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
