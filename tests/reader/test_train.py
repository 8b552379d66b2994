"""The training program on a tiny synthetic data folder: the data mix, pausing and resuming."""

import json
import random

import pytest

from corpus import Document, chunk
from reader import train

SPLIT = json.loads(train.SPLIT.read_text())
CONTEXT = "The Rhine flows through Basel. The bridge at Basel was built in 1226 by the bishop."


def _article(title: str, n: int = 3) -> dict:
    qas = [
        {"id": f"{title}-{i}", "question": "When was the bridge at Basel built?",
         "answers": [{"text": "1226", "answer_start": CONTEXT.index("1226")}]}
        for i in range(n)
    ]  # fmt: skip
    other = {"context": "Zurich lies on a lake. It has many banks.", "qas": []}
    return {"title": title, "paragraphs": [{"context": CONTEXT, "qas": qas}, other]}


@pytest.fixture
def data(tmp_path):
    (tmp_path / "squad").mkdir()
    (tmp_path / "qa-extra").mkdir()
    dev = [_article(SPLIT["train"][0]), _article(SPLIT["validation"][0]), _article(SPLIT["tune"][0], 2)]
    (tmp_path / train.SQUAD_FILE).write_text(json.dumps({"data": dev}))
    (tmp_path / "qa-extra" / "squad-v1.1-train.json").write_text(json.dumps({"data": [_article("Extra")]}))
    unanswerable = {
        "id": "u1",
        "question": "When was the bridge at Zurich built?",
        "answers": [],
        "is_impossible": True,
        "plausible_answers": [{"text": "1226", "answer_start": CONTEXT.index("1226")}],
    }
    v2 = {"data": [{"title": "U", "paragraphs": [{"context": CONTEXT, "qas": [unanswerable]}]}]}
    (tmp_path / "qa-extra" / train.UNANSWERABLE).write_text(json.dumps(v2))
    return tmp_path


def test_the_mix_keeps_validation_and_tuning_articles_out(data):
    examples = train.load_examples(data, SPLIT, 1.0, random.Random(0))
    sources = {e.source for e in examples}
    assert {"squad-dev-train", "squad-v1.1-train.json", f"{train.UNANSWERABLE}:unanswerable"} <= sources
    hard = [e for e in examples if e.source.endswith(":unanswerable")]
    assert len(hard) == 1 and hard[0].answer_start == -1 and hard[0].context == CONTEXT
    # 3 + 3 positives from the training article and the extra file; none from validation or tuning
    assert sum(e.answer_start >= 0 for e in examples) == 6
    for e in examples:
        if e.answer_start >= 0:
            assert e.context[e.answer_start : e.answer_start + len(e.answer)] == e.answer


def test_learning_rate_warms_up_then_decays_to_zero():
    assert train.lr_factor(0.0) < train.lr_factor(0.03) < train.lr_factor(0.06) == 1.0
    assert train.lr_factor(0.5) > train.lr_factor(0.9) > train.lr_factor(1.0) == 0.0


