"""Train the span reader: ``python -m reader.train`` (``make train-reader``).

Fine-tunes a question-answering head on the bundled MiniLM encoder with the word-embedding
matrix frozen (so it need not be shipped), on the SQuAD training articles of
``eval/squad_split.json`` plus the extra QA sets, with negatives (a question paired with a
paragraph that does not answer it) to teach abstention. Then fits the score calibration and
the abstention threshold on the tuning articles, and writes ``reader/model/``.

Like the CLI, this program is an edge: it reads ``eval/squad_split.json`` and uses the
SQuAD metrics of ``eval.metrics``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from reader.qa_model import (
    MODEL_DIR,
    base_model_dir,
    clip_questions,
    decode_spans,
    encode_windows,
    load_reader,
    load_tokenizer,
    new_model,
    save_adapter,
    save_model,
    with_lora,
)

ROOT = Path(__file__).resolve().parent.parent
SPLIT = ROOT / "eval" / "squad_split.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data"  # --data unless given: absent on a fresh clone
SQUAD_FILE = "squad/squad-v1.1-dev-36articles.json"
# (file under qa-extra/, at most this many questions; None: all of it). SQuAD train whole; the
# others capped so Wikipedia-like text keeps the larger share. squad-v1.1-train-partial.json is a
# subset of the whole train file and is left out (never train on both).
EXTRA: list[tuple[str, int | None]] = [
    ("squad-v1.1-train.json", None),
    ("squadshifts-new-wiki.json", None),
    ("tydiqa-goldp-en-train.json", None),
    ("nq-qed.json", None),
    ("mlqa-en-dev.json", None),
    ("quoref-dev-single-span.json", None),
    ("squadshifts-reddit.json", 3000),
    ("squadshifts-amazon-reviews.json", 3000),
    ("covid-qa.json", 1000),
    ("qamr-dev-test.json", 3000),
]
# crowd-written questions their paragraph does not answer (SQuAD 2.0): hard negatives
UNANSWERABLE = "squad-v2.0-train-unanswerable-partial.json"


MAX_F1_LOSS = 3.0  # F1 points on the tuning articles that abstention may cost
READ_K = 3  # passages the service reads per question (its default top_k)


@dataclass(frozen=True)
class Example:
    question: str
    context: str
    answer_start: int  # -1: the context does not answer the question
    answer: str
    source: str


def _read_squad(path: Path, titles: set[str] | None = None) -> list[list[tuple[str, list[dict[str, Any]]]]]:
    """Articles as lists of (context, qas)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [
        [(p["context"], p["qas"]) for p in a["paragraphs"]]
        for a in data
        if titles is None or a.get("title") in titles
    ]


def examples_from(
    articles: list[list[tuple[str, list[dict[str, Any]]]]], source: str, rng: random.Random,
    limit: int | None = None, negative_rate: float = 0.2,
) -> list[Example]:  # fmt: skip
    """Positives from the gold answers, and negatives: the question against another
    paragraph of the same article that does not contain any of its answers."""
    out: list[Example] = []
    rows = [(ai, pi, qa) for ai, art in enumerate(articles) for pi, (_, qas) in enumerate(art) for qa in qas]
    if limit is not None and len(rows) > limit:
        rows = rng.sample(rows, limit)
    for ai, pi, qa in rows:
        context = articles[ai][pi][0]
        answers = [a for a in qa.get("answers", []) if a.get("text")]
        if not answers:
            if qa.get("is_impossible"):  # SQuAD 2.0: written to look answerable from this paragraph
                out.append(Example(qa["question"], context, -1, "", source + ":unanswerable"))
            continue
        a = answers[0]
        out.append(Example(qa["question"], context, int(a["answer_start"]), a["text"], source))
        others = [c for j, (c, _) in enumerate(articles[ai]) if j != pi]
        if others and rng.random() < negative_rate:
            other = rng.choice(others)
            if not any(x["text"] in other for x in answers):
                out.append(Example(qa["question"], other, -1, "", source + ":negative"))
    return out


