"""Fit a reader's int8 smoothing: ``python -m reader.smooth reader/model-small``.

Dynamic int8 quantises each matrix product's input with one scale for the whole input. In the
feed-forward blocks a few channels carry values many times larger than the rest, so that scale is
coarse for every other channel: capped at AVX2, int8 cost the 4-layer reader 1.1 F1 on the
validation articles, and measured one product at a time on training questions, the two
feed-forward products of each layer were where its logits moved most. SmoothQuant (Xiao et al.,
2023) moves that range into the weights: input channel ``j`` is divided by ``s_j`` and the weight
column ``j`` multiplied by it, which leaves the product unchanged in exact arithmetic, with
``s_j = max|x_j| ** alpha / max|W_j| ** (1 - alpha)``. Weights are quantised per output channel,
so they absorb the range better than the input does.

This program measures ``max|x_j|`` on windows of SQuAD v1.1 train questions (never the articles
that are reported), tries each ``alpha`` of a grid, keeps the one whose int8 logits come nearest
the float32 ones on other training windows, and writes ``int8-smoothing.safetensors`` into the
reader's folder, with the SHA-256 of the weights it was fitted to. ``models.bert`` applies it
whenever that reader runs in int8, and only beside those weights (``fitted_smoothing``). Like the
trainer, it skips cleanly when the training data is absent.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN_FILE = "qa-extra/squad-v1.1-train.json"
ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9)


def add_data_argument(ap: argparse.ArgumentParser) -> None:
    """``--data``: where the SQuAD train windows come from (this module's and ``reader.prune``'s)."""
    from reader.train import DEFAULT_DATA

    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder holding qa-extra/, or a bundle of it (python -m reader.bundle)",
    )


def training_windows(path: Path, n: int, seed: int, tokenizer: Any, meta: dict[str, Any]) -> list[Any]:
    """``n`` reader windows, each a random training paragraph with its first question."""
    from reader.qa_model import Windows

    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    pairs = [(p["qas"][0]["question"], p["context"]) for a in data for p in a["paragraphs"] if p["qas"]]
    random.Random(seed).shuffle(pairs)
    return [Windows(tokenizer, q, [c], meta["max_len"], meta["stride"]) for q, c in pairs[:n]]


def _tensors(w: Any) -> tuple[Any, ...]:
    import torch

    return tuple(
        torch.from_numpy(np.asarray(a, dtype=np.int64))
        for a in (w.input_ids, w.attention_mask, w.token_type_ids)
    )


def input_ranges(module: Any, windows: list[Any]) -> dict[str, Any]:
    """Each feed-forward product's largest absolute input per channel, over ``windows`` (float32)."""
    import torch

    from models.bert import smoothed_products

    ranges: dict[str, Any] = {}
    hooks = []
    for key, linear in smoothed_products(module.bert.encoder).items():

        def hook(_mod: Any, args: tuple[Any, ...], key: str = key) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)
            ranges[key] = torch.maximum(ranges[key], x) if key in ranges else x

        hooks.append(linear.register_forward_pre_hook(hook))
    with torch.inference_mode():
        for w in windows:
            module(*_tensors(w))
    for h in hooks:
        h.remove()
    return ranges


def scales_for(module: Any, ranges: dict[str, Any], alpha: float) -> dict[str, Any]:
    """SmoothQuant's per-channel factors for one ``alpha``."""
    from models.bert import smoothed_products

    out = {}
    for key, linear in smoothed_products(module.bert.encoder).items():
        x = ranges[key].float().clamp(min=1e-5)
        w = linear.weight.detach().abs().amax(0).clamp(min=1e-5)
        out[key] = (x.pow(alpha) / w.pow(1 - alpha)).contiguous()
    return out