@pytest.fixture
def keep_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_pause_and_resume(data, tmp_path, capsys, keep_threads):
    args = [
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--checkpoint",
        str(tmp_path / "ckpt"),
        "--batch-size",
        "2",
        "--max-len",
        "64",
        "--stride",
        "16",
        "--precision",
        "fp32",
        "--threads",
        "1",
    ]
    assert train.main([*args, "--pause-at", "2"]) == 0
    assert "paused at step 2" in capsys.readouterr().out
    assert (tmp_path / "ckpt" / "state.pt").exists() and not (tmp_path / "out").exists()
    assert train.main([*args, "--resume", "--lr", "1"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err
    assert train.main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 2/" in out
    assert (
        f"eval.conflict_share --reader-dir {tmp_path / 'out'} --write" in out
    )  # the share is not carried over
    meta = json.loads((tmp_path / "out" / "reader.json").read_text())
    assert meta["train"]["steps"] == meta["train"]["planned_steps"] > 2
    assert {"a", "b"} <= set(meta["calibration"]) and 0 < meta["threshold"] < 1
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_resume_without_a_checkpoint_is_a_clear_error(data, tmp_path, capsys):
    code = train.main(["--data", str(data), "--checkpoint", str(tmp_path / "none"), "--resume"])
    assert code == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_skips_without_data(tmp_path, capsys, monkeypatch):
    from reader import bundle

    for module in (train, bundle):  # the default --data, absent on a fresh clone: skipped
        monkeypatch.setattr(module, "DEFAULT_DATA", tmp_path / "missing")
    assert train.main(["--out", str(tmp_path / "out")]) == 0
    assert "skipping" in capsys.readouterr().err


def test_distil_from_a_teacher_into_lora_adapters(data, tmp_path, capsys, keep_threads):
    """The GPU recipe's moving parts on the CPU: a student with LoRA adapters learns from the
    shipped reader as teacher (through the character-offset projection), is saved as an
    adapter, and loads back for tuning and as a teacher in turn."""
    pytest.importorskip("peft")
    from reader.qa_model import MODEL_DIR, load_reader

    out = tmp_path / "student"
    args = ["--data", str(data), "--out", str(out), "--checkpoint", str(tmp_path / "ckpt"),
            "--batch-size", "2", "--max-len", "64", "--stride", "16", "--precision", "fp32", "--threads", "1",
            "--lora", "4", "--teacher", str(MODEL_DIR), "--alpha", "0.7"]  # fmt: skip
    assert train.main(args) == 0
    meta = json.loads((out / "reader.json").read_text())
    assert meta["train"]["teacher"] == str(MODEL_DIR) and meta["train"]["lora_rank"] == 4
    assert (out / "adapter_config.json").exists()
    assert sum(f.stat().st_size for f in out.iterdir()) < 3 * 2**20  # adapter + head: small
    model, tokenizer, meta2 = load_reader(out)
    assert meta2["threshold"] == meta["threshold"]
    (best,) = train.predict_best(model, tokenizer, "When was the bridge at Basel built?", [CONTEXT], meta)
    assert best[0] in CONTEXT


def test_a_teacher_with_the_students_tokeniser_gives_back_its_own_distribution():
    """Same word pieces on both sides: the projection must be the identity on the context."""
    import torch

    from reader.distill import Teacher
    from reader.qa_model import MODEL_DIR, load_reader

    model, tokenizer, _ = load_reader(MODEL_DIR)
    long_context = " ".join([CONTEXT] * 12)  # several windows, so shifts are not all 0
    examples = [train.Example("When was the bridge at Basel built?", long_context, 63, "1226", "t")]
    feats = train.featurize(tokenizer, examples, 64, 16, random.Random(0), keep_text=True)
    assert len(feats) >= 2 and any(f["span"][0] > 0 for f in feats)
    inputs = train.collate(feats)
    soft_start, soft_end = Teacher(model, tokenizer, temperature=1.0).targets(
        feats, inputs["input_ids"].shape[1], "cpu"
    )
    with torch.no_grad():
        out = model(**{k: v for k, v in inputs.items() if not k.endswith("positions")})
    mask = inputs["attention_mask"].bool()
    for logits, soft in ((out.start_logits, soft_start), (out.end_logits, soft_end)):
        for r, f in enumerate(feats):
            keep = torch.from_numpy(f["ctx_mask"])
            keep[0] = True
            own = torch.softmax(logits[r, : len(keep)].masked_fill(~keep, -1e4), -1)
            assert torch.allclose(soft[r, : len(keep)], own, atol=1e-4), r
            assert soft[r][~mask[r]].sum() == 0


def test_a_smaller_student_keeps_the_first_layers_and_serves(data, tmp_path, capsys, keep_threads):
    """--layers 2: the student keeps two encoder layers, learns from the shipped reader, and the
    service's reader loads and runs it like the shipped one."""
    from reader import TrainedReader
    from reader.qa_model import MODEL_DIR

    out = tmp_path / "small"
    args = ["--data", str(data), "--out", str(out), "--checkpoint", str(tmp_path / "ckpt"),
            "--init", str(MODEL_DIR), "--layers", "2", "--teacher", str(MODEL_DIR),
            "--batch-size", "2", "--max-len", "64", "--stride", "16", "--precision", "fp32", "--threads", "1",
            "--limit", "0.3"]  # fmt: skip
    assert train.main([*args[:-2], "--layers", "9"]) == 2
    assert "--layers must be between 1 and 6" in capsys.readouterr().err
    assert train.main(args) == 0
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
    meta = json.loads((out / "reader.json").read_text())
    assert meta["train"]["layers"] == 2
    shipped = json.loads((MODEL_DIR / "reader.json").read_text())
    assert meta["history"] == [*shipped.get("history", []), shipped["train"]]  # the runs it continues
    assert "int8 without smoothing" in capsys.readouterr().err  # int8's smoothing refitted after training
    reader = TrainedReader(out, threshold=0.0)
    reader.warm_up()
    assert len(reader._model.module.bert.encoder.layer) == 2
    (passage,) = chunk(Document("basel.txt", "Basel", CONTEXT))
    for a in reader.read("When was the bridge at Basel built?", [passage]):
        assert CONTEXT[a.start : a.end] == a.text


def test_questions_are_clipped_in_one_batch_as_one_at_a_time():
    from reader.qa_model import MAX_QUESTION_TOKENS, clip_question, clip_questions, load_tokenizer

    tok = load_tokenizer()
    long = "Which " + " ".join(f"river{i}" for i in range(200)) + " flows north?"
    questions = ["Who built the mill?", long, "", long[:300]]
    clipped = clip_questions(tok, questions)
    assert clipped == [clip_question(tok, q) for q in questions]
    assert clipped[0] == questions[0] and clipped[2] == ""
    assert long.startswith(clipped[1]) and len(clipped[1]) < len(long)
    assert len(tok(clipped[1], add_special_tokens=False)["input_ids"]) == MAX_QUESTION_TOKENS


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (["--epochs", "0"], "--epochs must be above 0"),
        (["--max-minutes", "-1"], "--max-minutes must be above 0"),
        (["--limit", "0"], "--limit is a share"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--lr", "nan"], "--lr must be"),
        (["--max-len", "5"], "--max-len must be between"),
        (["--stride", "500"], "--stride must be"),
        (["--init", "no-such-folder"], "--init no-such-folder: no such folder"),
        (["--device", "tpu"], "--device is cpu or cuda"),
    ],
)
def test_options_that_would_train_nothing_or_fail_late_are_refused_first(data, tmp_path, capsys, bad, words):
    """Checked before the data is read and before anything is written to --out (by default the
    shipped reader's folder)."""
    out = tmp_path / "out"
    assert train.main(["--data", str(data), "--out", str(out), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1 and not out.exists()


def test_a_data_folder_the_user_names_must_be_there(tmp_path, capsys):
    assert train.main(["--data", str(tmp_path / "typo"), "--out", str(tmp_path / "out")]) == 2
    assert "error: --data" in capsys.readouterr().err
