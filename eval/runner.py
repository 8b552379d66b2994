"""Runs gold questions through the reader alone or the whole pipeline, and reports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corpus import ChunkParams, Document, chunk
from eval.gold import GoldItem
from eval.metrics import (
    conflict_precision,
    conflict_recall,
    false_conflict_rate,
    first_relevant_rank,
    mrr_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    score_prediction,
)
from reader import Reader

RETRIEVE_K = 10


@dataclass(frozen=True)
class Record:
    id: str
    question: str
    gold: list[str]
    prediction: str  # "" when the system abstained
    score: float
    abstained: bool
    passage_ids: list[str]
    em: float
    f1: float
    correct: bool
    rank: int | None  # 1-based rank of the first relevant passage (open mode), else None
    latency_ms: float
    doc_id: str = ""
    start: int = -1
    end: int = -1
    gold_conflict: bool = False  # the gold set says the documents disagree on it
    agreement: str = ""  # open mode: none, single, agree or conflict
    documents: int = 0  # distinct documents stating the best answer
    conflicting: list[str] = field(default_factory=list)  # the answers called a conflict
    docs: list[str] = field(default_factory=list)  # the gold documents


def _progress(items: Sequence[GoldItem], show: bool, desc: str) -> Iterable[GoldItem]:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q", dynamic_ncols=True)


def _record(
    item: GoldItem, answer: Any, passage_ids: list[str], rank: int | None, ms: float, result: Any = None
) -> Record:
    """One question's outcome; ``result`` (open mode) adds the agreement between documents."""
    prediction = answer.text if answer is not None else ""
    em, f1 = score_prediction(prediction, item.answers)
    return Record(
        id=item.id,
        question=item.question,
        gold=list(item.answers),
        prediction=prediction,
        score=float(answer.score) if answer is not None else 0.0,
        abstained=answer is None,
        passage_ids=passage_ids,
        em=em,
        f1=f1,
        correct=em == 1.0,
        rank=rank,
        latency_ms=round(ms, 3),
        doc_id=answer.doc_id if answer is not None else "",
        start=answer.start if answer is not None else -1,
        end=answer.end if answer is not None else -1,
        gold_conflict=item.conflict,
        agreement=result.agreement if result is not None else "",
        documents=result.answers[0].documents if result is not None and result.answers else 0,
        conflicting=[m.answer.text for m in result.answers if m.conflict] if result is not None else [],
        docs=list(item.docs),
    )


def squad_documents(items: Sequence[GoldItem]) -> list[Document]:
    """Every distinct SQuAD paragraph as a document (doc id ``Title/paragraph-index``)."""
    docs: dict[str, Document] = {}
    for it in items:
        if it.doc_id and it.doc_id not in docs:
            docs[it.doc_id] = Document(doc_id=it.doc_id, title=it.title, text=it.context)
    return list(docs.values())


def run_reader_mode(
    items: Sequence[GoldItem], reader: Reader, chunking: ChunkParams = ChunkParams(), progress: bool = False
) -> list[Record]:
    """Each question read against its own paragraph only (passages of that one document)."""
    cache: dict[str, list[Any]] = {}
    records = []
    for item in _progress(items, progress, "reader"):
        if not item.context:
            raise ValueError(f"{item.id}: reader mode needs each question's paragraph (SQuAD JSON)")
        if item.doc_id not in cache:
            cache[item.doc_id] = chunk(Document(item.doc_id, item.title, item.context), chunking)
        passages = cache[item.doc_id]
        t0 = time.perf_counter()
        answers = reader.read(item.question, passages, top_n=1)
        ms = (time.perf_counter() - t0) * 1000
        records.append(
            _record(item, answers[0] if answers else None, [p.passage_id for p in passages], None, ms)
        )
    return records


def _relevant(item: GoldItem, hit: Any) -> bool:
    """A passage counts when it holds a gold answer (and, if the item names docs, is from one)."""
    if item.docs and hit.passage.doc_id not in item.docs:
        return False
    text = normalize_answer(hit.passage.text)
    return any(normalize_answer(a) and normalize_answer(a) in text for a in item.answers)


