"""The question's embedding on ONNX Runtime: a dozen tokens in about 5 ms instead of 12.

A question is a dozen tokens, so embedding it in torch eager is nearly all per-operator cost:
a hundred-odd small operators dispatched one by one, and a hop to the model thread. ONNX
Runtime runs the same graph with its operators fused (``python -m bench.onnx_compare``: 3.5 ms
against 13.2 ms for one seed question, the same vectors to cosine 0.99999). Passages stay on
torch: in batches its kernels are the faster (125 passages/s in bf16 against ONNX's 38).

The graph is exported from the torch encoder once per model (``torch.onnx.export``, which needs
the ``onnx`` package) and kept in the cache folder under the model's fingerprint; later starts
only load it (about 0.15 s). One intra-op thread, on the caller's thread: a question is too
small to share out, and a second pool would fight the reader's torch threads for the cores.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class QueryRuntimeError(RuntimeError):
    """``onnx`` was asked for and cannot run here."""


def available() -> str | None:
    """None when ONNX Runtime and the exporter are importable, else what is missing."""
    missing = []
    for module in ("onnxruntime", "onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    return f"not installed: {', '.join(missing)}" if missing else None


def graph_path(model_name: str, fingerprint: str, cache: Path | None = None) -> Path:
    from models.weights import cache_dir

    return (cache or cache_dir()) / "onnx" / f"{model_name}-{fingerprint}.onnx"


def export(folder: Path, dst: Path) -> None:
    """Write ``folder``'s encoder with mean pooling and L2 norm as one ONNX graph to ``dst``.

    Written to a temporary file and renamed into place, so a reader never sees half a file
    and two processes exporting at once both end with a whole one.
    """
    from models.bert import _MODEL_THREAD, _load_encoder

    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        _MODEL_THREAD.call(_export, _load_encoder(folder, "fp32").module, Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _export(module: Any, path: Path) -> None:
    import torch

    class Pooled(torch.nn.Module):  # sentence-transformers' recipe, as models.bert.mean_pool
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            h = self.encoder(ids, mask, types)
            w = mask.unsqueeze(-1).to(h.dtype)
            v = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, dim=1, eps=1e-12)

    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {n: {0: "batch", 1: "tokens"} for n in INPUTS}
    axes["embedding"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            Pooled(module).eval(),
            (ids, ids, torch.zeros_like(ids)),
            str(path),
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency, and seconds not minutes
            opset_version=17,
            input_names=list(INPUTS),
            output_names=["embedding"],
            dynamic_axes=axes,
        )


class OnnxQueryEncoder:
    """Token ids in, L2-normalised float32 vectors out, from an exported graph."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # warnings about unused initialisers are noise here
        self.path = path
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)


def load(folder: Path, model_name: str, fingerprint: str, runtime: str = "auto") -> OnnxQueryEncoder | None:
    """The query encoder for ``folder`` on ONNX Runtime, exported first if not yet cached.

    ``runtime``: ``torch`` gives None; ``auto`` gives None (with one log line) where ONNX
    Runtime cannot run it; ``onnx`` raises ``QueryRuntimeError`` there instead.
    """
    if runtime not in RUNTIMES:
        raise QueryRuntimeError(f"unknown query runtime {runtime!r} (choose from: {', '.join(RUNTIMES)})")
    if runtime == "torch":
        return None
    path = graph_path(model_name, fingerprint)
    try:
        why = None if path.exists() else available()
        if why is None:
            if not path.exists():
                log.info("exporting the query encoder to ONNX, once: %s", path)
                export(folder, path)
            return OnnxQueryEncoder(path)
    except Exception as exc:  # an exporter or runtime failure: torch still works
        why = f"{type(exc).__name__}: {exc}"
    if runtime == "onnx":
        raise QueryRuntimeError(f"the ONNX query runtime cannot run: {why}")
    log.warning("questions embed in torch (ONNX Runtime %s)", why)
    return None