def featurize(
    tokenizer: Any, examples: list[Example], max_len: int, stride: int, rng: random.Random,
    keep_text: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Token windows with start/end labels (CLS for windows without the answer).

    Long contexts make many answer-free windows; at most one per question is kept, so
    they teach abstention without swamping the spans. ``keep_text`` adds what a teacher needs
    to read the same window: the question, the context, the window's character span, the
    token offsets and which tokens are context.
    """
    feats: list[dict[str, Any]] = []
    clipped = clip_questions(tokenizer, [e.question for e in examples]) if examples else []
    examples = [replace(e, question=q) for e, q in zip(examples, clipped, strict=True)]
    for lo in range(0, len(examples), 512):
        batch = examples[lo : lo + 512]
        enc = tokenizer(
            [e.question for e in batch], [e.context for e in batch], truncation="only_second",
            max_length=max_len, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
        )  # fmt: skip
        negatives_kept: set[int] = set()
        order = list(range(len(enc["input_ids"])))
        rng.shuffle(order)
        for w in sorted(order, key=lambda w: w):
            ex_i = enc["overflow_to_sample_mapping"][w]
            ex = batch[ex_i]
            seq = enc.sequence_ids(w)
            offsets = enc["offset_mapping"][w]
            ctx = [i for i, s in enumerate(seq) if s == 1]
            start = end = 0
            if ex.answer_start >= 0 and ctx:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer)
                if offsets[ctx[0]][0] <= a0 and offsets[ctx[-1]][1] >= a1:
                    start = next(i for i in ctx if offsets[i][1] > a0)
                    end = next(i for i in reversed(ctx) if offsets[i][0] < a1)
            if start == 0:
                if ex_i in negatives_kept and ex.answer_start >= 0:
                    continue
                negatives_kept.add(ex_i)
            feat = {"input_ids": enc["input_ids"][w], "start": start, "end": end}
            if "token_type_ids" in enc:
                feat["token_type_ids"] = enc["token_type_ids"][w]
            if keep_text and ctx:
                feat.update(
                    question=ex.question, context=ex.context, span=(offsets[ctx[0]][0], offsets[ctx[-1]][1]),
                    offsets=np.array(offsets, dtype=np.int32),
                    ctx_mask=np.array([s == 1 for s in seq]),
                )  # fmt: skip
            feats.append(feat)
    return feats


def batches(feats: list[dict[str, Any]], size: int, rng: random.Random) -> list[list[dict[str, Any]]]:
    """Length-bucketed batches (less padding) in random order."""
    idx = list(range(len(feats)))
    rng.shuffle(idx)
    out = []
    for lo in range(0, len(idx), size * 50):
        group = sorted(idx[lo : lo + size * 50], key=lambda i: len(feats[i]["input_ids"]))
        out += [[feats[i] for i in group[j : j + size]] for j in range(0, len(group), size)]
    rng.shuffle(out)
    return out


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    n = max(len(f["input_ids"]) for f in batch)
    ids = torch.zeros((len(batch), n), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for i, f in enumerate(batch):
        k = len(f["input_ids"])
        ids[i, :k] = torch.tensor(f["input_ids"])
        if "token_type_ids" in f:
            types[i, :k] = torch.tensor(f["token_type_ids"])
        mask[i, :k] = 1
    out = {
        "input_ids": ids, "attention_mask": mask,
        "start_positions": torch.tensor([f["start"] for f in batch]),
        "end_positions": torch.tensor([f["end"] for f in batch]),
    }  # fmt: skip
    if "token_type_ids" in batch[0]:  # BERT has segment embeddings; MPNet has none
        out["token_type_ids"] = types
    return out


def fit_calibration(diffs: np.ndarray, correct: np.ndarray, l2: float = 1e-3) -> tuple[float, float]:
    """Logistic regression p(correct) = sigmoid(a * diff + b).

    Newton's method on standardised scores with a small L2 penalty and step halving, so it
    converges even where the classes are nearly separable; a span-less window (-inf) counts as
    the lowest score seen.
    """
    finite = np.isfinite(diffs)
    low = diffs[finite].min() if finite.any() else 0.0
    x = np.where(finite, diffs, low)
    mu, sd = float(x.mean()), float(x.std() or 1.0)
    z = (x - mu) / sd
    y = correct.astype(float)

    def loss(w: np.ndarray) -> float:
        t = w[0] * z + w[1]
        return float(np.sum(np.logaddexp(0, t) - y * t) + l2 * w[0] ** 2)

    w = np.zeros(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(w[0] * z + w[1])))
        g = np.array([np.sum((p - y) * z) + 2 * l2 * w[0], np.sum(p - y)])
        h = p * (1 - p)
        hess = np.array([[np.sum(h * z * z) + 2 * l2, np.sum(h * z)], [np.sum(h * z), np.sum(h)]])
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), g)
        scale, before = 1.0, loss(w)
        while loss(w - scale * step) > before and scale > 1e-6:
            scale /= 2
        w = w - scale * step
        if np.abs(scale * step).max() < 1e-10:
            break
    a = w[0] / sd
    return float(a), float(w[1] - a * mu)


def _near_misses(question: str, golds: list[str], paragraphs: list[str], skip: int, n: int) -> list[str]:
    """The ``n`` paragraphs of the same article that share most words with the question but hold
    no answer: what retrieval hands the reader next to (or instead of) the right passage."""
    words = {w for w in re.findall(r"\w+", question.lower()) if len(w) > 3}
    scored = [
        (len(words & set(re.findall(r"\w+", c.lower()))), -j, c)
        for j, c in enumerate(paragraphs)
        if j != skip and not any(g in c for g in golds)
    ]
    return [c for *_, c in sorted(scored, reverse=True)[:n]]


def predict_best(
    model: Any, tokenizer: Any, question: str, contexts: list[str], meta: dict[str, Any]
) -> list[tuple[str, float]]:
    """Per context, read together in one batch as the service does: (best span, score - null)."""
    import torch

    enc = encode_windows(tokenizer, question, contexts, meta["max_len"], meta["stride"])
    device = next(model.parameters()).device
    keys = ("input_ids", "attention_mask", "token_type_ids")
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(enc[k]).to(device) for k in keys if k in enc})
    start, end = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
    spans = decode_spans(enc, start, end, meta["max_answer_tokens"])
    best: list[tuple[str, float]] = [("", -math.inf)] * len(contexts)
    for sp in spans:
        if sp.score - sp.null > best[sp.context][1]:
            best[sp.context] = (contexts[sp.context][sp.start : sp.end], sp.score - sp.null)
    return best


def tune(
    model: Any, tokenizer: Any, data_dir: Path, meta: dict[str, Any], rng: random.Random
) -> dict[str, Any]:
    """Calibrate scores and choose the abstention threshold on the tuning articles."""
    from eval.metrics import score_prediction

    titles = set(json.loads(SPLIT.read_text())["tune"])
    articles = _read_squad(data_dir / SQUAD_FILE, titles)
    pos: list[tuple[float, float, float]] = []  # (diff, em, f1)
    neg: list[float] = []
    for art in articles:
        paragraphs = [c for c, _ in art]
        for pi, (context, qas) in enumerate(art):
            for qa in qas:
                golds = [a["text"] for a in qa["answers"]]
                # read like the service: the right paragraph among READ_K - 1 near misses
                others = _near_misses(qa["question"], golds, paragraphs, pi, READ_K - 1)
                best = predict_best(model, tokenizer, qa["question"], [context, *others], meta)
                text, diff = max(best, key=lambda b: b[1])
                em, f1 = score_prediction(text, golds)
                pos.append((diff, em, f1))
                if others:  # the same question when retrieval misses the answer: none of it answers
                    neg.append(max(d for _, d in best[1:]))
    d_pos = np.array([p[0] for p in pos])
    f1s = np.array([p[2] for p in pos])
    d_neg = np.array(neg)
    diffs = np.concatenate([d_pos, d_neg])
    correct = np.concatenate([(f1s >= 0.5).astype(float), np.zeros(len(d_neg))])
    a, b = fit_calibration(diffs, correct)
    # the threshold on the calibrated probability: refuse as many near-miss negatives as possible
    # while answerable F1 (an abstention scores 0) stays within MAX_F1_LOSS points of never abstaining
    d_neg = np.where(np.isfinite(d_neg), d_neg, -1e9)
    d_pos = np.where(np.isfinite(d_pos), d_pos, -1e9)
    full = float(f1s.mean())
    t = 0.02
    for cand in np.linspace(0.02, 0.95, 94):
        cut = math.log(cand / (1 - cand))
        if full - np.where(a * d_pos + b >= cut, f1s, 0.0).mean() <= MAX_F1_LOSS / 100:
            t = float(cand)
    cut = math.log(t / (1 - t))
    return {
        "calibration": {"a": a, "b": b},
        "threshold": round(t, 3),
        "tune": {
            "articles": sorted(titles),
            "questions": len(pos),
            "negatives": len(neg),
            "em_no_abstention": round(100 * float(np.mean([p[1] for p in pos])), 2),
            "f1_no_abstention": round(100 * float(f1s.mean()), 2),
            "f1_with_abstention": round(100 * float(np.where(a * d_pos + b >= cut, f1s, 0.0).mean()), 2),
            "negatives_abstained": round(100 * float((a * d_neg + b < cut).mean()), 2),
            "read_k": READ_K,
            "negatives_are": f"per question, the {READ_K - 1} other paragraphs of its article sharing most "
            "words with it (read together; the positive reads them with the right paragraph)",
            "max_f1_loss": MAX_F1_LOSS,
        },
    }


CHECKPOINT_DIR = ROOT / ".citeqa" / "reader-train"


def lr_factor(progress: float, warmup: float = 0.06) -> float:
    """Linear warm-up over the first ``warmup`` of training, then linear decay to 0 at progress 1."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    return max(0.0, (1 - progress) / (1 - warmup))


def load_examples(data: Path, split: dict[str, list[str]], limit: float, rng: random.Random) -> list[Example]:
    """The training mix: our SQuAD training articles, the extra files (capped as ``EXTRA`` says)
    and the SQuAD 2.0 unanswerable questions. Validation and tuning articles never enter."""
    examples = examples_from(_read_squad(data / SQUAD_FILE, set(split["train"])), "squad-dev-train", rng)
    held_out = set(split["validation"]) | set(split["tune"])
    for name, cap in [*EXTRA, (UNANSWERABLE, None)]:
        path = data / "qa-extra" / name
        if not path.exists():
            print(f"note: {path} not found, training without it", file=sys.stderr)
            continue
        articles = [
            [(p["context"], p["qas"]) for p in a["paragraphs"]]
            for a in json.loads(path.read_text(encoding="utf-8"))["data"]
            if a.get("title") not in held_out
        ]
        n = None if cap is None else int(cap * limit)
        examples += examples_from(articles, name, rng, limit=n)
    if limit < 1:
        examples = rng.sample(examples, int(len(examples) * limit))
    return examples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reader.train", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder holding squad/ and qa-extra/, or a bundle of them (python -m reader.bundle)",
    )
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this trained reader folder (e.g. reader/model) instead of a fresh span head",
    )
    ap.add_argument(
        "--base", type=Path, default=None, help="encoder folder to train on (default: the bundled MiniLM)"
    )
    ap.add_argument("--lora", type=int, default=0, help="train LoRA adapters of this rank (needs peft)")
    ap.add_argument(
        "--layers", type=int, default=0, help="keep only the first N encoder layers (a smaller student)"
    )
    ap.add_argument("--teacher", type=Path, default=None, help="a trained reader to distil from")
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's targets in the loss")
    ap.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda where available)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-len", type=int, default=192)
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="training time budget (all resumed runs together); the learning rate decays to 0 by then",
    )
    ap.add_argument(
        "--limit", type=float, default=1.0, help="use this share of the training data (smoke runs)"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="bf16 autocast (auto: where the CPU has native bfloat16)")  # fmt: skip
    ap.add_argument("--checkpoint", type=Path, default=CHECKPOINT_DIR, help="where progress is saved")
    ap.add_argument("--save-every", type=float, default=10.0, help="minutes between checkpoints")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint of an earlier run")
    ap.add_argument(
        "--pause-at", type=int, default=None, help="checkpoint at this step and stop (--resume goes on)"
    )
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--tune-only",
        action="store_true",
        help="keep the weights in --out; redo only the calibration and threshold",
    )
    args = ap.parse_args(argv)
    problem = check_arguments(args)
    if problem:  # before minutes of loading data, and before anything is written to --out
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from reader.bundle import run_on_data

    # --data: a folder, or a bundle (python -m reader.bundle)
    return run_on_data(args, lambda a: _run(a, ap))


