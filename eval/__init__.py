"""Evaluation: gold-set formats, SQuAD-official metrics, retrieval and conflict metrics, the runner."""

from eval.gold import GoldItem, load_gold, load_jsonl, load_squad
from eval.metrics import (
    conflict_precision,
    conflict_recall,
    exact_match,
    false_conflict_rate,
    mrr_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    score_prediction,
    token_f1,
)

__all__ = [
    "GoldItem",
    "conflict_precision",
    "conflict_recall",
    "exact_match",
    "false_conflict_rate",
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
