"""Narrowing a reader's feed-forward blocks: the least important neurons go, the matrices shrink,
and the folder written loads wherever a reader does."""

import json

import numpy as np
import pytest

from reader import prune
from reader.qa_model import SMALL_DIR, base_model_dir, load_model
from tests.reader.test_smooth import _seed_windows, _squad_file

torch = pytest.importorskip("torch")
FULL = json.loads((SMALL_DIR / "config.json").read_text())["intermediate_size"]
NARROW = FULL * 2 // 3


def _logits(model, windows):
    with torch.inference_mode():
        return [
            torch.stack(
                model(
                    **dict(
                        zip(("input_ids", "attention_mask", "token_type_ids"), prune._tensors(w), strict=True)
                    )
                )[:2],
                dim=-1,
            )
            for w in windows
        ]


def test_full_width_changes_nothing_and_a_narrower_one_shrinks_both_products():
    windows = _seed_windows(4)
    model, _ = load_model(SMALL_DIR)
    reference = _logits(model, windows)
    scores = prune.importance(model, windows)
    assert [s.shape[0] for s in scores] == [FULL] * 4 and all(bool((s >= 0).all()) for s in scores)

    kept = prune.prune(model, scores, FULL)
    assert kept == [list(range(FULL))] * 4
    for a, b in zip(reference, _logits(model, windows), strict=True):
        assert torch.equal(a, b)

    narrow, _ = load_model(SMALL_DIR)
    kept = prune.prune(narrow, scores, NARROW)
    assert narrow.config.intermediate_size == NARROW
    for layer, score, keep in zip(narrow.bert.encoder.layer, scores, kept, strict=True):
        assert tuple(layer.intermediate.dense.weight.shape) == (NARROW, 384)
        assert tuple(layer.output.dense.weight.shape) == (384, NARROW)
        assert keep == sorted(keep)  # the kept neurons keep their order
        dropped = sorted(set(range(FULL)) - set(keep))
        assert float(score[keep].min()) >= float(score[dropped].max())  # the highest scores stay


def test_a_neuron_that_moves_nothing_scores_zero():
    windows = _seed_windows(2)
    model, _ = load_model(SMALL_DIR)
    with torch.no_grad():
        model.bert.encoder.layer[2].output.dense.weight[:, 7] = 0  # its output is never used
    scores = prune.importance(model, windows)
    assert float(scores[2][7]) == 0.0 and float(scores[2].max()) > 0
    original = model.bert.encoder.layer[2].intermediate.dense.weight.detach().clone()
    (_, _, kept, _) = prune.prune(model, scores, FULL - 1)
    assert 7 not in kept and len(kept) == FULL - 1  # the first neuron to go
    assert torch.equal(model.bert.encoder.layer[2].intermediate.dense.weight[7], original[8])


def test_the_command_writes_a_reader_that_the_service_loads(tmp_path, capsys):
    from models.bert import load_qa

    _squad_file(tmp_path / "data", 6)
    out = tmp_path / "narrow"
    assert (
        prune.main([str(SMALL_DIR), "--width", "512", "--out", str(out), "--data", str(tmp_path / "data")])
        == 0
    )
    assert f"{FULL} -> 512" in capsys.readouterr().err
    meta = json.loads((out / "reader.json").read_text())
    assert meta["pruned"]["width"] == 512 and meta["pruned"]["windows"] == 6
    assert "conflict_share" not in meta  # fitted to the source's scores, not to these
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 512

    (w,) = _seed_windows(1)
    served = load_qa(out, base_model_dir(), "fp32")(w.input_ids, w.attention_mask, w.token_type_ids)
    trained, _ = load_model(out)
    (expected,) = _logits(trained, [w])
    assert np.allclose(served.numpy(), expected.numpy(), atol=1e-4)


def test_bad_input_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from reader import bundle, train

    for module in (train, bundle):  # the default --data, absent on a fresh clone: skipped
        monkeypatch.setattr(module, "DEFAULT_DATA", tmp_path / "missing")
    assert prune.main([str(SMALL_DIR), "--width", "512", "--out", str(tmp_path / "o")]) == 0
    assert "skipping: no training data" in capsys.readouterr().err
    assert prune.main([str(SMALL_DIR), "--width", "512", "--out", str(tmp_path / "o"),
                       "--data", str(tmp_path / "typo")]) == 2  # fmt: skip
    assert "error: --data" in capsys.readouterr().err
    _squad_file(tmp_path / "data", 2)
    data = ["--data", str(tmp_path / "data")]
    assert prune.main([str(SMALL_DIR), "--width", str(FULL + 1), "--out", str(tmp_path / "o"), *data]) == 2
    assert f"wider than the reader's {FULL}" in capsys.readouterr().err
    assert prune.main([str(tmp_path), "--width", "512", "--out", str(tmp_path / "o"), *data]) == 2
    assert "not a reader" in capsys.readouterr().err
    for bad, message in ((["--width", "0"], "at least 1"), (["--out", str(SMALL_DIR)], "another folder")):
        args = [str(SMALL_DIR), "--width", "512", "--out", str(tmp_path / "o"), *data, *bad]
        with pytest.raises(SystemExit) as exit_info:
            prune.main(args)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
