import json
from pathlib import Path

import pytest

from eval import load_jsonl
from eval.runner import (
    Record,
    agreement_metrics,
    run_open_mode,
    run_reader_mode,
    summarize,
    write_json,
    write_report,
)
from models.bert import int8_engine
from service.cli import main

from ..conftest import ROOT

SEED = ROOT / "eval" / "gold" / "seed.jsonl"
AGREEMENT = ROOT / "eval" / "gold" / "agreement"
BASELINE = ROOT / "eval" / "baseline.json"


@pytest.fixture(scope="module")
def seed_metrics(pipeline):
    records = run_open_mode(load_jsonl(SEED), pipeline)  # the service default: read 3 passages
    return summarize(records, "open", 1.0), records


def test_seed_set_does_not_regress(seed_metrics):
    """The regression guard: raise eval/baseline.json deliberately when the system improves."""
    metrics, _ = seed_metrics
    floor = json.loads(BASELINE.read_text())["seed"]
    assert metrics["em"] >= floor["em"], metrics
    assert metrics["f1"] >= floor["f1"], metrics
    assert metrics["unanswerable"]["abstention_accuracy"] >= floor["abstention_accuracy"], metrics
    assert metrics["retrieval"]["recall@5"] >= floor["recall@5"], metrics


def test_seed_set_shape():
    items = load_jsonl(SEED)
    docs = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "corpus" / "docs").iterdir()}
    assert len(items) >= 60
    assert sum(1 for i in items if not i.answers) >= 8
    for item in items:
        for doc_id in item.docs:
            assert any(a in docs[doc_id] for a in item.answers), item.id
    assert {d for i in items for d in i.docs} == set(docs)


def test_records_keep_the_offset_invariant(seed_metrics, pipeline):
    _, records = seed_metrics
    for r in records:
        if not r.abstained:
            assert pipeline.document(r.doc_id).text[r.start : r.end] == r.prediction


def test_reports(seed_metrics, tmp_path):
    metrics, records = seed_metrics
    write_json(tmp_path / "r.json", metrics, "citeqa eval x", {"m": 1}, records)
    body = json.loads((tmp_path / "r.json").read_text())
    assert set(body) == {"metrics", "command", "manifest", "records"}
    rec = body["records"][0]
    assert {"id", "question", "gold", "prediction", "score", "passage_ids", "abstained", "correct"} <= set(
        rec
    )
    write_report(tmp_path / "r.md", metrics, "citeqa eval x", records)
    md = (tmp_path / "r.md").read_text()
    assert "Worst misses" in md and "citeqa eval x" in md


def test_reader_mode_on_a_squad_fixture(embedder, tmp_path):
    from eval import load_squad
    from reader import BaselineReader

    para = {"context": "The treaty was signed in 1973 in Paris. It ended the war.", "qas": [
        {"id": "1", "question": "When was the treaty signed?", "answers": [{"text": "1973"}]},
        {"id": "2", "question": "Where was the treaty signed?", "answers": [{"text": "Paris"}]},
    ]}  # fmt: skip
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [para]}]}))
    records = run_reader_mode(load_squad(path), BaselineReader(embedder))
    assert [r.prediction for r in records] == ["1973", "Paris"]
    m = summarize(records, "reader", 1.0)
    assert m["em"] == 100.0 and m["f1"] == 100.0 and "retrieval" not in m


