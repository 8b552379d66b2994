"""Evaluation: gold-set formats, SQuAD-official metrics, retrieval metrics, the runner."""

from eval.gold import GoldItem, load_gold, load_jsonl, load_squad
from eval.metrics import (
    exact_match,
    mrr_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    score_prediction,
    token_f1,
)

__all__ = [
    "GoldItem",
    "exact_match",
    "load_gold",
    "load_jsonl",
    "load_squad",
    "mrr_at_k",
    "normalize_answer",
    "percentile",
    "recall_at_k",
    "score_prediction",
    "token_f1",
]
