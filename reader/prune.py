"""Narrow a reader's feed-forward blocks: ``python -m reader.prune reader/model-small --width 1024
--out DIR``, then train DIR with the reader it came from as teacher (``reader.train --init DIR
--teacher ...``).

Each encoder layer's feed-forward block is two products, hidden -> width -> hidden, and holds two
thirds of a layer's multiply-adds. This keeps each layer's ``width`` most important neurons
(a neuron: one row of the first product and the matching column of the second) and drops the rest,
which shrinks both matrices for real. A neuron's importance is its mean absolute output over the
real tokens of training windows (SQuAD v1.1 train, never a reported article) times the length of
its column in the second product: roughly how much it moves the layer's output.

Why our own code: ``transformers`` prunes attention heads only (``prune_heads``), and
``torch.nn.utils.prune`` masks weights without making the matrices smaller, so neither saves time;
a pruning library would be a new dependency for what is a slice of two matrices per layer.

Pruning alone costs accuracy; training with the unpruned reader as teacher wins most of it back
(README, Performance: "a narrower 4-layer reader", evaluated and not shipped). The folder written
here keeps the source's calibration, which no longer fits: ``reader.train`` fits a new one after
training. Like the trainer, this skips cleanly when the training data is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reader.smooth import TRAIN_FILE, _tensors, add_data_argument, training_windows


def importance(model: Any, windows: list[Any]) -> list[Any]:
    """Per layer, each feed-forward neuron's mean |output| over real tokens times the norm of its
    column in the layer's second product (float32 tensors of the block's width)."""
    import torch

    layers = model.bert.encoder.layer
    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]
    tokens = [0]
    mask: list[Any] = [None]
    hooks = []
    for i, layer in enumerate(layers):

        def hook(_mod: Any, _args: Any, out: Any, i: int = i) -> None:
            sums[i] += (out.abs() * mask[0][..., None]).sum(dim=(0, 1))

        hooks.append(layer.intermediate.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            for w in windows:
                ids, attention, types = _tensors(w)
                mask[0] = attention.float()
                tokens[0] += int(attention.sum())
                model(input_ids=ids, attention_mask=attention, token_type_ids=types)
    finally:
        for h in hooks:
            h.remove()
    return [
        s / max(tokens[0], 1) * layer.output.dense.weight.detach().norm(dim=0)
        for s, layer in zip(sums, layers, strict=True)
    ]


def prune(model: Any, scores: list[Any], width: int) -> list[list[int]]:
    """Keep each layer's ``width`` highest-scoring feed-forward neurons, in their order; returns
    the kept indices per layer. ``model`` is changed in place (its config too)."""
    import torch

    kept = []
    for layer, score in zip(model.bert.encoder.layer, scores, strict=True):
        first, second = layer.intermediate.dense, layer.output.dense
        if not 0 < width <= first.out_features:
            raise ValueError(f"width must be between 1 and {first.out_features}")
        keep = torch.sort(torch.topk(score, width).indices).values
        narrow_first = torch.nn.Linear(first.in_features, width)
        narrow_first.weight.data = first.weight.data[keep].clone()
        narrow_first.bias.data = first.bias.data[keep].clone()
        narrow_second = torch.nn.Linear(width, second.out_features)
        narrow_second.weight.data = second.weight.data[:, keep].clone()
        narrow_second.bias.data = second.bias.data.clone()
        layer.intermediate.dense, layer.output.dense = narrow_first, narrow_second
        kept.append(keep.tolist())
    model.config.intermediate_size = width
    return kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reader.prune", description=__doc__.split("\n\n")[0])
    ap.add_argument("reader_dir", type=Path, help="a trained reader folder (reader/model-small)")
    ap.add_argument("--width", type=int, required=True, help="feed-forward neurons kept per layer")
    ap.add_argument("--out", type=Path, required=True, help="folder for the pruned reader")
    add_data_argument(ap)
    ap.add_argument("--windows", type=int, default=300, help="training windows to score neurons on")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.width < 1 or args.windows < 1:
        ap.error("--width and --windows must be at least 1")
    if args.out.resolve() == args.reader_dir.resolve():
        ap.error("--out must be another folder: the source's weights are its teacher")
    from reader.bundle import run_on_data

    return run_on_data(args, _run)


def _run(args: argparse.Namespace) -> int:
    train = args.data / TRAIN_FILE
    if not train.exists():
        from reader.bundle import no_data

        return no_data(args, train)
    meta_path = args.reader_dir / "reader.json"
    if not meta_path.exists() or "base" in json.loads(meta_path.read_text()):
        print(f"error: {args.reader_dir} is not a reader in the shipped format", file=sys.stderr)
        return 2
    from models.bert import load_tokenizer
    from reader.qa_model import base_model_dir, load_model, save_model

    model, meta = load_model(args.reader_dir)
    full = model.config.intermediate_size
    if args.width > full:
        print(f"error: --width {args.width} is wider than the reader's {full}", file=sys.stderr)
        return 2
    windows = training_windows(train, args.windows, args.seed, load_tokenizer(base_model_dir()), meta)
    print(f"scoring {full} neurons per layer on {len(windows)} training windows", file=sys.stderr)
    prune(model, importance(model, windows), args.width)
    extra = {k: v for k, v in meta.items() if k != "conflict_share"}  # fitted to other weights
    extra["pruned"] = {
        "from": str(args.reader_dir),
        "width": args.width,
        "of": full,
        "windows": len(windows),
        "seed": args.seed,
        "data": "SQuAD v1.1 train",
    }
    save_model(model, args.out, extra)
    print(f"wrote {args.out}: feed-forward width {full} -> {args.width}", file=sys.stderr)
    print(
        f"next: python -m reader.train --init {args.out} --teacher {args.reader_dir} --out DIR",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