def test_eval_cli(index_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    argv = [
        "eval",
        str(SEED),
        "--limit",
        "5",
        "--seed",
        "1",
        "--json",
        str(out),
        "--index-dir",
        str(index_dir),
    ]
    assert main(argv) == 0
    assert "EM" in capsys.readouterr().out
    body = json.loads(out.read_text())
    assert body["metrics"]["questions"] == 5 and len(body["records"]) == 5
    assert body["command"].startswith("citeqa eval ") and body["manifest"]["fingerprint"]
    # what the run read with: auto comes to the 6-layer reader in bf16 or the 4-layer one in fp32
    manifest = body["manifest"]
    assert manifest["precision"] == "auto" and manifest["reader_dir"] is None
    assert (manifest["reader_model"], manifest["precision_run"]) in {
        ("model", "bf16"),
        ("model-small", "int8"),
        ("model-small", "fp32"),
    }
    assert manifest["int8_engine"] == (int8_engine() if manifest["precision_run"] == "int8" else None)
    assert manifest["conflict_share"] == (0.55 if manifest["reader_model"] == "model-small" else 0.3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope.jsonl"], "not found"),
        (["eval", str(SEED), "--mode", "reader"], "SQuAD"),
        (["eval", str(SEED), "--limit", "0"], "--limit"),
        (["eval", str(SEED), "--split", "tune"], "--split picks SQuAD articles"),
        (["eval", "squad.json", "--docs", "x"], "--docs"),
    ],
)
def test_eval_cli_bad_input(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_bad_gold_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    assert main(["eval", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert Path(bad).exists()


def _rec(gold_conflict, agreement, answers=("x",), docs=("a.txt",)):
    return Record(
        id="q", question="q?", gold=list(answers), prediction="x", score=0.9, abstained=False, passage_ids=[],
        em=1.0, f1=1.0, correct=True, rank=1, latency_ms=1.0, gold_conflict=gold_conflict,
        agreement=agreement, docs=list(docs),
    )  # fmt: skip


def test_agreement_metrics_on_hand_written_records():
    records = [
        _rec(True, "conflict"),
        _rec(True, "single"),
        _rec(False, "conflict"),
        _rec(False, "agree", docs=("a.txt", "b.txt")),
        _rec(False, "single", docs=("a.txt", "b.txt")),
        _rec(False, "none", answers=()),
    ]
    m = agreement_metrics(records)
    assert (m["conflict_precision"], m["conflict_recall"], m["false_conflict_rate"]) == (50.0, 50.0, 25.0)
    assert (m["conflict_questions"], m["no_conflict_questions"]) == (2, 4)
    assert (m["agree_multi_source"], m["multi_source_questions"]) == (50.0, 2)
    assert m["counts"] == {"none": 1, "single": 2, "agree": 1, "conflict": 2}


def test_agreement_gold_set_shape():
    docs = {p.name: p.read_text(encoding="utf-8") for p in (AGREEMENT / "docs").iterdir()}
    docs.update({p.name: p.read_text(encoding="utf-8") for p in (ROOT / "corpus" / "docs").iterdir()})
    dev, test = load_jsonl(AGREEMENT / "dev.jsonl"), load_jsonl(AGREEMENT / "test.jsonl")
    assert not {i.question for i in dev} & {i.question for i in test}
    for items in (dev, test):
        assert sum(i.conflict for i in items) >= 8 and sum(not i.conflict for i in items) >= 20
        for item in items:
            assert item.answers and all(any(a in docs[d] for d in item.docs) for a in item.answers), item.id
            assert not item.conflict or len(item.docs) >= 2, item.id  # a conflict is between documents


def test_eval_cli_with_extra_documents_and_conflict_figures(index_dir, tmp_path, capsys):
    extra = tmp_path / "docs"
    extra.mkdir()
    (extra / "mill_a.txt").write_text("Harlow Mill\n\nHarlow Mill was built in 1850 by John Carter.\n")
    (extra / "mill_b.txt").write_text("Harlow Mill today\n\nHarlow Mill, built in 1862, still grinds corn.\n")
    gold = tmp_path / "g.jsonl"
    rows = [
        {"id": "m1", "question": "When was Harlow Mill built?", "answers": ["1850", "1862"],
         "docs": ["mill_a.txt", "mill_b.txt"], "conflict": True},
        {"id": "m2", "question": "Who built Harlow Mill?", "answers": ["John Carter"],
         "docs": ["mill_a.txt"]},
    ]  # fmt: skip
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "e.json"
    argv = ["eval", str(gold), "--docs", str(extra), "--index-dir", str(index_dir), "--json", str(out)]
    assert main([*argv, "--report", str(tmp_path / "e.md")]) == 0
    text = capsys.readouterr().out
    assert "conflict recall (n=1)" in text and "false-conflict rate (n=1)" in text
    body = json.loads(out.read_text())
    assert set(body["metrics"]["agreement"]) >= {
        "conflict_precision",
        "conflict_recall",
        "false_conflict_rate",
    }
    assert {r["agreement"] for r in body["records"]} <= {"none", "single", "agree", "conflict"}
    assert body["manifest"]["corpus"]["documents"] == 5  # the corpus folder's three, plus two
    assert (index_dir.parent / "eval-cache").is_dir()
    assert main(["list", "--json", "--index-dir", str(index_dir)]) == 0  # the main index is left alone
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert (
        main(["eval", str(gold), "--docs", str(ROOT / "corpus" / "docs"), "--index-dir", str(index_dir)]) == 2
    )
    assert "more than one folder" in capsys.readouterr().err
