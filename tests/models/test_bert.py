"""The torch-only BERT runs the bundled models exactly as transformers / sentence-transformers do."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import ChunkParams, chunk_corpus, load_corpus
from index import Embedder
from index.embedder import default_model_path
from models.bert import resolve_precision
from reader.qa_model import Windows, encode_windows, load_model, load_tokenizer
from tests.conftest import DEFAULT_CORPUS


@pytest.fixture(scope="module")
def texts() -> list[str]:
    passages = chunk_corpus(load_corpus(DEFAULT_CORPUS), ChunkParams())
    return [p.text for p in passages[:12]] + ["Who?", "", "Ünïcode café — naïve 東京 " * 80]


def test_embedder_matches_sentence_transformers(texts):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_numpy=True
    )
    fp32 = Embedder(precision="fp32")
    assert fp32.backend == "native-fp32"
    assert np.abs(fp32.encode(texts) - reference).max() < 1e-5
    bf16 = Embedder(precision="bf16").encode(texts)
    assert (bf16 * reference).sum(axis=1).min() > 0.999  # cosine to the float32 vector
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)


def test_other_model_folders_fall_back_to_sentence_transformers(tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(default_model_path(), folder)
    (folder / "1_Pooling" / "config.json").write_text(
        '{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}'
    )
    e = Embedder(folder)
    assert e.backend == "sentence-transformers"
    assert e.encode(["a question"]).shape == (1, 384)


def test_precision_choices(monkeypatch):
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("int8") == "int8"
    assert resolve_precision("auto") in ("fp32", "bf16")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # an AVX2-only CPU, emulated: no native bf16
    assert resolve_precision("auto") == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int4")


CASES = [
    ("When did the two countries establish relations?", None),
    ("what " * 100 + "?", None),  # a question clipped to 64 pieces
    ("Who?", ["Ünïcode café — naïve 東京 test.", "x", ""]),
]


@pytest.mark.parametrize("question,contexts", CASES)
def test_windows_match_the_training_tokenisation(question, contexts):
    docs = load_corpus(DEFAULT_CORPUS)
    contexts = contexts or [docs[0].text[:3000], docs[1].text[:500], docs[2].text[:5000]]
    hf = encode_windows(load_tokenizer(), question, contexts, 256, 96)
    from models.bert import load_tokenizer as fast_tokenizer

    ours = Windows(fast_tokenizer(default_model_path()), question, contexts, 256, 96)
    for key in ("input_ids", "attention_mask", "token_type_ids", "overflow_to_sample_mapping"):
        assert np.array_equal(np.asarray(hf[key]), ours[key]), key
    for w in range(len(ours)):
        assert hf.sequence_ids(w) == ours.sequence_ids(w)
        ctx = [i for i, s in enumerate(ours.sequence_ids(w)) if s == 1]
        assert np.array_equal(np.asarray(hf["offset_mapping"][w])[ctx], ours["offset_mapping"][w][ctx])


def test_reader_logits_match_transformers():
    import torch

    from models.bert import load_qa
    from reader.qa_model import MODEL_DIR, base_model_dir

    docs = load_corpus(DEFAULT_CORPUS)
    enc = encode_windows(
        load_tokenizer(), "When was it founded?", [docs[0].text[:2500], docs[2].text[:400]], 256, 96
    )
    model, _ = load_model()
    with torch.inference_mode():
        ref = model(
            **{k: torch.from_numpy(enc[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        )
    mask = enc["attention_mask"].astype(bool)
    for precision, tolerance in (("fp32", 1e-3), ("bf16", 0.5)):
        runner = load_qa(MODEL_DIR, base_model_dir(), precision)
        out = runner(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).numpy()
        assert np.abs(out[:, :, 0] - ref.start_logits.numpy())[mask].max() < tolerance, precision
        assert np.abs(out[:, :, 1] - ref.end_logits.numpy())[mask].max() < tolerance, precision


def test_int8_quantises_only_the_reader_encoder_layers_and_stays_close(texts):
    """int8: the reader's transformer layers' linear maps are int8, its span head and embeddings
    are not, and its logits stay close to float32's (the accuracy cost is measured by
    bench.variants). The embedder stays as auto chooses."""
    import torch

    from models.bert import load_qa
    from reader.qa_model import MODEL_DIR, base_model_dir

    runner = load_qa(MODEL_DIR, base_model_dir(), "int8")
    int8_linear = torch.ao.nn.quantized.dynamic.Linear
    linears = [
        m for m in runner.module.bert.encoder.modules() if isinstance(m, (torch.nn.Linear, int8_linear))
    ]
    # 6 layers x 4: query, key and value fused into one, attention output, and the two feed-forward maps
    assert len(linears) == 24 and all(isinstance(m, int8_linear) for m in linears)
    assert type(runner.module.qa_outputs) is torch.nn.Linear
    assert runner.module.bert.embeddings.word_embeddings.weight.dtype == torch.float32

    # 7-bit weights: a u8 x s8 pair sum stays within 16 bits on CPUs without VNNI ...
    first = linears[0]
    assert int(first.weight().int_repr().abs().max()) <= 63
    # ... so activations keep all 8 bits, closer to float32 than torch's 7-bit default
    x = torch.randn(16, first.in_features, generator=torch.Generator().manual_seed(0))
    exact = torch.nn.functional.linear(x, first.weight().dequantize(), first.bias())
    stock = int8_linear.forward(first, x)  # the same weights, activations cut to 7 bits
    assert (first(x) - exact).abs().mean() < (stock - exact).abs().mean()

    tok = load_tokenizer()
    enc = encode_windows(tok, "When did relations decline?", texts[:3], 256, 96)
    args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    ref = load_qa(MODEL_DIR, base_model_dir(), "fp32")(*args).numpy()
    out = runner(*args).numpy()
    mask = enc["attention_mask"].astype(bool)
    corr = np.corrcoef(out[mask].ravel(), ref[mask].ravel())[0, 1]
    assert corr > 0.98, corr

    assert Embedder(precision="int8").precision == "auto"  # int8 is the reader's only


def test_rows_of_different_lengths_run_in_groups_with_the_same_result():
    """A batch of a long and short windows is computed in length groups, not padded to the
    longest, and every row's logits are those of the padded batch."""
    from models.bert import load_qa
    from models.bert import load_tokenizer as raw_tokenizer
    from reader.qa_model import MODEL_DIR, Windows, base_model_dir

    docs = load_corpus(DEFAULT_CORPUS)
    enc = Windows(raw_tokenizer(base_model_dir()), "When was it founded?",
                  [docs[0].text[:1500], "A short one.", docs[1].text[:300]], 256, 96)  # fmt: skip
    lengths = enc.attention_mask.sum(axis=1)
    assert lengths.max() > 2 * lengths.min()
    runner = load_qa(MODEL_DIR, base_model_dir(), "fp32")
    calls = []
    passes = runner._pass
    runner._pass = lambda *a: calls.append(a[0].shape) or passes(*a)  # type: ignore[method-assign]
    grouped = runner._forward(enc.input_ids, enc.attention_mask, enc.token_type_ids).numpy()
    assert len(calls) > 1 and sum(r * w for r, w in calls) < enc.input_ids.size
    padded = passes(enc.input_ids, enc.attention_mask, enc.token_type_ids).numpy()
    mask = enc.attention_mask.astype(bool)
    assert np.abs(grouped - padded)[mask].max() < 1e-3


