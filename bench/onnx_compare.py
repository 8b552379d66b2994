"""ONNX Runtime (fp32 and dynamic int8) against the torch paths, for the reader and the embedder.

``python -m bench.onnx_compare`` (needs ``pip install onnxruntime==1.32.0 onnx==1.23.2``, which the
service does not depend on; it exits with a note when they are missing).

Exports both models from the shipped weights into a temporary folder, quantises them with
``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per-channel for the embedder), and
times, in one run on the same inputs:

- the reader on 5 windows of seed-corpus text (one /ask's worth with whole passages): torch fp32,
  torch bf16, ORT fp32, ORT int8, with the largest start/end logit difference from torch fp32;
- the embedder on the seed corpus's passages: passages/s and the lowest cosine to torch fp32; and
  on the seed set's 77 questions one at a time (what ``/ask`` embeds): the median ms per question;
- with ``--squad`` (default: the SQuAD file under ``../shared/data/squad/``, skipped when absent),
  reader accuracy on the validation articles (as ``citeqa eval --mode reader --split validation``)
  with the service's reader and with the ONNX models swapped in.

Writes ``bench/results/onnx-<date>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT


def _best_ms(fn: Any, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 1)


def _export(module: Any, path: Path, outputs: list[str]) -> None:
    import torch

    ids = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes.update({o: {0: "batch"} for o in outputs})
    torch.onnx.export(module, (ids, ids, torch.zeros_like(ids)), str(path), dynamo=False, opset_version=17,
                      input_names=names, output_names=outputs, dynamic_axes=axes)  # fmt: skip


def _quantise(src: Path, dst: Path, per_channel: bool) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip


def _export_all(work: str) -> None:
    """Both models' graphs, fp32 and int8, into ``work``. Run in a child process: after
    ``torch.onnx.export`` the exporting process's eager torch stays slower (one question's
    embedding 4.7 ms before an export, 12.4 ms after it), which would skew the torch timings."""
    import torch

    from index.embedder import default_model_path
    from models.bert import load_encoder, load_qa
    from reader.qa_model import MODEL_DIR

    class QA(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, a: Any, b: Any, c: Any) -> Any:
            out = self.m(a, b, c)
            return out[:, :, 0], out[:, :, 1]

    class Pool(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, a: Any, b: Any, c: Any) -> Any:
            h = self.m(a, b, c)
            w = b.unsqueeze(-1).to(h.dtype)
            return torch.nn.functional.normalize((h * w).sum(1) / w.sum(1).clamp(min=1e-9), dim=1)

    base, out = default_model_path(), Path(work)
    _export(QA(load_qa(MODEL_DIR, base, "fp32").module), out / "reader.onnx", ["start", "end"])
    _quantise(out / "reader.onnx", out / "reader.int8.onnx", per_channel=False)
    _export(Pool(load_encoder(base, "fp32").module), out / "embed.onnx", ["embedding"])
    _quantise(out / "embed.onnx", out / "embed.int8.onnx", per_channel=True)


def _session(path: Path) -> Any:
    import os

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _query_p50(encode: Any, queries: list[str]) -> float:
    """Median ms to embed one question alone, as /ask does: the short-query case, where the cost
    is per operator rather than arithmetic."""
    for q in queries[:5]:
        encode(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        encode(q)
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 2)


def _reader_accuracy(squad: Path, work: Path) -> list[dict[str, Any]]:
    """EM/F1 on the validation articles: the service's reader, then with each ONNX model in it."""
    import torch

    from eval.cli import split_articles
    from eval.gold import load_squad
    from eval.runner import run_reader_mode, summarize
    from reader import TrainedReader

    items = load_squad(squad, split_articles("validation"))

    class Session:  # the Runner interface over an ONNX Runtime session
        def __init__(self, path: Path) -> None:
            self.session = _session(path)

        def __call__(self, ids: Any, attention: Any, types: Any) -> Any:
            feed = {"input_ids": ids, "attention_mask": attention, "token_type_ids": types}
            start, end = self.session.run(None, feed)
            return torch.from_numpy(np.stack([start, end], axis=-1))

    rows = []
    for variant, path in (("torch (service default)", None), ("onnxruntime fp32", "reader.onnx"),
                          ("onnxruntime int8", "reader.int8.onnx")):  # fmt: skip
        reader = TrainedReader()
        reader.warm_up()
        if path is not None:
            reader._model = Session(work / path)
        m = summarize(run_reader_mode(items, reader), "reader", 1.0)
        rows.append({"model": "reader", "variant": variant, "validation_questions": m["questions"],
                     "em": m["em"], "f1": m["f1"]})  # fmt: skip
        print(rows[-1], file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.onnx_compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="timed runs of the reader (median reported)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument(
        "--squad",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "squad" / "squad-v1.1-dev-36articles.json",
    )
    args = ap.parse_args(argv)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        print("skipped: needs `pip install onnxruntime==1.32.0 onnx==1.23.2`", file=sys.stderr)
        return 0

    from corpus import ChunkParams, chunk_corpus, load_corpus
    from index import Embedder
    from index.embedder import default_model_path
    from models.bert import load_qa, load_tokenizer
    from reader.qa_model import MODEL_DIR, Windows

    base = default_model_path()
    meta = json.loads((MODEL_DIR / "reader.json").read_text())
    passages = chunk_corpus(load_corpus(ROOT / "corpus" / "docs"), ChunkParams())
    tok = load_tokenizer(base)
    question = "When did North Korea and Vietnam establish relations?"
    win = Windows(tok, question, [p.text for p in passages[:5]], meta["max_len"], meta["stride"])
    feed = {
        "input_ids": win.input_ids,
        "attention_mask": win.attention_mask,
        "token_type_ids": win.token_type_ids,
    }
    mask = win.attention_mask.astype(bool)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref = load_qa(MODEL_DIR, base, "fp32")(*feed.values()).numpy()
        child = multiprocessing.get_context("spawn").Process(target=_export_all, args=(str(work),))
        child.start()
        child.join()
        if child.exitcode:
            print(f"error: exporting the ONNX graphs failed (exit code {child.exitcode})", file=sys.stderr)
            return 1
        if args.squad.exists():
            rows += _reader_accuracy(args.squad, work)
        else:
            print(f"skipping reader accuracy: {args.squad} not found", file=sys.stderr)
        for precision in ("fp32", "bf16"):
            runner = load_qa(MODEL_DIR, base, precision)
            out = runner(*feed.values()).numpy()
            rows.append({"model": "reader", "variant": f"torch {precision}",
                         "ms": _best_ms(lambda r=runner: r(*feed.values()), args.repeat),
                         "max_logit_diff": round(float(np.abs(out - ref)[mask].max()), 4)})  # fmt: skip
        for name in ("reader.onnx", "reader.int8.onnx"):
            s = _session(work / name)
            start, end = s.run(None, feed)
            diff = max(np.abs(start - ref[:, :, 0])[mask].max(), np.abs(end - ref[:, :, 1])[mask].max())
            variant = f"onnxruntime {'int8' if 'int8' in name else 'fp32'}"
            size = round((work / name).stat().st_size / 2**20, 1)
            rows.append({"model": "reader", "variant": variant,
                         "ms": _best_ms(lambda s=s: s.run(None, feed), args.repeat),
                         "max_logit_diff": round(float(diff), 4), "mb": size})  # fmt: skip

        texts = [p.search_text for p in passages] * 4
        queries = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold" / "seed.jsonl").open()]
        reference = Embedder(precision="fp32").encode(texts)
        for precision in ("fp32", "bf16"):
            e = Embedder(precision=precision)
            e.encode(texts[:4])
            t = time.perf_counter()
            v = e.encode(texts)
            rows.append({"model": "embedder", "variant": f"torch {precision}",
                         "passages_per_s": round(len(texts) / (time.perf_counter() - t), 1),
                         "min_cosine": round(float((v * reference).sum(1).min()), 5),
                         "query_ms_p50": _query_p50(lambda q, e=e: e.encode([q]), queries)})  # fmt: skip

        tok.enable_truncation(256)
        tok.enable_padding(pad_id=0)
        for name in ("embed.onnx", "embed.int8.onnx"):
            s = _session(work / name)

            def run(s: Any = s) -> np.ndarray:
                out = []
                for i in range(0, len(texts), 32):
                    enc = tok.encode_batch(texts[i : i + 32])
                    ids = np.array([x.ids for x in enc], dtype=np.int64)
                    am = np.array([x.attention_mask for x in enc], dtype=np.int64)
                    out.append(s.run(None, {"input_ids": ids, "attention_mask": am,
                                            "token_type_ids": np.zeros_like(ids)})[0])  # fmt: skip
                return np.vstack(out)

            def one(q: str, s: Any = s) -> np.ndarray:
                x = tok.encode(q)
                ids = np.array([x.ids], dtype=np.int64)
                return s.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                    "token_type_ids": np.zeros_like(ids)})[0]  # fmt: skip

            run()
            t = time.perf_counter()
            v = run()
            variant = f"onnxruntime {'int8' if 'int8' in name else 'fp32'}"
            rows.append({"model": "embedder", "variant": variant,
                         "passages_per_s": round(len(texts) / (time.perf_counter() - t), 1),
                         "min_cosine": round(float((v * reference).sum(1).min()), 5),
                         "query_ms_p50": _query_p50(one, queries),
                         "mb": round((work / name).stat().st_size / 2**20, 1)})  # fmt: skip
    date = time.strftime("%Y-%m-%d")
    result = {
        "date": date,
        "command": "python -m bench.onnx_compare",
        "reader_tokens": int(mask.sum()),
        "rows": rows,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"onnx-{date}.json").write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(" | ".join(f"{k}={v}" for k, v in r.items()))
    print(f"written to {args.out_dir / ('onnx-' + date + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
