"""The metrics against hand-checked values of the official SQuAD v1.1 evaluation."""

import json
import re

import pytest

from eval import (
    conflict_precision,
    conflict_recall,
    exact_match,
    false_conflict_rate,
    load_jsonl,
    load_squad,
    mrr_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    score_prediction,
    token_f1,
)

# (prediction, gold answers, EM, F1), each worked out by hand with the official rules:
# lower-case, strip punctuation, drop a/an/the, split on white space; max over golds.
FIXTURE = [
    ("the Denver Broncos", ["Denver Broncos"], 1.0, 1.0),
    ("Denver Broncos!", ["Carolina Panthers", "denver broncos"], 1.0, 1.0),
    ("Broncos", ["Denver Broncos"], 0.0, 2 / 3),  # P = 1, R = 1/2
    ("", ["Santa Clara"], 0.0, 0.0),
    ("in Santa Clara, California", ["Santa Clara, California", "Levi's Stadium"], 0.0, 6 / 7),  # P 3/4, R 1
    ("a an the", ["the"], 1.0, 0.0),  # both normalise to "": equal, but no common token
    ("the cat the cat", ["cat"], 0.0, 2 / 3),  # tokens counted with multiplicity: P 1/2, R 1
    ("U.S.", ["US", "United States"], 1.0, 1.0),
    (
        "Levi's Stadium in the Bay Area",
        ["Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area"],
        0.0,
        5 / 6,
    ),  # P 1, R 5/7
]


@pytest.mark.parametrize(("pred", "golds", "em", "f1"), FIXTURE)
def test_squad_official_em_and_f1(pred, golds, em, f1):
    got_em, got_f1 = score_prediction(pred, golds)
    assert got_em == em
    assert got_f1 == pytest.approx(f1)


def test_averages_in_percent_match_the_hand_computed_total():
    ems, f1s = zip(*(score_prediction(p, g) for p, g, _, _ in FIXTURE))
    assert 100 * sum(ems) / len(ems) == pytest.approx(100 * 4 / 9)
    expected_f1 = (1 + 1 + 2 / 3 + 0 + 6 / 7 + 0 + 2 / 3 + 1 + 5 / 6) / 9
    assert 100 * sum(f1s) / len(f1s) == pytest.approx(100 * expected_f1)


def test_normalisation_and_pairwise_functions():
    assert normalize_answer("  The  Quick, brown FOX!  ") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theater") == "theater"  # articles only as whole words
    assert exact_match("The Fox", "fox") == 1.0
    assert token_f1("brown fox", "quick brown fox") == pytest.approx(0.8)


def test_unanswerable_convention():
    assert score_prediction("", []) == (1.0, 1.0)
    assert score_prediction("anything", []) == (0.0, 0.0)


def test_retrieval_metrics_and_percentiles():
    ranks = [1, 3, None, 7, 12]
    assert recall_at_k(ranks, 1) == 0.2
    assert recall_at_k(ranks, 5) == 0.4
    assert recall_at_k(ranks, 10) == 0.6
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 7) / 5)
    assert recall_at_k([], 5) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile(list(range(101)), 95) == 95


def test_conflict_metrics():
    # six questions, two with a real conflict: one found, one missed, one false alarm
    gold = [True, True, False, False, False, False]
    called = [True, False, True, False, False, False]
    assert conflict_precision(gold, called) == 0.5  # 1 of 2 calls right
    assert conflict_recall(gold, called) == 0.5  # 1 of 2 conflicts found
    assert false_conflict_rate(gold, called) == 0.25  # 1 of 4 ordinary questions
    assert conflict_precision(gold, [False] * 6) is None  # nothing called: undefined
    assert conflict_recall([False, False], [True, False]) is None  # no conflict to find
    assert false_conflict_rate([True], [True]) is None
    assert (conflict_precision([True], [True]), conflict_recall([True], [True])) == (1.0, 1.0)
    with pytest.raises(ValueError):
        conflict_recall([True], [True, False])


def test_gold_loaders(tmp_path):
    jl = tmp_path / "g.jsonl"
    jl.write_text(
        json.dumps({"id": "a", "question": "q?", "answers": ["x"], "docs": ["d.txt"]})
        + "\n\n"
        + json.dumps({"id": "b", "question": "r?", "answers": [], "conflict": True})
        + "\n"
    )
    items = load_jsonl(jl)
    assert [i.id for i in items] == ["a", "b"] and items[1].answers == () and items[0].docs == ("d.txt",)
    assert [i.conflict for i in items] == [False, True]  # absent means false
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "question": "q?", "answers": [], "conflict": "yes"}) + "\n")
    with pytest.raises(ValueError, match="conflict"):
        load_jsonl(bad)
    sq = tmp_path / "s.json"
    para = {"context": "Paris is in France.", "qas": [
        {"id": "1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]},
        {"id": "2", "question": "Where is Rome?", "answers": [], "is_impossible": True},
    ]}  # fmt: skip
    sq.write_text(json.dumps({"version": "v2.0", "data": [{"title": "Paris_City", "paragraphs": [para]}]}))
    items = load_squad(sq)
    assert items[0].answers == ("France",) and items[0].doc_id == "Paris_City/0"
    assert items[0].context[12:18] == "France" and items[0].title == "Paris City"
    assert items[1].answers == ()
    assert load_squad(sq, articles={"Other"}) == []


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        (
            "a.jsonl",
            '{"id": "a", "question": "q?", "answers": "France"}',
            "answers must be a list of strings",
        ),
        ("a.jsonl", '{"id": "a", "question": "q?", "answers": [], "docs": "abc"}', "docs must be a list"),
        ("a.jsonl", '{"id": "a", "question": ["q?"], "answers": []}', "question must be a non-empty string"),
        ("a.jsonl", '["not", "a", "record"]', "JSON object"),
        ("a.jsonl", b"\xff\xfe{}", "not UTF-8"),
        ("s.json", b"\xff\xfe{}", "not SQuAD JSON"),
        ("s.json", '{"data": {"title": "x"}}', "must be a list of articles"),
        ("s.json", '{"data": [1, 2]}', "article 0"),
        ("s.json", '{"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}', "missing 'context'"),
        ("s.json", '{"data": [{"title": 5, "paragraphs": []}]}', "title must be a string"),
        (
            "s.json",
            '{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q?",'
            ' "answers": [{"text": "c"}]}, {"id": "1", "question": "r?", "answers": []}]}]}]}',
            "duplicate question id '1'",
        ),
    ],
)
def test_a_malformed_gold_file_is_one_clear_error(tmp_path, name, content, words):
    from eval.gold import GoldFormatError, load_gold

    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(GoldFormatError, match=re.escape(words)):
        load_gold(path)


def test_outputs_are_checked_before_a_run(tmp_path):
    from eval.cli import check_outputs
    from service.errors import BadInputError

    gold = tmp_path / "g.jsonl"
    gold.write_text("")
    check_outputs(gold, {"--json": tmp_path / "out.json", "--report": tmp_path / "out.md", "--x": None})
    bad = [
        ({"--json": gold}, "is the gold file itself"),
        ({"--json": tmp_path}, "is a folder"),
        ({"--report": tmp_path / "missing" / "r.md"}, "does not exist"),
        ({"--json": tmp_path / "same", "--report": tmp_path / "same"}, "name the same file"),
    ]
    for outputs, words in bad:
        with pytest.raises(BadInputError, match=words):
            check_outputs(gold, outputs)


def test_importing_metrics_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, eval.metrics, eval.gold; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
