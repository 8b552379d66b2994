"""int8 smoothing: exact in float arithmetic, nearer float32 in int8, fitted by ``reader.smooth``."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reader import bundle, smooth
from reader.qa_model import MODEL_DIR, SMALL_DIR, Windows, base_model_dir

ROOT = Path(__file__).resolve().parents[2]
torch = pytest.importorskip("torch")


def _seed_windows(n: int) -> list[Windows]:
    """Windows of the first ``n`` seed questions, each over 800 characters around its answer."""
    from models.bert import load_tokenizer

    tokenizer = load_tokenizer(base_model_dir())
    meta = json.loads((SMALL_DIR / "reader.json").read_text())
    out = []
    for line in (ROOT / "eval/gold/seed.jsonl").read_text().splitlines()[:n]:
        item = json.loads(line)
        text = (ROOT / "corpus/docs" / item["docs"][0]).read_text(encoding="utf-8")
        at = max(0, text.find(item["answers"][0]) - 400)
        out.append(
            Windows(tokenizer, item["question"], [text[at : at + 800]], meta["max_len"], meta["stride"])
        )
    return out


def _logits(module, windows):
    with torch.inference_mode():
        return [module(*smooth._tensors(w)).float() for w in windows]


@pytest.mark.parametrize("folder", [SMALL_DIR, MODEL_DIR], ids=["4-layer", "6-layer"])
def test_smoothing_is_exact_in_float_and_brings_int8_nearer_float32(folder):
    from safetensors.torch import load_file

    from models.bert import SMOOTHING_FILE, Runner, qa_module, smooth_for_int8

    windows = _seed_windows(12)
    module = qa_module(folder, base_model_dir())
    reference = _logits(module, windows)
    scales = load_file(str(folder / SMOOTHING_FILE))

    smoothed = copy.deepcopy(module)
    smooth_for_int8(smoothed.bert.encoder, scales)
    for a, b in zip(reference, _logits(smoothed, windows), strict=True):
        assert torch.allclose(a, b, atol=1e-3), float((a - b).abs().max())  # the same products

    plain = smooth.logit_error(reference, Runner(copy.deepcopy(module), "int8").module, windows)
    fitted = smooth.logit_error(reference, Runner(smoothed, "int8").module, windows)
    assert fitted < plain, (fitted, plain)


def test_smoothing_that_does_not_fit_the_model_is_refused():
    from models.bert import qa_module, smooth_for_int8

    module = qa_module(SMALL_DIR, base_model_dir())
    with pytest.raises(ValueError, match="does not fit"):
        smooth_for_int8(module.bert.encoder, {"layer.0.intermediate": torch.ones(384)})


def test_auto_reads_in_int8_only_with_smoothing_and_never_embeds_in_int8(monkeypatch, tmp_path):
    from models.bert import int8_kernels, reader_precision, resolve_precision

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # how the benchmark emulates an AVX2-only CPU
    assert resolve_precision("auto") == "fp32"  # the embedder's precision: never int8
    assert reader_precision("auto", SMALL_DIR) == ("int8" if int8_kernels() else "fp32")
    bare = tmp_path / "reader"
    bare.mkdir()
    assert reader_precision("auto", bare) == "fp32"  # no smoothing fitted: int8 would cost accuracy
    for named in ("fp32", "bf16", "int8"):
        assert reader_precision(named, SMALL_DIR) == named
    monkeypatch.setattr("models.bert.int8_kernels", lambda: False)  # ARM: no x86 int8 kernels
    assert reader_precision("auto", SMALL_DIR) == "fp32"


def test_smoothing_fitted_to_other_weights_is_not_used(monkeypatch, tmp_path, caplog):
    from models.bert import SMOOTHING_FILE, fitted_smoothing, reader_precision, weights_digest

    folder = tmp_path / "small"
    shutil.copytree(SMALL_DIR, folder)
    assert fitted_smoothing(folder) == folder / SMOOTHING_FILE  # a whole copy keeps its smoothing
    shutil.copy(MODEL_DIR / SMOOTHING_FILE, folder / SMOOTHING_FILE)  # the 6-layer reader's scales
    assert weights_digest(folder) != weights_digest(MODEL_DIR)
    with caplog.at_level("WARNING", logger="models.bert"):
        assert fitted_smoothing(folder) is None
    assert "fitted to other weights" in caplog.text
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert reader_precision("auto", folder) == "fp32"  # int8 unsmoothed would cost accuracy


def _squad_file(folder: Path, paragraphs: int) -> None:
    seed = [json.loads(line) for line in (ROOT / "eval/gold/seed.jsonl").read_text().splitlines()]
    data = []
    for item in seed[:paragraphs]:
        text = (ROOT / "corpus/docs" / item["docs"][0]).read_text(encoding="utf-8")
        at = max(0, text.find(item["answers"][0]) - 400)
        qa = {"id": item["id"], "question": item["question"], "answers": []}
        data.append({"title": item["id"], "paragraphs": [{"context": text[at : at + 800], "qas": [qa]}]})
    (folder / "qa-extra").mkdir(parents=True)
    (folder / smooth.TRAIN_FILE).write_text(json.dumps({"data": data}))


def test_fit_writes_scales_that_int8_loads(tmp_path, capsys):
    from safetensors import safe_open

    from models.bert import SMOOTHING_FILE, load_qa, weights_digest

    folder = tmp_path / "small"
    shutil.copytree(SMALL_DIR, folder)
    (folder / SMOOTHING_FILE).unlink()
    _squad_file(tmp_path / "data", 16)
    bundled = tmp_path / "data.tar.gz"  # read from a bundle, as on a machine without the folder
    assert bundle.pack(tmp_path / "data", bundled)[0] == [smooth.TRAIN_FILE]
    args = [str(folder), "--data", str(bundled), "--windows", "8", "--check", "8", "--alpha", "0.9"]
    assert smooth.main(args) == 0
    err = capsys.readouterr().err
    assert "int8 without smoothing" in err and "alpha 0.90" in err
    with safe_open(str(folder / SMOOTHING_FILE), "pt") as fh:
        assert fh.metadata()["alpha"] == "0.9"
        assert fh.metadata()["weights_sha256"] == weights_digest(folder)
        assert fh.metadata()["windows"] == "8"
        assert len(list(fh.keys())) == 2 * 4  # two feed-forward products in each of 4 layers
    (w,) = _seed_windows(1)
    logits = load_qa(folder, base_model_dir(), "int8")(w.input_ids, w.attention_mask, w.token_type_ids)
    assert logits.shape[:2] == w.input_ids.shape and np.isfinite(logits.numpy()).all()


def test_fit_skips_without_data_and_refuses_a_folder_without_a_reader(tmp_path, capsys, monkeypatch):
    from reader import bundle, train

    for module in (train, bundle):  # the default --data, absent on a fresh clone: skipped
        monkeypatch.setattr(module, "DEFAULT_DATA", tmp_path / "missing")
    assert smooth.main([str(SMALL_DIR)]) == 0
    assert "skipping: no training data" in capsys.readouterr().err
    assert smooth.main([str(SMALL_DIR), "--data", str(tmp_path / "typo")]) == 2  # one named: an error
    assert "error: --data" in capsys.readouterr().err
    _squad_file(tmp_path / "data", 2)
    assert smooth.main([str(tmp_path), "--data", str(tmp_path / "data")]) == 2
    assert "no trained reader" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse's one-line error
        smooth.main([str(SMALL_DIR), "--data", str(tmp_path / "data"), "--alpha", "1.5"])
    assert exit_info.value.code == 2 and "--alpha must be" in capsys.readouterr().err