def logit_error(reference: list[Any], module: Any, windows: list[Any]) -> float:
    """Mean absolute difference of the start/end logits from ``reference``, over real tokens."""
    import torch

    total = 0.0
    with torch.inference_mode():
        for ref, w in zip(reference, windows, strict=True):
            mask = torch.from_numpy(np.asarray(w.attention_mask)).bool()
            total += float((module(*_tensors(w)).float() - ref).abs()[mask].mean())
    return total / len(windows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reader.smooth", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "reader_dir", type=Path, help="a trained reader folder (reader/model, reader/model-small)"
    )
    add_data_argument(ap)
    ap.add_argument("--windows", type=int, default=300, help="training windows to measure ranges on")
    ap.add_argument("--check", type=int, default=300, help="other training windows to choose alpha on")
    ap.add_argument("--alpha", type=float, action="append", help="try only these (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.windows < 1 or args.check < 1:
        ap.error("--windows and --check must be at least 1")
    if any(not 0 < a <= 1 for a in args.alpha or ()):
        ap.error("--alpha must be above 0 and at most 1")
    from reader.bundle import run_on_data

    return run_on_data(args, _run)  # --data: a folder, or a bundle (python -m reader.bundle)


def _run(args: argparse.Namespace) -> int:
    train = args.data / TRAIN_FILE
    if not train.exists():
        from reader.bundle import no_data

        return no_data(args, train)
    if not all((args.reader_dir / f).exists() for f in ("reader.json", "model.safetensors")):
        # a LoRA adapter folder (reader.train --lora) holds no model.safetensors of its own
        print(f"error: no trained reader with its own weights in {args.reader_dir}", file=sys.stderr)
        return 2
    import torch
    from safetensors.torch import save_file

    from models.bert import SMOOTHING_FILE, Runner, load_tokenizer, qa_module, smooth_for_int8, weights_digest
    from reader.qa_model import base_model_dir

    base = base_model_dir()
    meta = json.loads((args.reader_dir / "reader.json").read_text())
    tokenizer = load_tokenizer(base)
    windows = training_windows(train, args.windows + args.check, args.seed, tokenizer, meta)
    if not windows:
        print(f"skipping: no questions in {train}", file=sys.stderr)
        return 0
    cut = args.windows if len(windows) > args.windows else (len(windows) + 1) // 2
    fit, check = windows[:cut], windows[cut:] or windows  # a tiny file: check on what there is
    module = qa_module(args.reader_dir, base)
    print(f"measuring input ranges on {len(fit)} training windows", file=sys.stderr)
    ranges = input_ranges(module, fit)
    with torch.inference_mode():
        reference = [module(*_tensors(w)).float() for w in check]

    def int8(scales: dict[str, Any] | None) -> float:
        m = copy.deepcopy(module)
        if scales is not None:
            smooth_for_int8(m.bert.encoder, scales)
        return logit_error(reference, Runner(m, "int8").module, check)

    plain = int8(None)
    print(f"int8 without smoothing: mean |logit error| {plain:.4f}", file=sys.stderr)
    results = []
    for alpha in args.alpha or ALPHAS:
        err = int8(scales_for(module, ranges, alpha))
        results.append((err, alpha))
        print(f"alpha {alpha:.2f}: mean |logit error| {err:.4f}", file=sys.stderr)
    err, alpha = min(results)
    if err >= plain:
        print("no alpha beats int8 without smoothing; nothing written", file=sys.stderr)
        return 0
    out = args.reader_dir / SMOOTHING_FILE
    info = {
        "weights_sha256": weights_digest(args.reader_dir),  # models.bert.fitted_smoothing checks it
        "alpha": str(alpha),
        "windows": str(len(fit)),
        "data": "SQuAD v1.1 train",
        "logit_error_plain": f"{plain:.4f}",
        "logit_error_smoothed": f"{err:.4f}",
    }
    save_file(scales_for(module, ranges, alpha), str(out), metadata=info)
    print(f"wrote {out}: alpha {alpha}, logit error {plain:.4f} -> {err:.4f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
