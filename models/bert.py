"""A small BERT encoder in plain torch, loaded straight from safetensors.

The embedder and the span reader both run MiniLM (a 6-layer BERT). Loading it through
``transformers`` (and ``sentence-transformers``) costs about 4 s of imports on every start;
this module needs only torch, ``tokenizers`` and ``safetensors``, so a server starts in about
half the time. Its outputs match the ``transformers`` implementation (checked by the tests).

Precision: ``fp32``, ``bf16`` (matrix products in bfloat16 under autocast, layer norms and
softmax statistics in float32), or ``auto``: bf16 where the CPU multiplies bfloat16 natively
(AMX tiles), fp32 elsewhere, since emulated bfloat16 is slower than float32.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")

# All torch work of this module (loading the weights too) runs on this one thread, in turn.
# Each forward pass already uses every core, so two at once would only fight over them. And
# OpenMP gives every thread that runs parallel work its own pool of workers; as soon as there
# are more pooled threads than cores, libgomp stops its workers spinning between tasks, and a
# forward pass takes twice as long (the reader's: 55 ms instead of 29 ms on 3 windows). Work
# around the passes (search, tokenising, decoding) still runs in the callers' threads.
#
# Forward calls that wait for the same model while it is busy go through it together, as one
# padded batch: under load, one pass for several requests instead of one each. After each pass
# the thread looks at the queue again and runs the pass that holds the call of the request that
# started first (``one_request``): a request makes two or three calls (embed its question, read,
# perhaps read again), and taking whatever had queued, round by round, held requests near their
# end behind newer ones. Under 8 clients, capped at AVX2 (python -m bench.turns, two runs, the
# old rule behind a switch since removed): p99 818 -> 699 and 898 -> 798 ms, p95 7-9 % lower,
# requests/s 1.02x (within noise).


# (future, fn or None, args, runner or None, when its request started)
_Call = tuple[Future[Any], Any, tuple[Any, ...], Any, float]

_REQUEST = threading.local()


@contextlib.contextmanager
def one_request() -> Iterator[None]:
    """Model calls made inside belong to one request, and go ahead of calls of requests that
    started later (``_ModelThread``); nested, the outermost request's start counts."""
    outer = getattr(_REQUEST, "since", None)
    if outer is None:
        _REQUEST.since = time.perf_counter()
    try:
        yield
    finally:
        if outer is None:
            _REQUEST.since = None


