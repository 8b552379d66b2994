"""Fitting a reader's conflict share: the rule, the replay and the reader.json it writes (no model)."""

from __future__ import annotations

import json

import pytest

from eval.conflict_share import _Trial, choose, main, table, write_share
from service.agreement import conflict_ratio


def _m(precision, recall, fcr):
    return {"conflict_precision": precision, "conflict_recall": recall, "false_conflict_rate": fcr}


# the 4-layer reader's grid, capped at AVX2 (README, "When sources agree")
DEV = {0.25: _m(90.0, 90.0, 3.85), 0.3: _m(88.89, 80.0, 3.85), 0.4: _m(88.89, 80.0, 3.85),
       0.5: _m(88.89, 80.0, 3.85), 0.55: _m(88.89, 80.0, 3.85), 0.6: _m(88.89, 80.0, 3.85),
       0.65: _m(87.5, 70.0, 3.85)}  # fmt: skip
SEED = {0.25: _m(0.0, None, 5.19), 0.3: _m(0.0, None, 5.19), 0.4: _m(0.0, None, 3.9),
        0.5: _m(0.0, None, 2.6), 0.55: _m(0.0, None, 2.6), 0.6: _m(0.0, None, 2.6),
        0.65: _m(0.0, None, 1.3)}  # fmt: skip


def test_the_rule_keeps_the_seed_target_then_the_best_dev_then_the_lowest_seed_rate_then_the_middle():
    assert choose(DEV, SEED) == (0.55, True)
    # with a looser target the better dev figures at 0.25 win
    assert choose(DEV, SEED, target=6.0) == (0.25, True)
    md = table(DEV, SEED, 0.55)
    assert "| 0.55 ← | 88.89 | 80.00 | 3.85 | 2.60 |" in md and "| 0.30 | 88.89 |" in md


def test_when_no_share_keeps_the_target_the_lowest_seed_rate_is_taken_and_said():
    seed = {s: _m(0.0, None, 9.0 if s < 0.6 else 7.0) for s in DEV}
    assert choose(DEV, seed) == (0.6, False)  # 0.6 and 0.65 have the lowest rate; 0.6 has the better dev


class _Counting:
    name = "counting"
    conflict_share = None

    def __init__(self):
        self.calls = 0

    def warm_up(self):
        pass

    def read(self, question, passages, top_n=3, ranked=False):
        self.calls += 1
        return [question, len(passages)]


class _P:
    def __init__(self, pid):
        self.passage_id = pid


def test_a_trial_reads_each_question_once_and_carries_the_share_under_trial():
    inner = _Counting()
    trial = _Trial(inner)
    ps = [_P("a#0"), _P("b#0")]
    assert trial.read("q?", ps) == trial.read("q?", ps) == ["q?", 2]
    assert inner.calls == 1
    trial.read("q?", ps[:1])
    assert inner.calls == 2
    trial.conflict_share = 0.55
    assert conflict_ratio(trial) == 0.55 and conflict_ratio(inner) == 0.3


def test_write_share_puts_it_after_the_threshold_and_replaces_an_old_one(tmp_path):
    (tmp_path / "reader.json").write_text(json.dumps({"max_len": 256, "threshold": 0.2, "tune": {}}))
    write_share(tmp_path, 0.55)
    assert list(json.loads((tmp_path / "reader.json").read_text())) == [
        "max_len",
        "threshold",
        "conflict_share",
        "tune",
    ]
    write_share(tmp_path, 0.4)
    meta = json.loads((tmp_path / "reader.json").read_text())
    assert meta["conflict_share"] == 0.4 and list(meta).count("conflict_share") == 1


@pytest.mark.parametrize(
    ("shares", "message"), [("0.3,x", "numbers separated by commas"), ("0.3,1.5", "in (0, 1]")]
)
def test_bad_shares_are_one_line_and_exit_2(shares, message, capsys):
    assert main(["--shares", shares]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --shares") and message in err and "\n" not in err


def test_a_bad_setting_from_the_environment_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("CITEQA_INT8_ENGINE", "mkl")
    assert main(["--shares", "0.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: int8_engine") and "\n" not in err
