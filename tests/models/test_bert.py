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


def test_precision_choices():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto") in ("fp32", "bf16")
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


def test_model_thread_reports_errors_to_the_caller():
    from models.bert import _MODEL_THREAD

    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _MODEL_THREAD.call(fails)
    assert _MODEL_THREAD.call(lambda: 41 + 1) == 42  # the thread lives on
