"""A question embedded on ONNX Runtime gets the vector torch gives it; without ONNX, torch still answers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from index import Embedder
from models import onnx_query

QUESTIONS = ["When did Kim Jong Un first visit Vietnam?", "Who?", "Ünïcode café — naïve 東京 " * 30]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CITEQA_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_questions_match_torch_and_the_graph_is_exported_once(cache):
    e = Embedder(precision="fp32")
    assert e.query_backend == "onnxruntime-fp32" and e.backend == "native-fp32"
    graphs = list((cache / "onnx").glob("*.onnx"))
    assert len(graphs) == 1 and graphs[0].stat().st_mode & 0o044 == 0o044  # readable by others
    torch_only = Embedder(precision="fp32", query_runtime="torch")
    assert torch_only.query_backend == "native-fp32"
    for n in (1, 3):  # one question, and a few of different lengths (padded)
        got, want = e.encode_queries(QUESTIONS[:n]), torch_only.encode_queries(QUESTIONS[:n])
        assert got.shape == want.shape == (n, 384) and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-5
    stamp = graphs[0].stat().st_mtime_ns
    assert Embedder().query_backend == "onnxruntime-fp32"  # a second start loads, not exports
    assert graphs[0].stat().st_mtime_ns == stamp


def test_passages_and_many_questions_stay_on_torch(cache):
    e = Embedder()
    e.warm_up()
    called = []
    e._onnx = lambda *a: called.append(a)  # would break the vectors if reached
    one = ["a single passage about the river"]
    assert e.encode(one).shape == (1, 384) and not called  # the same path as the whole collection
    many = [f"question {i} about the river?" for i in range(Embedder.SHORT_TEXTS + 1)]
    assert e.encode_queries(many).shape == (len(many), 384) and not called
    assert e.encode_queries([]).shape == (0, 384) and not called
    e.encode_queries(one)
    assert len(called) == 1


def test_without_onnx_runtime_auto_falls_back_and_onnx_says_why(cache, monkeypatch, caplog):
    monkeypatch.setattr(onnx_query, "available", lambda: "not installed: onnxruntime")
    with caplog.at_level(logging.WARNING, logger="models.onnx_query"):
        e = Embedder()
        assert e.query_backend == e.backend
    assert "not installed: onnxruntime" in caplog.text
    assert e.encode_queries(QUESTIONS[:1]).shape == (1, 384)
    with pytest.raises(onnx_query.QueryRuntimeError, match="not installed: onnxruntime"):
        Embedder(query_runtime="onnx").warm_up()


def test_an_unusable_cached_graph_falls_back_to_torch(cache, caplog):
    path = onnx_query.graph_path(Embedder().name, Embedder().fingerprint, cache)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a graph")
    with caplog.at_level(logging.WARNING, logger="models.onnx_query"):
        assert Embedder().query_backend != "onnxruntime-fp32"
    assert "questions embed in torch" in caplog.text


def test_unknown_runtime_is_refused():
    with pytest.raises(onnx_query.QueryRuntimeError, match="choose from: auto, onnx, torch"):
        Embedder(query_runtime="tensorflow")


def test_onnx_needs_a_model_it_can_export(tmp_path, cache):
    import shutil

    from index.embedder import default_model_path

    folder = tmp_path / "model"
    shutil.copytree(default_model_path(), folder)
    (folder / "1_Pooling" / "config.json").write_text(
        '{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}'
    )
    assert Embedder(folder).query_backend == "sentence-transformers"
    with pytest.raises(onnx_query.QueryRuntimeError, match="mean pooling only"):
        Embedder(folder, query_runtime="onnx").warm_up()
