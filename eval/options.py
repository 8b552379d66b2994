"""The ``citeqa eval`` options (kept apart so ``citeqa --help`` stays light)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="gold set: .jsonl (citeqa format) or SQuAD v1.1/v2.0 .json")
    p.add_argument(
        "--mode",
        choices=("open", "reader"),
        default="open",
        help="full pipeline, or each question against its own paragraph (SQuAD)",
    )
    p.add_argument(
        "--split",
        choices=("validation", "tune", "train", "all"),
        default="all",
        help="SQuAD articles to use (see eval/squad_split.json)",
    )
    p.add_argument(
        "--docs",
        type=Path,
        action="append",
        metavar="DIR",
        help="JSONL gold sets: add this folder's documents to the corpus for this run (repeatable); "
        "they are indexed with it into .citeqa/eval-cache/, the main index is left alone",
    )
    p.add_argument("--limit", type=int, help="evaluate a random sample of N questions")
    p.add_argument("--seed", type=int, default=0, help="seed for --limit's sample (default 0)")
    p.add_argument("--top-k", type=int, default=3, help="passages read per question in open mode (default 3)")
    p.add_argument(
        "--json", dest="json_out", type=Path, help="write all figures and one record per question here"
    )
    p.add_argument("--report", type=Path, help="write a Markdown report with the worst misses here")
    p.add_argument("--reader", help="answer extractor: trained (default) or baseline")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