def run_open_mode(
    items: Sequence[GoldItem], pipeline: Any, top_k: int = 3, progress: bool = False
) -> list[Record]:
    """Every question through the full pipeline (retrieve, read, merge)."""
    records = []
    for item in _progress(items, progress, "open"):
        t0 = time.perf_counter()
        result = pipeline.ask(item.question, top_k, retrieve_k=RETRIEVE_K)
        ms = (time.perf_counter() - t0) * 1000
        rank = first_relevant_rank([_relevant(item, h) for h in result.retrieved]) if item.answers else None
        best = result.answers[0].answer if result.answers else None
        records.append(_record(item, best, [h.passage.passage_id for h in result.hits], rank, ms, result))
    return records


def summarize(records: Sequence[Record], mode: str, wall_seconds: float) -> dict[str, Any]:
    """All figures in percent (EM, F1, accuracies, recall, MRR x100), latency in ms."""

    def pct(xs: list[float]) -> float | None:
        return round(100 * sum(xs) / len(xs), 2) if xs else None

    answerable = [r for r in records if r.gold]
    unanswerable = [r for r in records if not r.gold]
    latencies = [r.latency_ms for r in records]
    out: dict[str, Any] = {
        "mode": mode,
        "questions": len(records),
        "em": pct([r.em for r in records]),
        "f1": pct([r.f1 for r in records]),
        "answerable": {
            "n": len(answerable),
            "em": pct([r.em for r in answerable]),
            "f1": pct([r.f1 for r in answerable]),
            "answered": pct([0.0 if r.abstained else 1.0 for r in answerable]),
        },
        "unanswerable": {
            "n": len(unanswerable),
            "abstention_accuracy": pct([1.0 if r.abstained else 0.0 for r in unanswerable]),
        },
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2) if latencies else None,
            "p95": round(percentile(latencies, 95), 2) if latencies else None,
        },
        "throughput_qps": round(len(records) / wall_seconds, 2) if wall_seconds > 0 else None,
    }
    if mode == "open" and answerable:
        ranks = [r.rank for r in answerable]
        out["retrieval"] = {
            "recall@1": round(100 * recall_at_k(ranks, 1), 2),
            "recall@5": round(100 * recall_at_k(ranks, 5), 2),
            "recall@10": round(100 * recall_at_k(ranks, 10), 2),
            "mrr@10": round(100 * mrr_at_k(ranks, 10), 2),
        }
    if mode == "open":
        out["agreement"] = agreement_metrics(records)
    return out


def agreement_metrics(records: Sequence[Record]) -> dict[str, Any]:
    """Conflict precision and recall, the false-conflict rate (percent) and the agreement counts.

    ``agree_multi_source`` is the share of the questions that two or more gold documents
    answer without a conflict on which the system said "agree".
    """
    gold = [r.gold_conflict for r in records]
    called = [r.agreement == "conflict" for r in records]
    multi = [r for r in records if r.gold and not r.gold_conflict and len(r.docs) >= 2]

    def pct(x: float | None) -> float | None:
        return round(100 * x, 2) if x is not None else None

    return {
        "conflict_questions": sum(gold),
        "conflict_precision": pct(conflict_precision(gold, called)),
        "conflict_recall": pct(conflict_recall(gold, called)),
        "false_conflict_rate": pct(false_conflict_rate(gold, called)),
        "no_conflict_questions": len(gold) - sum(gold),
        "agree_multi_source": pct(sum(r.agreement == "agree" for r in multi) / len(multi)) if multi else None,
        "multi_source_questions": len(multi),
        "counts": {
            a: sum(1 for r in records if r.agreement == a) for a in ("none", "single", "agree", "conflict")
        },
    }