def test_concurrent_calls_share_passes_and_get_their_own_rows(texts):
    """Callers that wait on the model together are batched; each gets exactly its own output."""
    from concurrent.futures import ThreadPoolExecutor

    e = Embedder(precision="fp32")
    alone = [e.encode([t]) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda t: e.encode([t]), texts * 3))
    for i, v in enumerate(together):
        assert v.shape == (1, 384)
        assert np.abs(v - alone[i % len(texts)]).max() < 1e-4


def test_waiting_calls_are_grouped_by_model_in_order_of_arrival():
    """Under load the queue interleaves the embedder's and the reader's calls; each model's calls
    that waited together become one pass (at most MAX_ROWS rows), other calls run alone."""
    from concurrent.futures import Future

    from models.bert import _ModelThread

    embedder, reader = object(), object()

    def forward(runner: object, rows: int, name: str) -> tuple[object, ...]:
        return (Future(), None, ([name] * rows,), runner, 0.0)

    job = (Future(), print, ("job",), None, 0.0)
    waiting = [forward(embedder, 1, "e1"), forward(reader, 3, "r1"), forward(embedder, 1, "e2"), job,
               forward(reader, 6, "r2"), forward(reader, 3, "r3"), forward(reader, 6, "r4"),
               forward(embedder, 20, "e3")]  # fmt: skip
    groups = _ModelThread._batches(waiting)  # type: ignore[arg-type]
    passes = [[item[2][0][0] if item[3] else "job" for item in group] for group in groups]
    assert passes == [["e1", "e2"], ["r1", "r2", "r3"], ["job"], ["r4"], ["e3"]]
    assert _ModelThread.MAX_ROWS == 16  # r1 + r2 + r3 = 12 rows; r4 would make 18


