"""Fit a reader's conflict share: ``python -m eval.conflict_share [--reader-dir DIR] [--write]``.

An answer counts against the best one only when its score is at least a share of the best's
(``service.agreement``). How close a second answer comes depends on how a reader spreads its
scores, so each reader may carry its own share (``conflict_share`` in its ``reader.json``). This
runs the agreement dev part and the seed set once each, then replays the merge at every share
of a grid (the reader's answers are kept, so only the first share costs model time), and picks
by the rule the shipped shares were picked by:

1. keep the seed set's false-conflict rate within the target (5 %);
2. then the best dev figures (conflict recall, then precision, then the lower false-conflict rate);
3. then the lowest seed false-conflict rate;
4. then the middle of the shares still tied.

The agreement test part is not used: it stays for measuring the result once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GOLD = Path(__file__).resolve().parent / "gold"
GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(15))  # 0.1 ... 0.8
TARGET = 5.0  # percent of the seed set's ordinary questions called "conflict"


class _Trial:
    """A reader with the share under trial; its reads are kept (the same question and passages
    give the same answers), so trying another share costs no model time."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.name = reader.name
        self.conflict_share: float | None = None
        self._answers: dict[tuple[Any, ...], Any] = {}

    def warm_up(self) -> None:
        self.reader.warm_up()

    def read(self, question: str, passages: Sequence[Any], top_n: int = 3, ranked: bool = False) -> Any:
        key = (question, tuple(p.passage_id for p in passages), top_n, ranked)
        if key not in self._answers:
            self._answers[key] = self.reader.read(question, passages, top_n, ranked)
        return self._answers[key]


def sweep(pipeline: Any, items: Sequence[Any], shares: Sequence[float], top_k: int = 3) -> dict[float, Any]:
    """``eval.runner.agreement_metrics`` of ``items`` through ``pipeline`` at each share."""
    from eval.runner import agreement_metrics, run_open_mode

    trial = _Trial(pipeline.reader)
    pipeline.reader = trial
    out = {}
    for share in shares:
        trial.conflict_share = share
        out[share] = agreement_metrics(run_open_mode(items, pipeline, top_k))
    return out


def choose(dev: dict[float, Any], seed: dict[float, Any], target: float = TARGET) -> tuple[float, bool]:
    """The share the rule picks (see the module's text), and whether it keeps the seed target.
    Where none does, the shares with the lowest seed rate are the ones considered."""

    def rate(s: float) -> float:
        return float(seed[s]["false_conflict_rate"] or 0.0)

    def figures(s: float) -> tuple[float, float, float]:
        m = dev[s]
        return (
            m["conflict_recall"] or 0.0,
            m["conflict_precision"] or 0.0,
            -(m["false_conflict_rate"] or 0.0),
        )

    shares = sorted(dev)
    kept = [s for s in shares if rate(s) <= target]
    pool = kept or [s for s in shares if rate(s) == min(map(rate, shares))]
    best = max(map(figures, pool))
    pool = [s for s in pool if figures(s) == best]
    pool = [s for s in pool if rate(s) == min(map(rate, pool))]
    return pool[len(pool) // 2], bool(kept)


def table(dev: dict[float, Any], seed: dict[float, Any], chosen: float) -> str:
    def cell(x: Any) -> str:
        return "—" if x is None else f"{x:.2f}"

    out = ["| share | dev precision | dev recall | dev false-conflict % | seed false-conflict % |",
           "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for s in sorted(dev):
        d = dev[s]
        mark = " ←" if s == chosen else ""
        cells = [d["conflict_precision"], d["conflict_recall"], d["false_conflict_rate"]]
        cells.append(seed[s]["false_conflict_rate"])
        out.append(f"| {s:.2f}{mark} | " + " | ".join(map(cell, cells)) + " |")
    return "\n".join(out)


def write_share(folder: Path, share: float) -> Path:
    """Set ``conflict_share`` in ``folder``'s reader.json, after its threshold."""
    path = folder / "reader.json"
    meta = json.loads(path.read_text())
    meta.pop("conflict_share", None)
    out: dict[str, Any] = {}
    for k, v in meta.items():
        out[k] = v
        if k == "threshold":
            out["conflict_share"] = share
    out.setdefault("conflict_share", share)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.conflict_share", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reader-dir", type=Path, default=None,
                    help="trained reader folder (env CITEQA_READER_DIR; default: auto's)")  # fmt: skip
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default=None,
                    help="model arithmetic (env CITEQA_PRECISION; default auto)")  # fmt: skip
    ap.add_argument("--shares", default=",".join(map(str, GRID)), help="shares to try (comma-separated)")
    ap.add_argument("--target", type=float, default=TARGET, help="seed set false-conflict rate to keep (%%)")
    ap.add_argument(
        "--json", dest="json_out", type=Path, default=None, help="write every share's figures here"
    )
    ap.add_argument(
        "--write", action="store_true", help="set the chosen share in the reader folder's reader.json"
    )
    args = ap.parse_args(argv)

    from pydantic import ValidationError

    from corpus import ChunkParams
    from eval.cli import _cached_pipeline, check_outputs, corpus_with
    from eval.gold import load_gold
    from service.api import pipeline_from_settings
    from service.errors import BadInputError
    from service.settings import Settings

    try:
        shares = sorted({float(s) for s in args.shares.split(",") if s.strip()})
    except ValueError:
        print(f"error: --shares {args.shares!r}: numbers separated by commas", file=sys.stderr)
        return 2
    if not shares or not all(0 < s <= 1 for s in shares):
        print("error: --shares: each share must be in (0, 1]", file=sys.stderr)
        return 2
    overrides = {
        k: v for k, v in (("reader_dir", args.reader_dir), ("precision", args.precision)) if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:  # a CITEQA_* variable that does not parse
        print(f"error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    try:
        check_outputs(GOLD / "seed.jsonl", {"--json": args.json_out})  # before the sweep, not after it
        chunking = ChunkParams(settings.max_words, settings.overlap_words)
        docs = corpus_with([GOLD / "agreement" / "docs"], Path(settings.corpus_dir))
        with_docs = _cached_pipeline(docs, Path(settings.corpus_dir), settings, chunking)
        plain = pipeline_from_settings(settings)
        if getattr(plain.reader, "model_dir", None) is None:
            raise BadInputError("only a trained reader has a share of its own (reader.json)")
        for p in (with_docs, plain):
            p.warm_up(build_if_needed=True)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reader: Any = plain.reader
    folder = Path(reader.model_dir)
    print(f"reader {folder}, precision {reader.run_precision}; {len(shares)} shares", file=sys.stderr)
    dev = sweep(with_docs, load_gold(GOLD / "agreement" / "dev.jsonl"), shares)
    seed = sweep(plain, load_gold(GOLD / "seed.jsonl"), shares)
    chosen, kept = choose(dev, seed, args.target)
    print(table(dev, seed, chosen))
    print(f"\nchosen: {chosen}" + ("" if kept else f" (no share keeps the seed rate within {args.target} %)"))
    if args.json_out:
        args.json_out.write_text(json.dumps({"reader": str(folder), "chosen": chosen, "target": args.target,
                                             "dev": dev, "seed": seed}, indent=2) + "\n")  # fmt: skip
    if args.write:
        print(f"wrote {write_share(folder, chosen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
