import json
from pathlib import Path

import pytest

from eval import load_jsonl
from eval.runner import run_open_mode, run_reader_mode, summarize, write_json, write_report
from service.cli import main

from ..conftest import ROOT

SEED = ROOT / "eval" / "gold" / "seed.jsonl"
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope.jsonl"], "not found"),
        (["eval", str(SEED), "--mode", "reader"], "SQuAD"),
        (["eval", str(SEED), "--limit", "0"], "--limit"),
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