def test_the_oldest_request_goes_first_with_its_models_calls_beside_it():
    """After each pass the thread runs the pass holding the call of the request that started
    first; calls of the same model that fit join it, oldest first, and the rest wait."""
    from concurrent.futures import Future

    from models.bert import _ModelThread

    embedder, reader = object(), object()

    def forward(runner: object, rows: int, name: str, since: float) -> tuple[object, ...]:
        return (Future(), None, ([name] * rows,), runner, since)

    # new requests' embeddings arrived first; then two older requests' reads
    pending = [forward(embedder, 1, "new-e1", 5.0), forward(embedder, 1, "new-e2", 6.0),
               forward(reader, 6, "old-r1", 2.0), forward(reader, 6, "older-r2", 1.0),
               forward(reader, 6, "newer-r3", 4.0), (Future(), print, ("job",), None, 3.0)]  # fmt: skip
    names = []
    while pending:
        group, pending = _ModelThread._next(pending)  # type: ignore[arg-type]
        names.append([item[2][0][0] if item[3] else "job" for item in group])
    # 6 + 6 rows fit a pass, a third read of 6 would not (MAX_ROWS 16)
    assert names == [["older-r2", "old-r1"], ["job"], ["newer-r3"], ["new-e1", "new-e2"]]


def test_model_calls_of_one_request_carry_its_start():
    import threading

    from models.bert import _REQUEST, one_request

    assert getattr(_REQUEST, "since", None) is None
    with one_request():
        first = _REQUEST.since
        with one_request():  # nested: the outer request's start counts
            assert _REQUEST.since == first
        assert _REQUEST.since == first
        seen = []
        other = threading.Thread(target=lambda: seen.append(getattr(_REQUEST, "since", None)))
        other.start()
        other.join()
        assert seen == [None]  # another thread's calls are not this request's
    assert _REQUEST.since is None


def test_model_thread_reports_errors_to_the_caller():
    from models.bert import _MODEL_THREAD

    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _MODEL_THREAD.call(fails)
    assert _MODEL_THREAD.call(lambda: 41 + 1) == 42  # the thread lives on
    # model work that calls the thread again runs at once, instead of waiting on itself forever
    assert _MODEL_THREAD.call(lambda: _MODEL_THREAD.call(lambda: 6 * 7)) == 42


def test_int8_runs_on_fbgemm_unless_amx_is_native_and_both_kernels_agree(monkeypatch, texts):
    """Without AMX, int8 runs on FBGEMM's kernels (faster than oneDNN's capped at AVX2 and with
    VNNI: bench.forward --compare engines); with AMX on oneDNN's. Either way the same products,
    rounded a little apart: the logits stay within a hair of each other and close to float32's."""
    import torch

    from models.bert import int8_engine, load_qa
    from reader.qa_model import SMALL_DIR, base_model_dir

    monkeypatch.delenv("CITEQA_INT8_ENGINE", raising=False)
    monkeypatch.setattr("models.bert._native_amx", lambda: True)
    assert int8_engine() == "onednn"
    monkeypatch.setattr("models.bert._native_amx", lambda: False)
    assert int8_engine() == ("fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else "onednn")
    monkeypatch.setenv("CITEQA_INT8_ENGINE", "onednn")  # named outright
    assert int8_engine() == "onednn"
    monkeypatch.setenv("CITEQA_INT8_ENGINE", "mkl")
    with pytest.raises(ValueError, match="choose auto, fbgemm or onednn"):
        int8_engine()
    monkeypatch.delenv("CITEQA_INT8_ENGINE")

    enc = encode_windows(load_tokenizer(), "When did relations decline?", texts[:3], 256, 96)
    args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    mask = enc["attention_mask"].astype(bool)
    ref = load_qa(SMALL_DIR, base_model_dir(), "fp32")(*args).numpy()[mask]
    out = {e: load_qa(SMALL_DIR, base_model_dir(), "int8", engine=e)(*args).numpy()[mask]
           for e in ("onednn", "fbgemm")}  # fmt: skip
    assert np.abs(out["fbgemm"] - out["onednn"]).mean() < 0.05
    for e, logits in out.items():
        assert np.abs(logits - ref).mean() < 0.12, e


def test_fused_query_key_value_give_the_same_outputs():
    """Runner fuses each layer's query, key and value maps into one product; nothing else changes."""
    import torch

    from models.bert import _fuse_qkv, _modules

    config = {"vocab_size": 50, "hidden_size": 32, "max_position_embeddings": 16, "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "num_attention_heads": 4, "intermediate_size": 64,
              "num_hidden_layers": 2}  # fmt: skip
    bert_cls, _ = _modules()
    torch.manual_seed(0)
    model = bert_cls(config).eval()
    ids = torch.randint(1, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # a padded row
    with torch.no_grad():
        separate = model(ids, mask, torch.zeros_like(ids))
        _fuse_qkv(model.encoder)
        fused = model(ids, mask, torch.zeros_like(ids))
    assert all(not hasattr(layer.attention.self, "query") for layer in model.encoder.layer)
    torch.testing.assert_close(fused, separate, rtol=1e-6, atol=1e-6)