class _ModelThread:
    MAX_ROWS = 16  # rows (texts or windows) merged into one pass at most

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def call(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the model thread."""
        return self._submit(fn, args, None)

    def forward(self, runner: Runner, ids: Any, attention: Any, types: Any) -> Any:
        """``runner``'s output for one batch, possibly computed together with other callers'."""
        return self._submit(None, (ids, attention, types), runner)

    def _submit(self, fn: Any, args: tuple[Any, ...], runner: Any) -> Any:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="citeqa-model", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:  # called from model work: waiting would deadlock
            return fn(*args) if runner is None else runner._forward(*args)
        future: Future[Any] = Future()
        since = getattr(_REQUEST, "since", None)
        self._queue.put((future, fn, args, runner, time.perf_counter() if since is None else since))
        return future.result()

    def _loop(self) -> None:
        pending: list[_Call] = []
        while True:
            if not pending:
                pending.append(self._queue.get())
            while True:  # everything that queued meanwhile
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            group, pending = self._next(pending)
            future, fn, args, runner, _ = group[0]
            if runner is None:
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
                continue
            try:
                self._run(runner, group)
            except BaseException as exc:
                for f, *_ in group:
                    if not f.done():
                        f.set_exception(exc)

    @classmethod
    def _next(cls, pending: list[_Call]) -> tuple[list[_Call], list[_Call]]:
        """The pass to run now, and the calls left waiting: the call of the request that started
        first, with the other calls for the same model that fit beside it, oldest first."""
        pending = sorted(pending, key=lambda c: c[4])  # stable: a request's calls keep their order
        group = cls._batches(pending)[0]
        chosen = {id(c) for c in group}
        return group, [c for c in pending if id(c) not in chosen]

    @classmethod
    def _batches(cls, waiting: list[_Call]) -> list[list[_Call]]:
        """``waiting`` as passes, in its order: each model's forward calls together
        (at most ``MAX_ROWS`` rows a pass), every other call alone. Under load the queue
        interleaves models (each request embeds its question, then reads), and batching only
        neighbours ran many calls alone. Under 8 clients, capped at AVX2 (py-spy, 20 s each way),
        embedding took 11.8 ms of the model thread per request that way and 8.7 ms this way;
        requests/s stayed within the machine's noise (3 alternating runs each: 14.6 and 14.5 on
        average), as the reader takes most of the thread."""
        out: list[list[_Call]] = []
        filling: dict[int, tuple[list[_Call], int]] = {}  # each model's latest pass, its rows
        for item in waiting:
            runner = item[3]
            if runner is None:
                out.append([item])
                continue
            rows = len(item[2][0])
            held = filling.get(id(runner))
            if held is not None and held[1] + rows <= cls.MAX_ROWS:
                held[0].append(item)
                filling[id(runner)] = (held[0], held[1] + rows)
            else:
                out.append([item])
                filling[id(runner)] = (out[-1], rows)
        return out

    @staticmethod
    def _run(runner: Runner, batch: list[_Call]) -> None:
        import numpy as np

        if len(batch) == 1:
            batch[0][0].set_result(runner._forward(*batch[0][2]))
            return
        width = max(np.asarray(b[2][0]).shape[1] for b in batch)

        def stack(k: int) -> Any:
            parts = [np.asarray(b[2][k], dtype=np.int64) for b in batch]
            return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts])

        out = runner._forward(stack(0), stack(1), stack(2))
        row = 0
        for future, _, (ids, _a, _t), *_ in batch:
            n, w = np.asarray(ids).shape
            future.set_result(out[row : row + n, :w])
            row += n


_MODEL_THREAD = _ModelThread()


def resolve_precision(precision: str) -> str:
    """``auto`` becomes ``bf16`` where the CPU multiplies bfloat16 natively (AMX tiles) and the
    kernels may use them, else ``fp32``.

    This is the precision of float work (the embedder's always). Where it gives ``fp32``, ``auto``
    reads with the 4-layer student (``reader.trained.shipped_reader``), in ``int8`` where that
    reader has its int8 smoothing (``reader_precision``).
    Kernels capped below AVX-512 (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``: how the
    benchmark emulates an AVX2-only CPU) count as no AMX, since bf16 would then be emulated.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (choose from: {', '.join(PRECISIONS)})")
    if precision != "auto":
        return precision
    return "bf16" if _native_amx() else "fp32"


def _native_amx() -> bool:
    """AMX tiles on this CPU, and kernels not capped below them."""
    import os

    import torch

    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    capped = not torch.backends.cpu.get_cpu_capability().startswith("AVX512") or (
        isa != "ALL" and "AMX" not in isa
    )
    return amx is not None and amx() and not capped


def int8_kernels() -> bool:
    """Whether this torch has the x86 int8 kernels (FBGEMM or oneDNN) that ``int8`` runs on."""
    import platform

    import torch

    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return x86 and bool({"fbgemm", "onednn"} & set(torch.backends.quantized.supported_engines))


def int8_engine() -> str:
    """Whose int8 kernels run ``int8``: oneDNN's where AMX is native (its AMX-INT8 kernels; the
    AMX figures were measured with them), else FBGEMM's. On a 2-core Intel Xeon without AMX
    (``python -m bench.forward --compare engines --reader-dir reader/model-small``), FBGEMM
    took the 4-layer reader's forward pass from 38.7 to 28.8 ms with AVX-512 VNNI and from
    45.4 to 42.1 ms capped at AVX2; the logits differ by 0.017 on average (rounding of the
    activations' scales). ``CITEQA_INT8_ENGINE`` (``fbgemm`` or ``onednn``) names one outright."""
    import os

    import torch

    engines = torch.backends.quantized.supported_engines
    named = os.environ.get("CITEQA_INT8_ENGINE", "auto").strip().lower() or "auto"
    if named == "auto":
        return "fbgemm" if "fbgemm" in engines and not _native_amx() else "onednn"
    if named not in ("fbgemm", "onednn"):
        raise ValueError(f"CITEQA_INT8_ENGINE={named!r}: choose auto, fbgemm or onednn")
    if named not in engines:
        raise ValueError(f"CITEQA_INT8_ENGINE={named}: this torch has no {named} kernels")
    return named


def reader_precision(precision: str, folder: Path) -> str:
    """What the span reader in ``folder`` runs in. As ``resolve_precision``, except that where
    ``auto`` gives ``fp32``, a reader with its int8 smoothing fitted (``SMOOTHING_FILE``, from
    ``python -m reader.smooth``) runs in ``int8``: smoothed, both shipped readers keep their fp32
    accuracy within the rule ``auto`` follows (``reader/model-small/README.md``)."""
    resolved = resolve_precision(precision)
    if precision == "auto" and resolved == "fp32" and int8_kernels() and fitted_smoothing(folder):
        return "int8"
    return resolved


def is_plain_bert(folder: Path) -> bool:
    """A folder this module can run: a BERT config and safetensors weights."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        config.get("model_type") == "bert"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act", "gelu") == "gelu"
        and (folder / "model.safetensors").exists()
        and (folder / "tokenizer.json").exists()
    )


def _modules() -> Any:
    """The torch classes, built on first use so that importing this module stays cheap."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Embeddings(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
            self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
            self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

        def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            pos = torch.arange(ids.shape[1], device=ids.device)
            x = (
                self.word_embeddings(ids)
                + self.position_embeddings(pos)[None]
                + self.token_type_embeddings(types)
            )
            return self.LayerNorm(x)

    class Dense(nn.Module):  # "dense" + "LayerNorm" after a residual, as BERT names them
        def __init__(self, n_in: int, n_out: int, eps: float) -> None:
            super().__init__()
            self.dense = nn.Linear(n_in, n_out)
            self.LayerNorm = nn.LayerNorm(n_out, eps=eps)

        def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
            return self.LayerNorm(self.dense(x) + residual)

    class SelfAttention(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            h = c["hidden_size"]
            self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    class Attention(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.heads = c["num_attention_heads"]
            self.self = SelfAttention(c)
            self.output = Dense(c["hidden_size"], c["hidden_size"], c["layer_norm_eps"])

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, s, h = x.shape

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(b, s, self.heads, h // self.heads).transpose(1, 2)

            qkv = getattr(self.self, "qkv", None)  # fused by Runner: one product for all three
            if qkv is not None:
                q, k, v = qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
            else:
                q, k, v = split(self.self.query(x)), split(self.self.key(x)), split(self.self.value(x))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.output(a.transpose(1, 2).reshape(b, s, h), x)

    class Intermediate(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    class Layer(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.attention = Attention(c)
            self.intermediate = Intermediate(c)
            self.output = Dense(c["intermediate_size"], c["hidden_size"], c["layer_norm_eps"])

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            x = self.attention(x, mask)
            return self.output(F.gelu(self.intermediate.dense(x)), x)

    class Encoder(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.layer = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))

    class Bert(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.embeddings = Embeddings(c)
            self.encoder = Encoder(c)

        def forward(self, ids: torch.Tensor, attention: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            x = self.embeddings(ids, types)
            mask = attention[:, None, None, :].bool()  # keys a token may attend to
            for layer in self.encoder.layer:
                x = layer(x, mask)
            return x

    class QA(nn.Module):
        def __init__(self, c: dict[str, Any]) -> None:
            super().__init__()
            self.bert = Bert(c)
            self.qa_outputs = nn.Linear(c["hidden_size"], 2)

        def forward(self, ids: torch.Tensor, attention: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(ids, attention, types).float()
            with torch.autocast("cpu", enabled=False):  # the span scores stay in float32
                return self.qa_outputs(hidden)  # (batch, seq, [start, end])

    return Bert, QA


class Runner:
    """Runs a loaded module under the chosen precision, on every core, without autograd."""

    def __init__(
        self,
        module: Any,
        precision: str,
        fuse: bool = True,
        smoothing: dict[str, Any] | None = None,
        engine: str | None = None,
    ) -> None:
        import torch

        self.module = module.eval()
        self.precision = resolve_precision(precision)
        encoder = getattr(module, "bert", module).encoder
        if fuse:  # off only to measure what fusing buys (python -m bench.forward)
            _fuse_qkv(encoder)
        if self.precision == "bf16":  # the encoder's matrices once, not on every call
            for layer in encoder.layer:
                for m in layer.modules():
                    if isinstance(m, torch.nn.Linear):
                        m.to(torch.bfloat16)
        elif self.precision == "int8":
            if smoothing is not None:
                smooth_for_int8(encoder, smoothing)
            _quantise_int8(encoder, engine)  # engine: int8_engine() unless one is named

    def __call__(self, ids: Any, attention: Any, types: Any) -> Any:
        """The module's output for a batch (float32 tensor), computed on the model thread."""
        return _MODEL_THREAD.forward(self, ids, attention, types)

    # Rows of one batch are padded to its longest. When lengths differ (a focused passage beside
    # a whole one, the short last window of a long passage, requests merged under load), rows
    # run in groups of similar length instead: padding is arithmetic thrown away, and one more
    # pass costs less than a third of a row's worth of it.
    GROUP_RATIO = 0.7

    def _forward(self, ids: Any, attention: Any, types: Any) -> Any:
        import numpy as np

        ids, attention, types = (np.asarray(a, dtype=np.int64) for a in (ids, attention, types))
        n, width = ids.shape
        lengths = width - np.argmax(attention[:, ::-1] != 0, axis=1)  # right padding: last kept + 1
        lengths[attention.sum(axis=1) == 0] = 1
        order = np.argsort(-lengths, kind="stable")
        groups: list[list[int]] = []
        for i in order:
            if groups and lengths[i] >= self.GROUP_RATIO * lengths[groups[-1][0]]:
                groups[-1].append(int(i))
            else:
                groups.append([int(i)])
        if len(groups) == 1:
            return self._pass(ids, attention, types)
        out = None
        for g in groups:
            w = int(lengths[g[0]])
            part = self._pass(ids[g, :w], attention[g, :w], types[g, :w])
            if out is None:
                out = part.new_zeros((n, width, *part.shape[2:]))
            out[g, :w] = part
        return out

    def _pass(self, ids: Any, attention: Any, types: Any) -> Any:
        import contextlib

        import numpy as np
        import torch

        cast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if self.precision == "bf16"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), cast:
            out = self.module(
                torch.from_numpy(np.ascontiguousarray(ids)),
                torch.from_numpy(np.ascontiguousarray(attention)),
                torch.from_numpy(np.ascontiguousarray(types)),
            )
        return out.float()


def _fuse_qkv(encoder: Any) -> None:
    """Each layer's query, key and value maps as one (h -> 3h) linear map: the same products,
    one call of a 3x wider matrix instead of three, which the kernels run faster (``python -m
    bench.forward`` times the reader's forward pass both ways). Done after loading, so the weight
    files keep BERT's names."""
    import torch

    for layer in encoder.layer:
        s = layer.attention.self
        with _no_initial_weights():  # both are copied in below
            fused = torch.nn.Linear(s.query.in_features, 3 * s.query.out_features, dtype=s.query.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([s.query.weight, s.key.weight, s.value.weight]))
            fused.bias.copy_(torch.cat([s.query.bias, s.key.bias, s.value.bias]))
        s.qkv = fused
        del s.query, s.key, s.value


SMOOTHING_FILE = "int8-smoothing.safetensors"  # written by python -m reader.smooth


def weights_digest(folder: Path) -> str:
    """SHA-256 of a reader's ``model.safetensors``: what its int8 smoothing was fitted to."""
    import hashlib

    digest = hashlib.sha256()
    with (folder / "model.safetensors").open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fitted_smoothing(folder: Path) -> Path | None:
    """``folder``'s int8 smoothing file where it was fitted to the weights beside it, else None.

    Scales fitted to other weights would move int8 further from fp32, not nearer: a folder whose
    weights were replaced or copied in by hand is read without them (and ``auto`` then reads it
    in fp32), with a warning."""
    path = folder / SMOOTHING_FILE
    if not path.exists():
        return None
    files = (folder / "model.safetensors").stat(), path.stat()
    return _fitted_smoothing(str(path), *((f.st_size, f.st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=8)
def _fitted_smoothing(path: str, *_stats: tuple[int, int]) -> Path | None:
    # hashing the weights (15-21 MB) takes 12-23 ms: once per folder and pair of files (their
    # sizes and modification times key the cache), not on every call
    from safetensors import safe_open

    smoothing = Path(path)
    with safe_open(path, "pt") as fh:
        fitted_to = (fh.metadata() or {}).get("weights_sha256")
    if fitted_to == weights_digest(smoothing.parent):
        return smoothing
    log.warning(
        "%s was fitted to other weights than %s; int8 runs without it (python -m reader.smooth %s refits it)",
        smoothing,
        smoothing.parent / "model.safetensors",
        smoothing.parent,
    )
    return None


def _feed_forward(encoder: Any) -> dict[str, Any]:
    """Each layer's two feed-forward blocks by smoothing key; each holds its product as ``dense``."""
    return {
        f"layer.{i}.{key}": holder
        for i, layer in enumerate(encoder.layer)
        for key, holder in (("intermediate", layer.intermediate), ("output", layer.output))
    }


def smoothed_products(encoder: Any) -> dict[str, Any]:
    """The linear maps int8 smoothing rescales: each layer's two feed-forward products."""
    return {key: getattr(h.dense, "linear", h.dense) for key, h in _feed_forward(encoder).items()}


def smooth_for_int8(encoder: Any, scales: dict[str, Any]) -> None:
    """SmoothQuant before int8 (``reader/smooth.py`` says why and fits ``scales``): each listed
    product's weight column ``j`` times ``scales[key][j]``, its input channel ``j`` divided by it.
    The same product in exact arithmetic, one elementwise multiply more per product; the input's
    range, which dynamic int8 covers with one scale, loses its outlier channels."""
    import torch

    class Smoothed(torch.nn.Module):
        inverse: torch.Tensor

        def __init__(self, inverse: torch.Tensor, linear: torch.nn.Linear) -> None:
            super().__init__()
            self.register_buffer("inverse", inverse)
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x * self.inverse)

    blocks = _feed_forward(encoder)
    if set(scales) != set(blocks):
        raise ValueError(f"int8 smoothing does not fit this model: {sorted(set(scales) ^ set(blocks))}")
    for key, holder in blocks.items():
        linear = holder.dense
        s = scales[key].to(linear.weight.dtype)
        with torch.no_grad():
            linear.weight.mul_(s)
        holder.dense = Smoothed(1 / s, linear)


def _quantise_int8(encoder: Any, engine: str | None = None) -> None:
    """The encoder's linear layers as int8: weights per output channel in 7 bits, activations
    quantised from each call's own range (dynamic, nothing to calibrate) in 8 bits.

    Only the transformer layers' matrix products change: embeddings, layer norms, softmax and the
    span head stay in float32, the parts where int8 is known to cost accuracy. CPUs without VNNI
    multiply u8 activations by s8 weights in pairs summed into 16 bits, which saturates for
    large products. torch's usual answer (``reduce_range``) cuts activations to 7 bits; cutting
    the weights to 7 bits (per channel) instead keeps every pair sum in range (255 * 63 * 2 <
    32767) and loses less. Chosen on the tuning articles, reader mode, capped at AVX2: F1 77.68
    in fp32, 76.27 with 7-bit activations, 77.35 with 7-bit weights, at the same speed. On the
    validation articles (``CITEQA_PRECISION=int8 citeqa eval <SQuAD> --mode reader --split
    validation``, capped at AVX2) that is 73.94 against fp32's 74.73; the 7-bit activations gave
    73.44. Kernels come from FBGEMM, or oneDNN where AMX is native (``int8_engine``); they honour
    ``FBGEMM_ENABLE_INSTRUCTIONS`` and ``ONEDNN_MAX_CPU_ISA`` (how the benchmark sees an AVX2-only
    CPU on a newer one).
    A reader with ``SMOOTHING_FILE`` gets ``smooth_for_int8`` first (``_load_qa``), which brings
    the 4-layer reader from 73.53 to 74.61 F1 there (fp32: 74.65).
    """
    import warnings

    import torch
    import torch.ao.nn.quantized.dynamic as nnqd
    from torch.ao.quantization import (
        PerChannelMinMaxObserver,
        QConfig,
        default_dynamic_quant_observer,
        quantize_dynamic,
    )

    class Int8Linear(nnqd.Linear):  # type: ignore[misc]
        """torch's dynamic int8 linear with full 8-bit activations (its forward fixes 7)."""

        def forward(self, x: Any) -> Any:
            return torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=False
            ).to(x.dtype)

    weights = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-63, quant_max=63
    )
    qconfig = QConfig(activation=default_dynamic_quant_observer, weight=weights)
    torch.backends.quantized.engine = engine or int8_engine()  # packs the weights for its kernels
    with warnings.catch_warnings():
        # torch.ao's eager quantisation is deprecated in favour of torchao, whose int8 CPU path
        # is built for torch.compile; the torch pinned here still ships these kernels.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(
            encoder, {torch.nn.Linear: qconfig}, mapping={torch.nn.Linear: Int8Linear}, inplace=True
        )


def _config(folder: Path) -> dict[str, Any]:
    c: dict[str, Any] = {"layer_norm_eps": 1e-12, "type_vocab_size": 2}
    c.update(json.loads((folder / "config.json").read_text()))
    return c


def load_encoder(folder: Path, precision: str = "auto") -> Runner:
    """A BERT encoder from a sentence-transformers or transformers folder; returns hidden states."""
    return _MODEL_THREAD.call(_load_encoder, folder, precision)


def _load_encoder(folder: Path, precision: str) -> Runner:
    from safetensors.torch import load_file

    bert_cls, _ = _modules()
    state = load_file(str(folder / "model.safetensors"))
    state = {k.removeprefix("bert."): v.float() for k, v in state.items()}
    state = {
        k: v
        for k, v in state.items()
        if k.startswith(("embeddings.", "encoder.")) and "position_ids" not in k
    }
    return Runner(_holding(bert_cls, _config(folder), state), precision)


def _holding(cls: Any, config: dict[str, Any], state: dict[str, Any]) -> Any:
    """``cls(config)`` holding the tensors of ``state``, which must name every weight."""
    with _no_initial_weights():
        model = cls(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model


@contextlib.contextmanager
def _no_initial_weights() -> Iterator[None]:
    """Layers built meanwhile skip drawing random initial weights, which loaded ones replace
    anyway: drawing them took 0.13-0.21 s per model, a tenth of the server's start-up. Building
    on torch's meta device would skip it too, but its first use costs about 2 s. So, as
    ``transformers`` does while loading (``no_init_weights``), torch's initialisers do nothing
    for that moment (models are built one at a time: on the model thread, or by the offline
    commands such as ``reader.smooth``)."""
    import torch

    names = ("normal_", "uniform_", "kaiming_uniform_", "zeros_", "ones_")
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *_, **__: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def load_qa(
    folder: Path, base: Path, precision: str = "auto", fuse: bool = True, engine: str | None = None
) -> Runner:
    """The span reader: its own weights plus the word embeddings of ``base`` (not shipped twice).
    ``fuse`` and ``engine`` (int8 kernels) are for ``python -m bench.forward`` to compare."""
    return _MODEL_THREAD.call(_load_qa, folder, base, precision, fuse, engine)


def _load_qa(
    folder: Path, base: Path, precision: str, fuse: bool = True, engine: str | None = None
) -> Runner:
    smoothing = None
    fitted = fitted_smoothing(folder) if resolve_precision(precision) == "int8" else None
    if fitted is not None:
        from safetensors.torch import load_file

        smoothing = load_file(str(fitted))
    return Runner(qa_module(folder, base), precision, fuse, smoothing, engine)


def qa_module(folder: Path, base: Path) -> Any:
    """The span reader as a float32 torch module: ``folder``'s weights, ``base``'s word embeddings."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    _, qa_cls = _modules()
    state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    with safe_open(str(base / "model.safetensors"), "pt") as fh:
        key = next(k for k in fh.keys() if k.endswith("embeddings.word_embeddings.weight"))  # noqa: SIM118
        state["bert.embeddings.word_embeddings.weight"] = fh.get_tensor(key).float()
    state = {k: v for k, v in state.items() if "position_ids" not in k}
    return _holding(qa_cls, _config(folder), state)


def load_tokenizer(folder: Path) -> Any:
    """The fast tokenizer of a model folder (``tokenizer.json``), with no padding or truncation set."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def mean_pool(hidden: Any, attention: Any) -> Any:
    """Mean of the token vectors a mask keeps, L2-normalised (sentence-transformers' recipe)."""
    import numpy as np

    h = hidden.numpy() if hasattr(hidden, "numpy") else hidden
    w = np.asarray(attention, dtype=np.float32)[:, :, None]
    v = (h * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