def format_table(m: dict[str, Any]) -> str:
    def f(x: Any) -> str:
        return "—" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)

    rows = [
        ("questions", m["questions"]),
        ("EM", m["em"]),
        ("F1", m["f1"]),
        (f"answerable EM (n={m['answerable']['n']})", m["answerable"]["em"]),
        ("answerable F1", m["answerable"]["f1"]),
        ("answerable answered %", m["answerable"]["answered"]),
        (f"abstention accuracy (n={m['unanswerable']['n']})", m["unanswerable"]["abstention_accuracy"]),
    ]
    for name, value in m.get("retrieval", {}).items():
        rows.append((name, value))
    if "agreement" in m:
        ag = m["agreement"]
        rows += [
            (f"conflict precision (called {ag['counts']['conflict']})", ag["conflict_precision"]),
            (f"conflict recall (n={ag['conflict_questions']})", ag["conflict_recall"]),
            (f"false-conflict rate (n={ag['no_conflict_questions']})", ag["false_conflict_rate"]),
            (f"agree, multi-source (n={ag['multi_source_questions']})", ag["agree_multi_source"]),
            ("agreement none/single/agree/conflict", "/".join(str(v) for v in ag["counts"].values())),
        ]
    rows += [
        ("latency p50 ms", m["latency_ms"]["p50"]),
        ("latency p95 ms", m["latency_ms"]["p95"]),
        ("questions/s", m["throughput_qps"]),
    ]
    width = max(len(n) for n, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{n:<{width}}  {f(v)}" for n, v in rows]
    return "\n".join(lines)


def write_json(
    path: str | Path,
    metrics: dict[str, Any],
    command: str,
    manifest: dict[str, Any],
    records: Sequence[Record],
) -> None:
    body = {
        "metrics": metrics,
        "command": command,
        "manifest": manifest,
        "records": [asdict(r) for r in records],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def write_report(
    path: str | Path, metrics: dict[str, Any], command: str, records: Sequence[Record], worst: int = 25
) -> None:
    """A Markdown report: the figures, then the worst misses for error analysis."""
    lines = [
        f"# citeqa eval — {metrics['mode']} mode",
        "",
        f"Command: `{command}`",
        "",
        "```",
        format_table(metrics),
        "```",
        "",
    ]
    misses = [r for r in records if r.gold and r.f1 < 1.0]
    # confident wrong answers first: they hurt users most
    misses.sort(key=lambda r: (r.f1, -r.score))
    lines += [f"## Worst misses on answerable questions ({len(misses)} with F1 < 1)", ""]
    lines += [
        "| id | question | gold | prediction | score | F1 | rank |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in misses[:worst]:
        gold = " / ".join(r.gold[:3])
        pred = r.prediction or "*(abstained)*"
        cells = [r.id, _md(r.question), _md(gold), _md(pred)[:200]]
        cells += [f"{r.score:.2f}", f"{r.f1:.2f}", str(r.rank or "—")]
        lines.append("| " + " | ".join(cells) + " |")
    false_answers = [r for r in records if not r.gold and not r.abstained]
    if false_answers:
        lines += ["", f"## Answers given to unanswerable questions ({len(false_answers)})", ""]
        lines += ["| id | question | prediction | score |", "| --- | --- | --- | --- |"]
        for r in sorted(false_answers, key=lambda r: -r.score)[:worst]:
            lines.append(f"| {r.id} | {_md(r.question)} | {_md(r.prediction)[:200]} | {r.score:.2f} |")
    wrong = [r for r in records if r.agreement and r.gold_conflict != (r.agreement == "conflict")]
    if wrong:
        lines += ["", f"## Conflict calls that disagree with the gold set ({len(wrong)})", ""]
        lines += ["| id | question | gold conflict | agreement | answers called a conflict |"]
        lines += ["| --- | --- | --- | --- | --- |"]
        for r in wrong[:worst]:
            called = " / ".join(r.conflicting) or _md(r.prediction) or "*(abstained)*"
            lines.append(
                f"| {r.id} | {_md(r.question)} | {r.gold_conflict} | {r.agreement} | {_md(called)} |"
            )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