def check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, or None. A run that would train nothing (``--epochs 0``,
    ``--limit 0``, a budget of no minutes) still tuned and wrote its ``--out``, by default the
    shipped ``reader/model``; other bad values failed only after the data had been read."""

    def finite(x: float) -> bool:
        return math.isfinite(x)

    checks = [
        (finite(args.epochs) and args.epochs > 0, f"--epochs must be above 0 (got {args.epochs})"),
        (args.batch_size >= 1, f"--batch-size must be at least 1 (got {args.batch_size})"),
        (finite(args.lr) and args.lr > 0, f"--lr must be a number above 0 (got {args.lr})"),
        (
            finite(args.limit) and 0 < args.limit <= 1,
            f"--limit is a share of the data in (0, 1] (got {args.limit})",
        ),
        (
            args.max_minutes is None or (finite(args.max_minutes) and args.max_minutes > 0),
            f"--max-minutes must be above 0 (got {args.max_minutes})",
        ),
        (64 <= args.max_len <= 512, f"--max-len must be between 64 and 512 tokens (got {args.max_len})"),
        (
            0 <= args.stride < args.max_len // 2,
            f"--stride must be at least 0 and below half of --max-len (got {args.stride})",
        ),
        (
            args.layers >= 0 and args.lora >= 0 and args.threads >= 0,
            "--layers, --lora and --threads cannot be negative",
        ),
        (finite(args.alpha) and 0 <= args.alpha <= 1, f"--alpha must be in [0, 1] (got {args.alpha})"),
        (
            finite(args.temperature) and args.temperature > 0,
            f"--temperature must be above 0 (got {args.temperature})",
        ),
        (
            finite(args.save_every) and args.save_every > 0,
            f"--save-every must be above 0 (got {args.save_every})",
        ),
        (args.device in (None, "cpu", "cuda"), f"--device is cpu or cuda (got {args.device!r})"),
    ]
    for ok, message in checks:
        if not ok:
            return message
    for flag in ("init", "teacher", "base"):
        folder = getattr(args, flag)
        if folder is not None and not folder.is_dir():
            return f"--{flag} {folder}: no such folder"
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "--device cuda: no CUDA device here (leave --device out to use one where there is)"
    return None


def _run(args: argparse.Namespace, ap: argparse.ArgumentParser) -> int:
    squad = args.data / SQUAD_FILE
    if not squad.exists():
        from reader.bundle import no_data

        return no_data(args, squad)
    import torch

    from models.bert import resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    if args.tune_only:
        trained, tok, shipped = load_reader(args.out)
        shipped.update(tune(trained, tok, args.data, shipped, rng))
        (args.out / "reader.json").write_text(json.dumps(shipped, indent=2) + "\n")
        print(json.dumps({k: shipped[k] for k in ("threshold", "calibration", "tune")}, indent=2))
        print(f"rewrote {args.out / 'reader.json'}")
        return 0
    t_start = time.time()
    # what makes a checkpoint resumable: the same data plan and optimisation settings
    keys = ("init", "epochs", "batch_size", "lr", "max_len", "stride", "limit", "seed", "max_minutes")
    recipe = {k: str(getattr(args, k)) for k in keys}
    optional = ("base", "lora", "layers", "teacher", "alpha", "temperature")
    recipe.update({k: str(getattr(args, k)) for k in optional
                   if getattr(args, k) not in (None, 0, ap.get_default(k))})  # fmt: skip
    ckpt_file = args.checkpoint / "state.pt"
    state: dict[str, Any] | None = None
    if args.resume:
        if not ckpt_file.exists():
            print(f"error: --resume: no checkpoint at {ckpt_file}", file=sys.stderr)
            return 2
        state = torch.load(ckpt_file, weights_only=False)
        if state["recipe"] != recipe:
            diff = {k: (state["recipe"].get(k), v) for k, v in recipe.items() if state["recipe"].get(k) != v}
            print(f"error: --resume: the checkpoint was made with other settings {diff}", file=sys.stderr)
            return 2
    elif ckpt_file.exists():
        print(f"note: starting afresh; the checkpoint at {ckpt_file} is replaced (--resume continues it)")

    split = json.loads(SPLIT.read_text())
    examples = load_examples(args.data, split, args.limit, rng)
    tokenizer = load_tokenizer(args.base)
    feats = featurize(tokenizer, examples, args.max_len, args.stride, rng, keep_text=args.teacher is not None)
    n_neg = sum(1 for f in feats if f["start"] == 0)
    print(f"{len(examples)} examples -> {len(feats)} windows ({n_neg} without an answer)", flush=True)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.init is not None:
        model, _, _ = load_reader(args.init)
    else:
        model = new_model(args.base)
    if args.layers:
        layers = model.bert.encoder.layer
        if not 0 < args.layers <= len(layers):
            print(f"error: --layers must be between 1 and {len(layers)}", file=sys.stderr)
            return 2
        model.bert.encoder.layer = torch.nn.ModuleList(list(layers)[: args.layers])
        model.config.num_hidden_layers = args.layers
    model.get_input_embeddings().weight.requires_grad_(False)
    if args.lora:
        model = with_lora(model, args.lora)
    model.to(device).train()
    teacher = None
    if args.teacher is not None:
        from reader.distill import Teacher

        t_model, t_tokenizer, _ = load_reader(args.teacher)
        teacher = Teacher(t_model.to(device).eval(), t_tokenizer, temperature=args.temperature)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    plan = [b for e in range(math.ceil(args.epochs)) for b in batches(feats, args.batch_size, rng)]
    plan = plan[: int(len(plan) * args.epochs / math.ceil(args.epochs))]
    precision = resolve_precision(args.precision) if device.type == "cpu" else "bf16"
    done, seen, spent = 0, 0, 0.0  # steps, windows and training seconds of earlier runs
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["optimizer"])
        done, seen, spent = state["step"], state["seen"], state["seconds"]
        print(f"resuming at step {done}/{len(plan)} after {spent / 60:.1f} min", flush=True)

    def save_checkpoint(step: int, seconds: float) -> None:
        args.checkpoint.mkdir(parents=True, exist_ok=True)
        trainable = {k: v for k, v in model.named_parameters() if v.requires_grad}
        tmp = ckpt_file.with_suffix(".tmp")
        torch.save({"recipe": recipe, "model": trainable, "optimizer": opt.state_dict(), "step": step,
                    "seen": seen, "seconds": seconds}, tmp)  # fmt: skip
        tmp.replace(ckpt_file)

    budget = args.max_minutes * 60 if args.max_minutes else math.inf
    t0 = time.time()
    last_save = t0
    step = done
    loss = math.nan
    print(f"training: {len(plan)} steps planned, precision {precision}, {torch.get_num_threads()} threads"
          + (f", budget {args.max_minutes:g} min" if args.max_minutes else ""), flush=True)  # fmt: skip
    try:
        for step in range(done + 1, len(plan) + 1):
            elapsed = spent + time.time() - t0
            if elapsed >= budget:
                print(f"stopping at step {step - 1}: --max-minutes reached", flush=True)
                step -= 1
                break
            progress = max((step - 1) / len(plan), elapsed / budget)
            for g in opt.param_groups:
                g["lr"] = args.lr * lr_factor(progress)
            batch = plan[step - 1]
            inputs = {k: v.to(device) for k, v in collate(batch).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                out = model(**inputs)
            loss_t = out.loss
            if teacher is not None:
                from reader.distill import kd_loss

                soft_start, soft_end = teacher.targets(batch, inputs["input_ids"].shape[1], device)
                mask = inputs["attention_mask"].bool()
                kd = kd_loss(out.start_logits, soft_start, mask, args.temperature)
                kd = (kd + kd_loss(out.end_logits, soft_end, mask, args.temperature)) / 2
                loss_t = (1 - args.alpha) * out.loss + args.alpha * kd
            loss_t.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad()
            seen += len(batch)
            loss = loss_t.item()
            if step % 25 == 0 or step == len(plan):
                el = spent + time.time() - t0
                eta = min(el / step * (len(plan) - step), max(0.0, budget - el))
                print(f"step {step}/{len(plan)} loss {loss:.3f} {seen / el:.1f} windows/s "
                      f"elapsed {el / 60:.1f} min eta {eta / 60:.1f} min", flush=True)  # fmt: skip
            if time.time() - last_save > args.save_every * 60:
                save_checkpoint(step, spent + time.time() - t0)
                last_save = time.time()
            if args.pause_at is not None and step >= args.pause_at:
                save_checkpoint(step, spent + time.time() - t0)
                print(f"paused at step {step}: saved to {ckpt_file}; --resume goes on", flush=True)
                return 0
    except KeyboardInterrupt:
        save_checkpoint(step - 1, spent + time.time() - t0)
        print(f"\ninterrupted: saved step {step - 1} to {ckpt_file}; --resume continues", file=sys.stderr)
        return 130
    save_checkpoint(step, spent + time.time() - t0)
    train_minutes = (spent + time.time() - t0) / 60
    model.eval()
    meta: dict[str, Any] = {
        "max_len": 256, "stride": 96, "max_answer_tokens": 30,
        "train": {
            "examples": len(examples), "windows": len(feats), "windows_without_answer": n_neg,
            "steps": step, "planned_steps": len(plan), "windows_seen": seen, "batch_size": args.batch_size,
            "lr": args.lr, "epochs": args.epochs, "train_max_len": args.max_len, "train_stride": args.stride,
            "init": str(args.init) if args.init else f"{(args.base or base_model_dir()).name}, new head",
            "lora_rank": args.lora or None, "layers": args.layers or None,
            "teacher": str(args.teacher) if args.teacher else None,
            "device": device.type,
            "frozen": "word embeddings", "seed": args.seed, "minutes": round(train_minutes, 1),
            "threads": torch.get_num_threads(), "precision": precision,
            "sources": {src: n for src, n in sorted(Counter(e.source for e in examples).items())},
        },
    }  # fmt: skip
    if args.init and (args.init / "reader.json").exists():  # the runs these weights continue
        earlier = json.loads((args.init / "reader.json").read_text())
        meta["history"] = [*earlier.get("history", []), earlier.get("train", {})]
    meta.update(tune(model, tokenizer, args.data, meta, rng))
    meta["train"]["total_minutes"] = round((time.time() - t_start) / 60, 1)
    from models.bert import SMOOTHING_FILE
    from reader.smooth import main as fit_smoothing

    (args.out / SMOOTHING_FILE).unlink(missing_ok=True)  # fitted to the weights this run replaces
    adapter = bool(args.lora) or args.base is not None
    if adapter:
        save_adapter(model, args.out, meta, args.base)
    else:
        save_model(model.cpu(), args.out, meta)
    print(json.dumps({k: meta[k] for k in ("threshold", "calibration", "tune")}, indent=2))
    print(f"wrote {args.out}")
    if not adapter:  # int8's smoothing, for the new weights (adapters never run in int8)
        fit_smoothing([str(args.out), "--data", str(args.data)])
    # the share depends on how these weights spread their scores: not carried over from --init
    print(f"conflict share: the default until `python -m eval.conflict_share --reader-dir {args.out} "
          "--write` fits this reader's own")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
